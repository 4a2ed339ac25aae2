"""The discovery configs and every state the agent publishes, read by Home Assistant's own MQTT
code: each release in a `.venv-ha-<release>` (made by `scripts/setup.sh --for-tests`) boots its
core and MQTT integration against the suite's Mosquitto (tests/ha_harness.py). The states are
those a real agent published through a print it paused, and the rarer ones it can publish
(unknown, offline, a broken camera), made from the agent's own state type.

Done when no release logs a warning about LayerGuard's messages (`Invalid state message`, a
template error, a rejected config), no entity ever shows the text `None`, and each state reads
as it should.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_end_to_end import TIMING, failing_print, print_until_paused, running, until

from agent.assembly import build_agent
from agent.mqtt.bridge import _json_default
from agent.mqtt.discovery import PRINT_STATES, discovery_configs
from agent.mqtt.topics import Topics
from agent.state import AgentState
from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe

REPO = Path(__file__).resolve().parent.parent
HARNESS = Path(__file__).with_name("ha_harness.py")
VENVS = sorted(p for p in REPO.glob(".venv-ha-*") if (p / "bin" / "python").exists())
PRINTER = "mk4"
TOPICS = Topics.for_printer("layerguard", PRINTER)
INSPECTED_AT = "2026-11-29T14:00:00Z"

RELEASES = [pytest.param(venv, id=venv.name.removeprefix(".venv-ha-")) for venv in VENVS]
if not VENVS:
    reason = "no Home Assistant venv (.venv-ha-*): run scripts/setup.sh --for-tests"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}; CI must run these tests")
    RELEASES = [pytest.param(None, id="none", marks=pytest.mark.skip(reason=reason))]


def state(*bases: dict[str, Any], **fields: Any) -> list[Any]:
    """The retained state message, encoded as the bridge encodes it."""
    merged = {k: v for base in bases for k, v in base.items()} | fields
    return [TOPICS.state, json.dumps(AgentState(**merged).as_payload(), default=_json_default), True]


INSPECTION = {
    "at": INSPECTED_AT,
    "file": "part.gcode",
    "progress": 12.5,
    "score": 7,
    "print_quality": 9,
    "warning": False,
    "pause_suggested": False,
    "next_inspection": "2026-11-29T14:00:20Z",
}
PRINTING = {
    "print_state": "printing",
    "file": "part.gcode",
    "progress": 12.5,
    "detection": "ok",
    "camera": "ok",
    "api_calls_month": 3,
}
INSPECTED = {**PRINTING, "score": 7, "print_quality": 9, "last_inspection": INSPECTED_AT}
# In the agent's order: an inspection's frame and verdict come before the state they cause.
SCENARIOS: dict[str, list[list[Any]]] = {
    "offline": [state()],
    "idle, nothing inspected": [state(print_state="idle")],
    "printing, not inspected yet": [state(PRINTING, detection="starting")],
    "printing, inspected": [
        [TOPICS.inspection, json.dumps(INSPECTION), True],
        state(INSPECTED),
    ],
    "paused by the agent": [
        state(INSPECTED, print_state="paused", warning=True, pause_suggested=True, paused_by="agent")
    ],
    "detection retrying, camera broken": [
        state(INSPECTED, detection="retrying: timeout", camera="error: connection refused")
    ],
    "unknown": [state(print_state="unknown")],
    "next print started": [state(PRINTING, file="next.gcode", detection="starting")],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def record_a_failing_print(
    broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> tuple[list[list[Any]], list[list[Any]]]:
    """What the real agent publishes from idle through a print it pauses to the print's end: its
    discovery configs, and every `<p>/state` and `<p>/inspection` message, in order."""
    probe = mqtt_probe(f"{TOPICS.base}/#", "homeassistant/#")
    with failing_print(broker) as world:
        agent = build_agent(world.settings(tmp_path, printer_id=PRINTER), timing=TIMING)
        async with running(agent):
            await print_until_paused(agent, world)
            world.printer.panel_stop()
            # Marlin's panel stop only shows in `M27 C`, which a paused print's link asks every 5th poll.
            await until(agent, lambda s: s.print_state == "idle")
    # Home Assistant starts as on a fresh broker: no inspection yet (the scenarios replay them).
    probe.publish(TOPICS.inspection, b"", retain=True)
    discovery = [[m.topic, m.payload.decode(), True] for m in probe.messages("homeassistant/+/+/+/config")]
    published = [
        [m.topic, m.payload.decode(), True]
        for m in probe.messages(f"{TOPICS.base}/+")
        if m.topic in (TOPICS.state, TOPICS.inspection) and m.payload
    ]
    return discovery, published


@pytest.mark.slow
@pytest.mark.parametrize("venv", RELEASES)
async def test_home_assistant_reads_every_state_without_a_warning(
    venv: Path, broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    discovery, published = await record_a_failing_print(broker, mqtt_probe, tmp_path)
    configs = discovery_configs("homeassistant", PRINTER, TOPICS)
    assert sorted(discovery) == sorted([c.topic, json.dumps(c.payload), True] for c in configs)
    recorded = {
        f"recorded {i}: {json.loads(payload).get('print_state', 'inspection')}": [[topic, payload, retain]]
        for i, (topic, payload, retain) in enumerate(published)
    }
    plan = {
        "broker": [broker.host, broker.port],
        "http_port": free_port(),
        "discovery": [*discovery, [TOPICS.availability, "online", True]],
        # platform, unique id, and whether `<p>/availability` alone makes it available
        "unique_ids": [
            [c.topic.split("/")[1], c.payload["unique_id"], "availability" not in c.payload] for c in configs
        ],
        "scenarios": [
            {"name": name, "messages": messages} for name, messages in {**SCENARIOS, **recorded}.items()
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    done = await asyncio.to_thread(
        subprocess.run,
        [str(venv / "bin" / "python"), str(HARNESS), str(tmp_path / "plan.json")],
        capture_output=True,
        text=True,
        timeout=600,  # a safety net only: each wait inside the harness has its own deadline
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    release = result["version"]

    ours = [
        line
        for line in result["log"]
        if "layerguard" in line.lower()
        or line.split()[1].startswith(
            (
                "homeassistant.components.mqtt",
                "homeassistant.components.sensor",
                "homeassistant.helpers.template",
            )
        )
    ]
    assert ours == [], f"Home Assistant {release} complained"
    assert len(result["entities"]) == len(configs), "every discovery config made an entity"

    def read(scenario: str) -> dict[str, str]:
        states = result["scenarios"][scenario]
        return {uid.removeprefix(f"layerguard_{PRINTER}_"): s["state"] for uid, s in states.items()}

    for scenario in [*SCENARIOS, *recorded]:
        assert "None" not in read(scenario).values(), (release, scenario, read(scenario))
    seen = [read(scenario) for scenario in recorded]
    assert {"idle", "printing", "paused"} <= {states["print_state"] for states in seen}
    assert any(states["last_inspection"] not in ("unknown", "unavailable") for states in seen)

    idle = read("idle, nothing inspected")
    assert idle["print_state"] == "idle"
    assert idle["file"] == "unavailable"  # no file: not the text None
    for unknown in ("failure_score", "print_quality", "progress", "last_inspection"):
        assert idle[unknown] == "unknown", (release, unknown, idle[unknown])
    assert (idle["warning"], idle["pause_suggested"], idle["monitoring"]) == ("off", "off", "on")

    printing = read("printing, not inspected yet")
    assert (printing["file"], printing["progress"], printing["detection"]) == (
        "part.gcode",
        "12.5",
        "starting",
    )
    assert printing["last_inspection"] == "unknown"

    inspected = read("printing, inspected")
    assert inspected["last_inspection"] == "2026-11-29T14:00:00+00:00"
    assert (inspected["failure_score"], inspected["print_quality"]) == ("7", "9")

    paused = read("paused by the agent")
    assert (paused["print_state"], paused["warning"], paused["pause_suggested"]) == ("paused", "on", "on")

    broken = read("detection retrying, camera broken")
    assert (broken["detection"], broken["camera"]) == ("retrying: timeout", "error: connection refused")

    assert read("unknown")["print_state"] == "unknown"
    assert read("offline")["print_state"] == "offline"

    # A new print clears the verdict; the last inspection stays the last one there was.
    following = read("next print started")
    assert (following["failure_score"], following["print_quality"]) == ("unknown", "unknown")
    assert following["last_inspection"] == "2026-11-29T14:00:00+00:00"
    assert following["file"] == "next.gcode"

    # Releases that know enum options list them; older ones drop them and still show the state.
    attributes = result["scenarios"]["idle, nothing inspected"][f"layerguard_{PRINTER}_print_state"]
    assert attributes.get("options") in (None, PRINT_STATES)
    kept = "kept" if attributes.get("options") else "dropped"
    print(f"Home Assistant {release}: {len(recorded)} recorded messages read cleanly; enum options {kept}")
