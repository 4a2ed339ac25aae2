"""A whole simulated print to a confirmed pause: real pty, real HTTP, real Mosquitto, real agent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.app import Agent
from agent.assembly import build_agent
from agent.detection.timing import DetectionTiming
from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe
from sim.world import SimWorld, sim_world

TIMING = DetectionTiming(
    request_timeout_s=5,
    first_success_retry_s=0.5,
    interval_floor_s=0.2,
    interval_ceiling_s=60,
    default_retry_s=0.5,
)
PREFIX = "layerguard/e2e"
INTERVAL_S = 1


@pytest.fixture
def world(broker: MosquittoBroker) -> Iterator[SimWorld]:
    with sim_world(
        file="benchy.gcode",
        failure_at=0.2,
        print_duration_s=20.0,
        interval_s=INTERVAL_S,
        heat_duration_s=0.5,
        pause_delay_s=0.3,
        frame_size=(320, 240),
        broker=broker,
    ) as made:
        yield made


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[Agent]:
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(agent: Agent, predicate: Callable[..., bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        await agent.wait_for(predicate)


async def test_a_failing_print_is_paused_and_mqtt_tells_the_story(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    agent = build_agent(world.settings(tmp_path, printer_id="e2e"), timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(agent, lambda s: s.paused_by == "agent", within=30)
        assert world.printer.state == "paused"
        assert "M25" in world.printer.received
        await probe.wait_for(f"{PREFIX}/event", lambda p: json.loads(p)["type"] == "failure_paused")
        events = [json.loads(m.payload)["type"] for m in probe.messages(f"{PREFIX}/event")]
        assert events[0] == "print_started"
        assert events.index("failure_warning") < events.index("failure_paused")
        assert "print_paused" in events
        # The retained state a late subscriber sees says paused, by the agent.
        late = mqtt_probe(f"{PREFIX}/state", f"{PREFIX}/snapshot")
        state = json.loads((await late.wait_for(f"{PREFIX}/state")).payload)
        assert state["print_state"] == "paused" and state["paused_by"] == "agent"
        assert state["pause_suggested"] is True and state["score"] >= 50
        snapshot = await late.wait_for(f"{PREFIX}/snapshot")
        assert snapshot.payload[:2] == b"\xff\xd8" and snapshot.retain
    # A clean shutdown says offline.
    await probe.wait_for(f"{PREFIX}/availability", b"offline")


async def test_action_warn_warns_but_never_pauses(world: SimWorld, tmp_path: Path) -> None:
    agent = build_agent(world.settings(tmp_path, printer_id="e2e", action="warn"), timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(agent, lambda s: s.pause_suggested, within=30)
        assert world.printer.state == "printing"
        assert "M25" not in world.printer.received


async def test_inspections_stop_while_paused_and_go_on_after_resume(world: SimWorld, tmp_path: Path) -> None:
    agent = build_agent(world.settings(tmp_path, printer_id="e2e"), timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(agent, lambda s: s.score is not None)
        contexts = world.service.contexts_created
        world.printer.panel_pause()
        await until(agent, lambda s: s.print_state == "paused")
        paused_at = time.monotonic()
        # Two intervals pass while paused; no Process call may start in them.
        await asyncio.sleep(2 * INTERVAL_S)  # waiting for something that must NOT happen
        world.printer.panel_resume()
        await until(agent, lambda s: s.print_state == "printing")
        resumed_at = time.monotonic()
        await asyncio.to_thread(world.service.wait_for_calls, len(world.service.calls) + 2, 10)
        assert not [c for c in world.service.calls if paused_at < c.at < resumed_at]
        assert world.service.contexts_created == contexts  # the same print goes on in the same context
