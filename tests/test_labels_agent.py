"""A false alarm labelled from Home Assistant's button (MQTT) resumes LayerGuard's pause and keeps
the guard quiet; a real failure later in the same print still pauses. Real agent, virtual
printer over a pty, the stand-in, Mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from test_end_to_end import TIMING, running, until

from agent.assembly import build_agent
from agent.cli import main
from agent.health import supervise
from agent.systemd import SystemdNotifier
from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe
from sim.world import sim_world

P = "layerguard/labels"
FAILURE_AT = 0.6


async def test_a_false_alarm_resumes_and_mutes_and_a_real_failure_still_pauses(
    broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{P}/#")
    with sim_world(
        file="cable.gcode",
        failure_at=FAILURE_AT,
        print_duration_s=36.0,  # the cable's pause comes long before the failure, even on a slow machine
        interval_s=0.5,
        heat_duration_s=0.3,
        pause_delay_s=0.3,
        frame_size=(320, 240),
        broker=broker,
        clutter=True,  # a cable in view the stand-in scores ~70: a pause before anything fails
    ) as world:
        settings = world.settings(tmp_path, printer_id="labels", resume_grace_s=0)
        agent = build_agent(settings, timing=TIMING)
        async with running(agent):
            await until(agent, lambda s: s.print_state == "idle")
            world.printer.panel_start("cable.gcode")
            await until(agent, lambda s: s.paused_by == "agent")
            assert (agent.state.progress or 0) < 100 * FAILURE_AT  # the cable's false alarm
            await asyncio.to_thread(probe.publish, f"{P}/command/label", "false_alarm")
            await until(agent, lambda s: s.print_state == "printing" and s.alerts_muted == "false_alarm")
            labelled = json.loads(
                (
                    await probe.wait_for(f"{P}/event", lambda p: json.loads(p)["type"] == "alert_labelled")
                ).payload
            )
            assert labelled["label"] == "false_alarm" and labelled["resumed"] and labelled["score"] >= 50
            # The cable goes on scoring high, the service goes on suggesting a pause: no second
            # pause until the spaghetti climbs clearly above the false alarm's score.
            await until(agent, lambda s: s.paused_by == "agent")
            assert (agent.state.progress or 0) >= 100 * FAILURE_AT
            assert world.printer.state == "paused"
        events = [json.loads(m.payload) for m in probe.messages(f"{P}/event")]
        kinds = [e["type"] for e in events]
        assert kinds.count("failure_paused") == 2
        paused_at = [n for n, kind in enumerate(kinds) if kind == "failure_paused"]
        assert paused_at[0] < kinds.index("alert_labelled") < kinds.index("print_resumed") < paused_at[1]


async def test_a_snooze_keeps_the_rest_of_the_print_quiet(
    broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    probe = mqtt_probe(f"{P}/#")
    with sim_world(
        file="cable.gcode",
        failure_at=None,
        print_duration_s=120.0,  # never waited out: what the test does comes long before the end
        interval_s=0.5,
        heat_duration_s=0.3,
        frame_size=(320, 240),
        broker=broker,
        clutter=True,
    ) as world:
        agent = build_agent(world.settings(tmp_path, printer_id="labels"), timing=TIMING)
        async with running(agent):
            await until(agent, lambda s: s.print_state == "idle")
            await asyncio.to_thread(probe.publish, f"{P}/command/snooze", "PRESS")  # no print: answered
            world.printer.panel_start("cable.gcode")
            await until(agent, lambda s: s.print_state == "printing")
            await asyncio.to_thread(probe.publish, f"{P}/command/snooze", "PRESS")
            await until(agent, lambda s: s.alerts_muted == "snoozed")
            # Twice the frames the stand-in needs to suggest a pause, all scoring the cable high.
            await asyncio.to_thread(world.service.wait_for_calls, len(world.service.calls) + 14, 30)
            assert agent.state.pause_suggested and world.printer.state == "printing"
        kinds = [json.loads(m.payload)["type"] for m in probe.messages(f"{P}/event")]
        assert kinds.count("alerts_snoozed") == 1
        assert "failure_warning" not in kinds and "failure_paused" not in kinds


async def test_layerguard_label_reaches_the_running_agent_over_mqtt(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The command line's false alarm on the guarded print goes to the agent, which resumes it."""
    with sim_world(
        file="cable.gcode",
        failure_at=None,
        print_duration_s=120.0,  # never waited out: what the test does comes long before the end
        interval_s=0.5,
        heat_duration_s=0.3,
        pause_delay_s=0.3,
        frame_size=(320, 240),
        broker=broker,
        clutter=True,
    ) as world:
        agent = build_agent(world.settings(tmp_path, printer_id="labels"), timing=TIMING)
        config = tmp_path / "layerguard.toml"
        config.write_text(
            f'[agent]\nprinter_id = "labels"\nstate_dir = "{tmp_path}"\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        )
        async with running(agent):
            supervisor = asyncio.create_task(supervise(agent, SystemdNotifier()))  # the health file
            await until(agent, lambda s: s.print_state == "idle")
            world.printer.panel_start("cable.gcode")
            await until(agent, lambda s: s.paused_by == "agent")
            assert (
                await asyncio.to_thread(main, ["label", "last", "false-alarm", "--config", str(config)]) == 0
            )
            await until(agent, lambda s: s.print_state == "printing" and s.alerts_muted == "false_alarm")
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
