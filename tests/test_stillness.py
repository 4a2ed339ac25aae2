"""A print that stops moving: no inspections paid for a dead print, `print_stalled` for a stuck
one, nothing for a heat-up, a long G4 or LayerGuard's own pause. Real agent, virtual printer over
a pty, the webcam and the stand-in on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from PIL import Image
from test_end_to_end import TIMING, running, until
from test_octoprint_printer import FILE, gcode, make_agent, octoprint_world

from agent.app import Agent
from agent.assembly import build_agent
from agent.outputs import Sink
from agent.stillness import StillWatch
from hardware.camera.motion import thumbnail
from hardware.printer.events import PrinterEvent, PrinterEventKind
from sim.frames import render_frame
from sim.octoprint_printer import OctoPrintPrinter
from sim.world import SimWorld, sim_world

STILL_S = 2.0
INTERVAL_S = 0.3


class Events(Sink):
    """The agent's events, as its output stream carries them."""

    name = "events"

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def on_event(self, event: Any) -> None:
        self.seen.append(dict(event))

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.seen]


@contextlib.contextmanager
def world(**extra: Any) -> Iterator[SimWorld]:
    with sim_world(
        file="long.gcode",
        failure_at=None,
        print_duration_s=120.0,
        interval_s=INTERVAL_S,
        heat_duration_s=0.3,
        frame_size=(320, 240),
        broker=None,
        **extra,
    ) as made:
        yield made


@contextlib.asynccontextmanager
async def printing(made: SimWorld, tmp_path: Path) -> AsyncIterator[tuple[Agent, Events]]:
    settings = made.settings(tmp_path, printer_id="still", still_after_s=STILL_S, stalled_after_s=STILL_S)
    settings.printer.silence_s = 60  # a stall must not be taken for a silent printer here
    agent = build_agent(settings, timing=TIMING)
    events = Events()
    agent.outputs.add(events)
    async with running(agent):
        await until(agent, lambda s: s.print_state == "idle")
        made.printer.panel_start("long.gcode")
        await until(agent, lambda s: s.last_inspection is not None)
        yield agent, events


def process_calls(made: SimWorld) -> int:
    return sum(1 for c in made.service.calls if c.endpoint == "process")


def live_scene(made: SimWorld) -> None:
    """The camera shows something moving (the print head, say) whatever the printer does."""
    started = time.monotonic()
    made.webcam.progress = lambda: ((time.monotonic() - started) / 8) % 1.0


async def test_an_unplugged_printer_and_a_still_picture_stop_inspections_until_the_scene_moves(
    tmp_path: Path,
) -> None:
    with world() as made:
        async with printing(made, tmp_path) as (agent, events):
            made.printer.vanish()  # switched off mid-print: the print and its picture stop
            unplugged = time.monotonic()
            await until(agent, lambda s: s.print_still, within=STILL_S + 15)
            assert time.monotonic() - unplugged >= STILL_S
            calls = process_calls(made)
            await asyncio.sleep(10 * INTERVAL_S)  # waiting for something that must NOT happen
            assert process_calls(made) == calls
            assert events.kinds().count("print_still") == 1
            still = next(e for e in events.seen if e["type"] == "print_still")
            assert still["file"] == "long.gcode" and still["still_for_s"] == STILL_S
            live_scene(made)  # the scene comes back: looked at without paying, then inspected again
            await until(agent, lambda s: not s.print_still, within=15)
            await asyncio.to_thread(made.service.wait_for_calls, len(made.service.calls) + 2, 15)
        assert "print_stalled" not in events.kinds()


async def test_a_live_picture_keeps_an_unplugged_print_inspected(tmp_path: Path) -> None:
    with world() as made:
        live_scene(made)
        async with printing(made, tmp_path) as (agent, events):
            made.printer.vanish()
            await until(agent, lambda s: s.print_state != "printing")
            calls = process_calls(made)
            await asyncio.sleep(3 * STILL_S)  # longer than the bound: the picture keeps moving
            assert not agent.state.print_still and process_calls(made) > calls + 3
        assert "print_still" not in events.kinds()


async def test_a_print_that_stands_still_while_the_printer_says_printing_is_stalled_once(
    tmp_path: Path,
) -> None:
    """A stuck printer that still answers and does not say busy: its byte and picture freeze."""
    with world() as made:
        async with printing(made, tmp_path) as (agent, events):
            made.printer.busy_interval_s = 1e6  # no keepalive busy lines
            made.printer.stall(4 * STILL_S + 6)
            await until(agent, lambda s: "print_stalled" in events.kinds(), within=4 * STILL_S)
            assert agent.state.print_state == "printing" and not agent.state.print_still
            await made.printer.wait_for_async(lambda: not made.printer.stalled, 4 * STILL_S + 10)
            await asyncio.to_thread(made.service.wait_for_calls, len(made.service.calls) + 3, 15)
        assert events.kinds().count("print_stalled") == 1
        stalled = next(e for e in events.seen if e["type"] == "print_stalled")
        assert stalled["file"] == "long.gcode"


async def test_heating_a_long_g4_and_layerguards_own_pause_are_not_stalls(tmp_path: Path) -> None:
    with world() as made:
        async with printing(made, tmp_path) as (agent, events):
            made.printer.busy_interval_s = STILL_S / 5  # Marlin's ~2 s against the default 600 s
            for kind in ("heat", "dwell"):  # Marlin says echo:busy: processing meanwhile
                made.printer.stall(3 * STILL_S, kind)
                await made.printer.wait_for_async(lambda: made.printer.stalled, 5)
                await made.printer.wait_for_async(lambda: not made.printer.stalled, 3 * STILL_S + 10)
            agent.on_command("pause", "PRESS")
            await until(agent, lambda s: s.print_state == "paused")
            await asyncio.sleep(2 * STILL_S)  # waiting for something that must NOT happen
        assert "print_stalled" not in events.kinds() and "print_still" not in events.kinds()


async def test_octoprints_printer_unplugged_with_a_still_picture_stops_inspections(tmp_path: Path) -> None:
    """The same with a printer nobody here wrote: OctoPrint's VirtualPrinter, its cable pulled."""
    with octoprint_world(tmp_path, {FILE: gcode(600)}) as made:
        agent, _ = make_agent(made, tmp_path / "state", still_after_s=STILL_S, stalled_after_s=STILL_S)
        events = Events()
        agent.outputs.add(events)
        async with running(agent):
            await until(agent, lambda s: s.print_state == "idle")
            assert isinstance(made.printer, OctoPrintPrinter)
            made.printer.debug(f"start_sd {FILE}")
            await until(agent, lambda s: s.print_state == "printing" and s.score is not None)
            frozen = made.printer.progress / 100
            made.webcam.progress = lambda: frozen  # the printer switched off: nothing moves in view
            made.printer.unplug()
            await until(agent, lambda s: s.print_still, within=STILL_S + 15)
            calls = process_calls(made)
            await asyncio.sleep(5 * INTERVAL_S)  # waiting for something that must NOT happen
            assert process_calls(made) == calls
            made.printer.replug()  # the printer answers again: inspections go on
            await until(agent, lambda s: not s.print_still and s.print_state == "printing")
        assert events.kinds().count("print_still") == 1 and "print_stalled" not in events.kinds()


def test_the_watch_counts_heat_busy_and_position_as_moving() -> None:
    now = [0.0]
    watch = StillWatch(clock=lambda: now[0])
    frame = thumbnail(render_frame(0.3, None, 320, 240))
    watch.frame(frame)

    def at(t: float, **fields: Any) -> None:
        now[0] = t
        watch.printer(PrinterEvent(fields.pop("kind", PrinterEventKind.TEMPERATURE), **fields))

    at(5, sd_position=100)
    at(14, sd_position=100, heating=True)  # heating: the print waits, it has not stalled
    at(23, sd_position=100)
    assert not watch.printer_still(10) and watch.scene_still(10)
    at(30, kind=PrinterEventKind.BUSY, sd_position=100)  # a long move or a G4 dwell
    at(39, sd_position=100)
    assert not watch.printer_still(10)
    at(40, sd_position=100)
    assert watch.printer_still(10)
    assert watch.frame(thumbnail(render_frame(0.5, None, 320, 240)))
    assert not watch.scene_still(10)
    assert not watch.scene_still(0) and not watch.printer_still(0)  # 0: off


def test_a_thumbnail_sees_a_growing_part_but_not_noise() -> None:
    from hardware.camera.motion import changed

    first = thumbnail(render_frame(0.3, None, 1280, 720, seed=1))
    again = thumbnail(render_frame(0.3, None, 1280, 720, seed=2))  # other sensor noise
    later = thumbnail(render_frame(0.31, None, 1280, 720, seed=3))
    assert isinstance(first, Image.Image) and again is not None and later is not None
    assert not changed(first, again) and changed(first, later)
    assert thumbnail(b"\xff\xd8 not a jpeg") is None
