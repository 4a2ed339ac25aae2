"""Home Assistant MQTT discovery: the configs that make a printer appear as one device.

The entities read the retained `<p>/state` JSON through a `value_template`, so one state
message updates them all, and go unavailable with the agent's `<p>/availability` last will.

Checked with Home Assistant's own MQTT code from 2024.1 to today (tests/test_home_assistant.py).
Before 2024.10 a sensor turns the rendered text `None` into unknown only when it is numeric (a
unit or a state class); a timestamp sensor logs `Invalid state message` for it and a text sensor
shows it. So: numbers carry a state class, `Last inspection` reads `<p>/inspection`, which only an
inspection ever fills, and `Current file` is unavailable while there is no file. Enum `options`
came in 2024.9; older releases drop them and show the same states as text.

One retained config topic per entity (`<prefix>/<component>/<printer_id>/<object_id>/config`)
rather than the device-based `<prefix>/device/<printer_id>/config`: every Home Assistant since
2021 reads it, and an entity can be removed on its own. Removing the device is one empty
retained message per topic (README, "MQTT").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.lifecycle import PrintState
from agent.mqtt.topics import Topics

MANUFACTURER = "LayerGuard"
MODEL = "LayerGuard print-failure guard"
# The device page's link. The project has no published address yet: change it here when it does.
DOCS_URL = "https://github.com/layerguard/layerguard#mqtt"
PRINT_STATES = [state.value for state in PrintState]


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """One entity's config and the (retained) topic it is published on."""

    topic: str
    payload: dict[str, Any]


def status_topic(discovery_prefix: str) -> str:
    """Where Home Assistant announces `online` when it starts: discovery must then be re-sent."""
    return f"{discovery_prefix}/status"


def discovery_configs(
    discovery_prefix: str, printer_id: str, topics: Topics, configuration_url: str | None = None
) -> list[DiscoveryConfig]:
    """All entity configs of one printer, in the order they are published; the device page links
    to `configuration_url` (the agent's page) when given, else to the documentation."""
    device = {
        "identifiers": [f"layerguard_{printer_id}"],
        "name": f"LayerGuard {printer_id}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": __version__,
        "configuration_url": configuration_url or DOCS_URL,
    }
    common = {
        "availability_topic": topics.availability,
        "device": device,
        "origin": {"name": "LayerGuard", "sw_version": __version__},
    }
    from_state = {"state_topic": topics.state}

    def on_off(key: str) -> str:
        return f"{{{{ 'ON' if value_json.{key} else 'OFF' }}}}"

    def field(key: str) -> str:
        # An agent older than a field sends no such key: unknown in Home Assistant, not an error.
        return f"{{{{ value_json.{key} | default(none) }}}}"

    def while_set(key: str) -> dict[str, Any]:
        """Available only while `key` is not null, and while the agent is online."""
        return {
            "availability": [
                {"topic": topics.availability},
                {
                    "topic": topics.state,
                    "value_template": f"{{{{ 'online' if value_json.{key} else 'offline' }}}}",
                },
            ],
            "availability_mode": "all",
        }

    diagnostic = {**from_state, "entity_category": "diagnostic"}

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
                "value_template": field("print_quality"),
                "state_class": "measurement",  # numeric: `None` is unknown on every release
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
            "sensor",
            "file",
            {
                **from_state,
                "name": "Current file",
                "value_template": field("file"),
                "icon": "mdi:file-outline",
                **while_set("file"),
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
                "name": "Failure",
                "value_template": on_off("pause_suggested"),
                "device_class": "problem",
            },
        ),
        (
            "sensor",
            "detection",
            {
                **diagnostic,
                "name": "Detection",
                "value_template": field("detection"),
                "icon": "mdi:heart-pulse",
            },
        ),
        (
            "sensor",
            "camera",
            {**diagnostic, "name": "Camera", "value_template": field("camera"), "icon": "mdi:camera"},
        ),
        (
            "sensor",
            "api_calls_month",
            {
                **diagnostic,
                "name": "API calls this month",
                "value_template": field("api_calls_month"),
                "state_class": "total_increasing",
                "icon": "mdi:counter",
            },
        ),
        (
            "sensor",
            "api_calls_month_pi",
            {
                **diagnostic,
                "name": "API calls this month, all printers of this Pi",
                "value_template": field("api_calls_month_pi"),
                "state_class": "total_increasing",
                "icon": "mdi:counter",
            },
        ),
        (
            "sensor",
            "last_inspection",
            {
                **diagnostic,
                "state_topic": topics.inspection,  # never holds a non-timestamp
                "name": "Last inspection",
                "value_template": "{{ value_json.at }}",
                "device_class": "timestamp",
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
            "button",
            "false_alarm",
            {
                "name": "Last alert was a false alarm",
                "command_topic": topics.command("label"),
                "payload_press": "false_alarm",
                "icon": "mdi:thumb-down",
            },
        ),
        (
            "button",
            "real_failure",
            {
                "name": "Last alert was a real failure",
                "command_topic": topics.command("label"),
                "payload_press": "real_failure",
                "icon": "mdi:thumb-up",
            },
        ),
        (
            "button",
            "snooze",
            {
                "name": "Snooze alerts for this print",
                "command_topic": topics.command("snooze"),
                "icon": "mdi:bell-sleep",
            },
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
        (
            "image",
            "report",
            {"name": "Print report", "image_topic": topics.report, "content_type": "image/png"},
        ),
    ]
    return [
        DiscoveryConfig(
            topic=f"{discovery_prefix}/{component}/{printer_id}/{object_id}/config",
            payload={
                **{
                    k: v
                    for k, v in common.items()
                    if "availability" not in config or k != "availability_topic"
                },
                **config,
                "unique_id": f"layerguard_{printer_id}_{object_id}",
            },
        )
        for component, object_id, config in entities
    ]
