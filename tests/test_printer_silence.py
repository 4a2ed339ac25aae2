"""A printer that goes mute mid-print, with the real agent: reported within `printer.silence_s`,
inspections go on (the SD print does), a suggested pause says it could not be sent, and the
print is followed again without a new print_started once the printer answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_end_to_end import TIMING

from agent.assembly import build_agent
from agent.outputs import Sink
from sim.world import sim_world

# Long enough that the design's worst case (a third of it, a 2 s poll, two probes of a fifth:
# 9.3 s) leaves over 3 s of scheduling slack under the bound below on a loaded machine.
SILENCE_S = 10.0


class EventLog(Sink):
    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []

    def on_event(self, event: Mapping[str, Any]) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [str(e["type"]) for e in self.events]


@pytest.mark.slow
async def test_a_mute_printer_is_reported_inspected_and_followed_again(tmp_path: Path) -> None:
    with sim_world(
        file="benchy.gcode",
        failure_at=0.45,
        print_duration_s=60.0,  # the failure (at 45 %) comes after the silence is reported
        interval_s=1,
        heat_duration_s=0.3,
        pause_delay_s=0.1,
        frame_size=(320, 240),
        broker=None,
    ) as world:
        settings = world.settings(tmp_path, printer_id="mute")
        settings.printer.silence_s = SILENCE_S
        agent = build_agent(settings, timing=TIMING)
        log = EventLog()
        agent.outputs.add(log)
        task = asyncio.create_task(agent.run())
        try:
            async with asyncio.timeout(120):
                await agent.wait_for(lambda s: s.print_state == "idle")
                world.printer.panel_start("benchy.gcode")
                await agent.wait_for(lambda s: s.score is not None)
                loop = asyncio.get_running_loop()
                world.printer.mute()
                muted_at = loop.time()
                await agent.wait_for(lambda s: s.print_state == "unknown")
                # The bound counts from the printer's last line, which is before the mute: silence_s
                # and the agent's 2 s poll, plus slack.
                assert loop.time() - muted_at <= SILENCE_S + 2.5
                assert "printer_silent" in log.types()
                calls = len(world.service.calls)
                await agent.wait_for(lambda s: s.pause_failed)  # inspected on; the failure is seen
                assert len(world.service.calls) > calls, "inspections went on while the printer was silent"
                failed = next(e for e in log.events if e["type"] == "pause_failed")
                assert "not answering" in str(failed["message"])
                assert world.printer.state == "printing", "no pause could reach it"
                world.printer.unmute()
                await agent.wait_for(lambda s: s.print_state == "printing")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    types = log.types()
    assert types.count("print_started") == 1, "the same print, followed again"
    assert "printer_responding" in types
    assert not {"print_cancelled", "print_finished", "print_lost", "failure_paused"} & set(types)
