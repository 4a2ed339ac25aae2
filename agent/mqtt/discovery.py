"""Home Assistant MQTT discovery: the configs that make a printer appear as one device.

Every entity reads the retained `<p>/state` JSON through a `value_template`, so one state
message updates them all, and goes unavailable with the agent's `<p>/availability` last will.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.mqtt.topics import Topics

MANUFACTURER = "LayerGuard"
MODEL = "LayerGuard print-failure guard"
PRINT_STATES = ["offline", "idle", "printing", "paused", "error"]


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """One entity's config and the (retained) topic it is published on."""

    topic: str
    payload: dict[str, Any]


def status_topic(discovery_prefix: str) -> str:
    """Where Home Assistant announces `online` when it starts: discovery must then be re-sent."""
    return f"{discovery_prefix}/status"


def discovery_configs(discovery_prefix: str, printer_id: str, topics: Topics) -> list[DiscoveryConfig]:
    """All entity configs of one printer, in the order they are published."""
    device = {
        "identifiers": [f"layerguard_{printer_id}"],
        "name": f"LayerGuard {printer_id}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": __version__,
    }
    common = {
        "availability_topic": topics.availability,
        "device": device,
        "origin": {"name": "LayerGuard", "sw_version": __version__},
    }
    from_state = {"state_topic": topics.state}

    def on_off(key: str) -> str:
        return f"{{{{ 'ON' if value_json.{key} else 'OFF' }}}}"

    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "failure_score",
            {
                **from_state,
                "name": "Failure score",
                "value_template": "{{ value_json.score }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:alert-decagram-outline",
            },
        ),
        (
            "sensor",
            "print_quality",
            {
                **from_state,
                "name": "Print quality",
                "value_template": "{{ value_json.print_quality }}",
                "icon": "mdi:star-outline",
            },
        ),
        (
            "sensor",
            "print_state",
            {
                **from_state,
                "name": "Print state",
                "value_template": "{{ value_json.print_state }}",
                "device_class": "enum",
                "options": PRINT_STATES,
            },
        ),
        (
            "sensor",
            "progress",
            {
                **from_state,
                "name": "Progress",
                "value_template": "{{ value_json.progress }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:progress-clock",
            },
        ),
        (
            "binary_sensor",
            "warning",
            {
                **from_state,
                "name": "Failure warning",
                "value_template": on_off("warning"),
                "device_class": "problem",
            },
        ),
        (
            "binary_sensor",
            "pause_suggested",
            {
                **from_state,
                "name": "Pause suggested",
                "value_template": on_off("pause_suggested"),
                "device_class": "problem",
            },
        ),
        (
            "button",
            "pause",
            {"name": "Pause print", "command_topic": topics.command("pause"), "icon": "mdi:pause"},
        ),
        (
            "button",
            "resume",
            {"name": "Resume print", "command_topic": topics.command("resume"), "icon": "mdi:play"},
        ),
        (
            "switch",
            "monitoring",
            {
                **from_state,
                "name": "Monitoring",
                "command_topic": topics.command("monitoring"),
                "value_template": on_off("monitoring"),
                "payload_on": "ON",
                "payload_off": "OFF",
                "icon": "mdi:eye",
            },
        ),
        (
            "image",
            "snapshot",
            {"name": "Snapshot", "image_topic": topics.snapshot, "content_type": "image/jpeg"},
        ),
    ]
    return [
        DiscoveryConfig(
            topic=f"{discovery_prefix}/{component}/{printer_id}/{object_id}/config",
            payload={**config, **common, "unique_id": f"layerguard_{printer_id}_{object_id}"},
        )
        for component, object_id, config in entities
    ]
