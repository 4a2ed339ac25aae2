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
from agent.cli import main
from agent.detection.timing import DetectionTiming
from agent.mqtt import MqttBridge
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


def failing_print(broker: MosquittoBroker) -> contextlib.AbstractContextManager[SimWorld]:
    """The world of these stories: a print that fails 4 s in and would go on for 2 min. A story's
    pauses, resumes and restarts must all come before it ends however slowly a loaded machine
    inspects (a 20 s print ended first beside two emulated Pi guests)."""
    return sim_world(
        file="benchy.gcode",
        failure_at=0.035,
        print_duration_s=120.0,
        interval_s=INTERVAL_S,
        heat_duration_s=0.5,
        pause_delay_s=0.3,
        frame_size=(320, 240),
        broker=broker,
    )


@pytest.fixture
def world(broker: MosquittoBroker) -> Iterator[SimWorld]:
    with failing_print(broker) as made:
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


async def until(agent: Agent, predicate: Callable[..., bool], within: float = 90.0) -> None:
    """Wait for the agent's state to satisfy `predicate`. The default deadline is for a loaded
    2-core machine: a start, a pause and its confirmation took over 30 s beside two emulated guests
    (quiet: 1-5 s), and a deadline only bounds how long a failing test takes to say so."""
    async with asyncio.timeout(within):
        await agent.wait_for(predicate)


async def print_until_paused(agent: Agent, world: SimWorld) -> None:
    """Start the failing print at the panel once the printer is idle; wait for the agent's pause."""
    await until(agent, lambda s: s.print_state == "idle")
    world.printer.panel_start("benchy.gcode")
    await until(agent, lambda s: s.paused_by == "agent")


async def test_a_failing_print_is_paused_and_mqtt_tells_the_story(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    agent = build_agent(world.settings(tmp_path, printer_id="e2e"), timing=TIMING)
    async with running(agent):
        await print_until_paused(agent, world)
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
        await until(agent, lambda s: s.pause_suggested)
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
        # A call already on its way when the state turned paused may still arrive (its upload is
        # slow on a loaded machine): the window starts one interval later, and lasts two more.
        quiet_from = time.monotonic() + INTERVAL_S
        await asyncio.sleep(3 * INTERVAL_S)  # waiting for something that must NOT happen
        quiet_until = time.monotonic()  # the printer is still paused: any call before this is wrong
        world.printer.panel_resume()
        await until(agent, lambda s: s.print_state == "printing")
        await asyncio.to_thread(world.service.wait_for_calls, len(world.service.calls) + 2, 30)
        assert not [c for c in world.service.calls if quiet_from < c.at < quiet_until]
        assert world.service.contexts_created == contexts  # the same print goes on in the same context


async def test_an_unconfirmed_pause_is_sent_twice_then_reported(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    settings = world.settings(tmp_path, printer_id="e2e")
    settings.printer.pause_confirm_s = 0.5
    world.printer.ignore = {"M25"}  # acknowledged, never acted on
    agent = build_agent(settings, timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(agent, lambda s: s.print_state == "printing")
        agent.on_command("pause", "")
        await until(agent, lambda s: s.pause_failed)
        event = await probe.wait_for(f"{PREFIX}/event", lambda p: json.loads(p)["type"] == "pause_failed")
    assert world.printer.received.count("M25") == 2
    assert "second attempt" in json.loads(event.payload)["message"]
    assert agent.state.print_state == "printing"


async def test_resume_after_cooldown_reheats_and_grace_holds_off_a_new_pause(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    settings = world.settings(tmp_path, printer_id="e2e", resume_grace_s=60)
    settings.printer.cool_down_after_s = 0.3
    agent = build_agent(settings, timing=TIMING)
    vp = world.printer
    async with running(agent):
        await print_until_paused(agent, world)
        await probe.wait_for(f"{PREFIX}/event", lambda p: json.loads(p)["type"] == "heaters_off")
        assert vp.temperatures["hotend_target"] == 0 and vp.temperatures["bed_target"] == 60
        agent.on_command("resume", "")
        await until(agent, lambda s: s.print_state == "printing")
        calls = len(world.service.calls)
        # The part is still loose: the service keeps suggesting a pause, the grace holds it off.
        await until(agent, lambda s: s.pause_suggested and len(world.service.calls) >= calls + 2)
    sent = vp.received[vp.received.index("M25") :]
    assert sent.index("M104 S0") < sent.index("M104 S205") < sent.index("M24")
    assert vp.received.count("M25") == 1, "no second pause within detection.resume_grace_s"


async def test_a_broker_restart_mid_print_delays_nothing_and_state_is_right_afterwards(
    world: SimWorld, broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    agent = build_agent(world.settings(tmp_path, printer_id="e2e"), timing=TIMING)
    bridge = agent.outputs.find(MqttBridge)
    assert isinstance(bridge, MqttBridge)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        world.printer.panel_start("benchy.gcode")
        await until(agent, lambda s: s.warning)  # the failure is visible, no pause yet
        broker.stop()  # no persistence: everything retained is gone with it
        await until(agent, lambda s: s.paused_by == "agent")
        assert world.printer.state == "paused" and not bridge.connected
        broker.start()
        probe = mqtt_probe(f"{PREFIX}/#", "homeassistant/#")
        await probe.wait_for(f"{PREFIX}/availability", b"online", timeout_s=60)  # paho's backoff
        state = json.loads((await probe.wait_for(f"{PREFIX}/state")).payload)
        assert (state["print_state"], state["paused_by"], state["pause_suggested"]) == (
            "paused",
            "agent",
            True,
        )
        await probe.wait_for("homeassistant/switch/e2e/monitoring/config")
        # The user resumes from Home Assistant; the button press arrives twice, is acted on once.
        probe.publish(f"{PREFIX}/command/resume", "PRESS")
        probe.publish(f"{PREFIX}/command/resume", "PRESS")
        await until(agent, lambda s: s.print_state == "printing")
        await probe.wait_for(f"{PREFIX}/state", lambda p: json.loads(p)["print_state"] == "printing")
    assert world.printer.received.count("M24") == 1


async def test_two_agents_on_one_broker_never_collide(
    broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    """Two printers on one Pi, one agent each: their own topics and Home Assistant devices; a
    pause of printer A over MQTT never reaches B, which prints on; A's agent stopped, B's goes on;
    the Pi's shared count of Gadget calls is the sum of both agents' own."""
    steady = {"failure_at": None, "print_duration_s": 60, "interval_s": INTERVAL_S, "broker": broker}
    with sim_world(file="a.gcode", **steady) as a_world, sim_world(file="b.gcode", **steady) as b_world:  # type: ignore[arg-type]
        probe = mqtt_probe("layerguard/#", "homeassistant/#")
        agents = []
        for world, printer_id in ((a_world, "e2e"), (b_world, "e2e-b")):
            settings = world.settings(tmp_path / printer_id, printer_id=printer_id)
            settings.agent.shared_state_dir = tmp_path  # as /var/lib/layerguard is to layerguard@<name>
            agents.append(build_agent(settings, timing=TIMING))
        a, b = agents
        async with contextlib.AsyncExitStack() as stack:
            a_running = await stack.enter_async_context(contextlib.AsyncExitStack())
            await a_running.enter_async_context(running(a))
            await stack.enter_async_context(running(b))
            for printer_id in ("e2e", "e2e-b"):
                await probe.wait_for(
                    f"layerguard/{printer_id}/state", lambda p: json.loads(p)["print_state"] == "idle"
                )
                await probe.wait_for(f"homeassistant/image/{printer_id}/snapshot/config")
            probe.publish("layerguard/e2e-b/command/monitoring", "OFF")
            await probe.wait_for("layerguard/e2e-b/state", lambda p: json.loads(p)["monitoring"] is False)
            assert a.state.monitoring and not b.state.monitoring
            probe.publish("layerguard/e2e-b/command/monitoring", "ON")
            await until(b, lambda s: s.monitoring)
            # Distinct client ids: neither agent took the other's session over (and fired its will).
            assert all(m.payload == b"online" for m in probe.messages("layerguard/+/availability"))

            a_world.printer.panel_start("a.gcode")
            b_world.printer.panel_start("b.gcode")
            for agent in agents:
                await until(agent, lambda s: s.print_state == "printing" and s.last_inspection is not None)
            probe.publish("layerguard/e2e/command/pause", "PRESS")
            await until(a, lambda s: s.print_state == "paused")
            await probe.wait_for("layerguard/e2e/event", lambda p: json.loads(p)["type"] == "print_paused")
            # B prints on: inspected again after A's pause, never asked to pause or resume.
            seen = b.state.last_inspection
            await until(b, lambda s: s.last_inspection != seen)
            assert b.state.print_state == "printing" and b.state.paused_by is None

            # A's agent stops (a crash, systemctl stop): its will says offline; B goes on inspecting.
            await a_running.aclose()
            await probe.wait_for("layerguard/e2e/availability", b"offline")
            seen, progress = b.state.last_inspection, b.state.progress
            await until(b, lambda s: s.last_inspection != seen and s.progress != progress)
            assert b.state.print_state == "printing"
            assert b.state.api_calls_month_pi >= a.state.api_calls_month + b.state.api_calls_month
        assert a_world.printer.received.count("M25") == 1
        assert not [c for c in b_world.printer.received if c.split()[0] in ("M25", "M24", "M601", "M602")]
    # B went offline only when it stopped at the end; the only commands for B were the test's own.
    assert [m.payload for m in probe.messages("layerguard/e2e-b/availability")] == [b"online", b"offline"]
    assert not [m for m in probe.messages("layerguard/e2e-b/event") if b"print_paused" in m.payload]
    assert [m.payload for m in probe.messages("layerguard/e2e-b/command/#")] == [b"OFF", b"ON"]
    pi = json.loads((tmp_path / "gadget-usage-pi.json").read_text())
    assert pi["printers"] == {"e2e": a.detector.usage.calls, "e2e-b": b.detector.usage.calls}
    assert pi["calls"] == a.detector.usage.calls + b.detector.usage.calls > 2
    configs = [json.loads(m.payload) for m in probe.messages("homeassistant/+/+/+/config")]
    unique_ids = [c["unique_id"] for c in configs]
    assert len(unique_ids) == len(set(unique_ids))
    assert {c["device"]["identifiers"][0] for c in configs} == {"layerguard_e2e", "layerguard_e2e-b"}
    assert {c["state_topic"] for c in configs if "state_topic" in c} == {
        "layerguard/e2e/state",
        "layerguard/e2e-b/state",
        "layerguard/e2e/inspection",
        "layerguard/e2e-b/inspection",
    }


async def test_a_paused_print_leaves_its_history_and_the_report_on_mqtt_is_the_one_the_cli_draws(
    world: SimWorld,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    probe = mqtt_probe(f"{PREFIX}/report")
    agent = build_agent(world.settings(tmp_path, printer_id="e2e"), timing=TIMING)
    async with running(agent):
        await print_until_paused(agent, world)
        await probe.wait_for(f"{PREFIX}/report", timeout_s=60)  # the worker starts matplotlib
    held = await mqtt_probe(f"{PREFIX}/report").wait_for(f"{PREFIX}/report")  # what a late subscriber gets
    assert held.retain and held.payload[:8] == b"\x89PNG\r\n\x1a\n"
    config = tmp_path / "layerguard.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n')
    assert await asyncio.to_thread(main, ["history", "--config", str(config), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    calls = len(world.service.calls)
    assert (listed["file"], listed["outcome"], listed["pauses"]) == ("benchy.gcode", "paused_by_agent", 1)
    assert listed["peak_score"] >= 50 and listed["warnings"] == 1
    assert 3 <= listed["inspections"] <= calls and listed["api_calls"] <= calls
    out = tmp_path / "r.png"
    assert await asyncio.to_thread(main, ["report", "last", "--config", str(config), "--out", str(out)]) == 0
    assert out.read_bytes() == held.payload
    assert list((tmp_path / "history" / "evidence" / str(listed["id"])).glob("*.jpg"))
