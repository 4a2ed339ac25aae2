"""The one command path: the real agent over a real pty, commands through a real Mosquitto,
every command answered on `<p>/event` (`command_answer`), none dropped with only a log line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_end_to_end import TIMING, running, until

from agent.assembly import build_agent
from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe
from sim.world import SimWorld, sim_world

PREFIX = "layerguard/cmd"
EVENTS = f"{PREFIX}/event"


@pytest.fixture
def world(broker: MosquittoBroker) -> Iterator[SimWorld]:
    """A print that never fails, whose pause takes a while to confirm (the moves drain for 1.5 s)."""
    with sim_world(
        file="cube.gcode",
        failure_at=None,
        print_duration_s=120.0,
        interval_s=1,
        heat_duration_s=0.3,
        pause_delay_s=1.5,
        frame_size=(320, 240),
        broker=broker,
    ) as made:
        yield made


def answer(command: str, result: str) -> Callable[[bytes], bool]:
    def matches(payload: bytes) -> bool:
        event = json.loads(payload)
        return event["type"] == "command_answer" and event["command"] == command and event["result"] == result

    return matches


async def answer_of(probe: MqttProbe, command: str, result: str) -> dict:
    return json.loads((await probe.wait_for(EVENTS, answer(command, result), timeout_s=30)).payload)


async def test_a_resume_pressed_while_the_pause_is_confirmed_is_carried_out_after_it(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    agent = build_agent(world.settings(tmp_path, printer_id="cmd"), timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        await probe.wait_for(f"{PREFIX}/availability", b"online")  # subscribed before it says so
        world.printer.panel_start("cube.gcode")
        await until(agent, lambda s: s.print_state == "printing")
        probe.publish(f"{PREFIX}/command/pause", "PRESS")
        await answer_of(probe, "pause", "accepted")
        probe.publish(f"{PREFIX}/command/resume", "PRESS")  # the pause is still being confirmed
        queued = await answer_of(probe, "resume", "queued")
        assert queued["reason"] == "waits for the pause under way" and queued["source"] == "mqtt"
        await answer_of(probe, "pause", "done")
        await answer_of(probe, "resume", "done")
        await until(agent, lambda s: s.print_state == "printing")
        assert world.printer.state == "printing"
    sent = world.printer.received
    assert sent.index("M25") < sent.index("M24", sent.index("M25"))
    types = [json.loads(m.payload) for m in probe.messages(EVENTS)]
    answers = [(e["command"], e["result"]) for e in types if e["type"] == "command_answer"]
    assert answers == [
        ("pause", "accepted"),
        ("resume", "queued"),
        ("pause", "done"),
        ("resume", "accepted"),
        ("resume", "done"),
    ]


async def test_a_resume_waiting_for_a_failed_pause_is_refused_with_the_reason(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    settings = world.settings(tmp_path, printer_id="cmd")
    settings.printer.pause_confirm_s = 0.5
    world.printer.ignore = {"M25"}  # acknowledged, never acted on
    agent = build_agent(settings, timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        await probe.wait_for(f"{PREFIX}/availability", b"online")  # subscribed before it says so
        world.printer.panel_start("cube.gcode")
        await until(agent, lambda s: s.print_state == "printing")
        probe.publish(f"{PREFIX}/command/pause", "PRESS")
        await answer_of(probe, "pause", "accepted")
        probe.publish(f"{PREFIX}/command/resume", "PRESS")
        await answer_of(probe, "resume", "queued")
        failed = await answer_of(probe, "pause", "failed")
        assert "second attempt" in failed["reason"]
        refused = await answer_of(probe, "resume", "refused")
        assert refused["reason"] == "the printer is printing, not paused"
    assert "M24" not in world.printer.received[world.printer.received.index("M25") :]


async def test_commands_that_cannot_run_are_answered_and_a_double_press_acts_once(
    world: SimWorld, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{PREFIX}/#")
    agent = build_agent(world.settings(tmp_path, printer_id="cmd"), timing=TIMING)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        await probe.wait_for(f"{PREFIX}/availability", b"online")  # subscribed before it says so
        probe.publish(f"{PREFIX}/command/resume", "PRESS")
        idle = await answer_of(probe, "resume", "refused")
        assert idle["reason"] == "the printer is idle, not paused"
        world.printer.panel_start("cube.gcode")
        await until(agent, lambda s: s.print_state == "printing")
        probe.publish(f"{PREFIX}/command/pause", "PRESS")
        probe.publish(f"{PREFIX}/command/pause", "PRESS")
        again = await answer_of(probe, "pause", "refused")
        assert again["reason"] == "a pause is already under way"
        await answer_of(probe, "pause", "done")
        # The page's path is the same one: its answers say where they came from.
        first = agent.on_command("monitoring", "maybe", source="web")
        assert (first["result"], first["source"]) == ("refused", "web")
        assert agent.on_command("monitoring", "off", source="web")["result"] == "done"
        await until(agent, lambda s: not s.monitoring)
    assert world.printer.received.count("M25") == 1
