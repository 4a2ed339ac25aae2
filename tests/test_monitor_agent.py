"""Detection as the whole agent lives it: real pty printer, real HTTP, real Mosquitto.

A restart in the middle of a print, the heating phase, and the monthly budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_end_to_end import running, until

from agent.assembly import build_agent
from agent.detection.timing import DetectionTiming
from agent.detection.verdict import DetectionError
from hardware.camera.base import CameraError
from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter
from sim.world import SimWorld, sim_world

TIMING = DetectionTiming(
    request_timeout_s=5, first_success_retry_s=0.3, interval_floor_s=0.2, interval_ceiling_s=60
)
INTERVAL_S = 0.5
PREFIX = "layerguard/detect"
# Arrival at the stand-in trails the client's call start by the upload and the stand-in's thread
# waking (tens of ms under load); a restart that lost the pace would call as soon as it is up.
UPLOAD_SLACK_S = 0.1


@pytest.fixture
def world(broker: MosquittoBroker) -> Iterator[SimWorld]:
    with sim_world(
        file="benchy.gcode",
        failure_at=None,
        print_duration_s=60.0,
        interval_s=INTERVAL_S,
        heat_duration_s=0.8,
        frame_size=(320, 240),
        broker=broker,
    ) as made:
        yield made


async def wait_process_calls(world: SimWorld, count: int) -> None:
    def enough() -> bool:
        return len([c for c in world.service.calls if c.endpoint == "process"]) >= count

    async with asyncio.timeout(30):
        while not enough():
            await asyncio.to_thread(world.service.wait_for_calls, len(world.service.calls) + 1, 10)


async def test_no_inspection_before_the_printer_is_at_temperature(world: SimWorld, tmp_path: Path) -> None:
    agent = build_agent(world.settings(tmp_path, printer_id="detect"), timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        heating_until = await asyncio.to_thread(last_moment_heating, world.printer)
        await wait_process_calls(world, 1)
    early = [c for c in world.service.calls if c.endpoint == "process" and c.at < heating_until]
    assert early == [], "Process calls while the printer was still heating"


def last_moment_heating(printer: VirtualPrinter, timeout_s: float = 30) -> float:
    """Once the print runs: the last moment the printer was seen heating. Looked at before each
    check, so it holds however late this thread runs on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    heating_until = time.monotonic()
    while time.monotonic() < deadline:
        looked = time.monotonic()
        if printer.state == "printing":
            return heating_until
        heating_until = looked
        time.sleep(0.01)
    raise TimeoutError(f"the print did not start within {timeout_s:g} s")


async def test_a_restart_mid_print_continues_the_context_and_its_pace(
    world: SimWorld, tmp_path: Path
) -> None:
    settings = world.settings(tmp_path, printer_id="detect")
    first = build_agent(settings, timing=TIMING)
    async with running(first):
        await until(first, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(first, lambda s: s.score is not None)
    last_before = world.service.calls[-1]
    second = build_agent(settings, timing=TIMING)  # systemd restarted the agent; the print goes on
    assert second.state.api_calls_month == first.state.api_calls_month >= 1
    async with running(second):
        await until(second, lambda s: s.score is not None)
    process = [c for c in world.service.calls if c.endpoint == "process"]
    assert world.service.contexts_created == 1
    assert {c.context_id for c in process} == {last_before.context_id}
    resumed = process[process.index(last_before) + 1]
    assert resumed.at - last_before.at >= INTERVAL_S - UPLOAD_SLACK_S


async def test_the_monthly_budget_stops_inspections_and_says_so(
    world: SimWorld, tmp_path: Path, mqtt_probe: Callable[..., MqttProbe]
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    settings = world.settings(tmp_path, printer_id="detect", monthly_budget=2)
    settings.mqtt.topic_prefix = "layerguard"
    agent = build_agent(settings, timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(agent, lambda s: s.detection == "stopped: BUDGET_REACHED")
        assert (agent.state.api_calls_month, agent.state.api_calls_budget) == (2, 2)
        assert agent.state.next_inspection is not None  # the first of next month
        event = await probe.wait_for(f"{PREFIX}/event", lambda p: json.loads(p)["type"] == "detection_error")
        payload = json.loads(event.payload)
        assert payload["error_type"] == "BUDGET_REACHED" and payload["stopped"] is True
        assert "monthly_budget" in payload["message"]
    assert len([c for c in world.service.calls if c.endpoint == "process"]) == 2


async def test_a_lasting_camera_or_detection_failure_is_one_line_until_it_ends(
    world: SimWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The inspection loop reports every failed attempt; the log tells the change, not each one."""
    agent = build_agent(world.settings(tmp_path, printer_id="detect"), timing=TIMING)
    caplog.set_level(logging.INFO, logger="agent")
    for _ in range(50):
        agent._on_failure(CameraError("http://cam/snapshot: connection refused"), None)
    assert agent.state.camera == "error: http://cam/snapshot: connection refused"
    for _ in range(50):  # the camera works again: the service is what fails now
        agent._on_failure(DetectionError("TIMEOUT", "no answer within 30 s", 5.0), None)
    assert agent.state.detection == "retrying: TIMEOUT"
    lines = [r.getMessage() for r in caplog.records if r.name == "agent"]
    assert len(lines) == 3, lines
    assert lines[0] == "Camera: http://cam/snapshot: connection refused"
    assert lines[1].startswith("Camera: working again after 0 s (50 failed attempts)")
    assert lines[2].startswith("Detection: retrying: ")
    await agent.detector.aclose()
