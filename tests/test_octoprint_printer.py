"""The agent against a printer nobody here wrote: OctoPrint's VirtualPrinter on a real pty.

OctoPrint 1.11.8's virtual printer (sim/octoprint_printer.py) is a Marlin emulation by others. The
agent talks to it with its real SerialPrinter over pyserial, as on a Pi, through a whole print:
found idle, started from the printer's side, heating, progress, an auto-pause confirmed, a resume,
a panel stop, a finish, an unplugged cable, an agent restart. Where OctoPrint's printer differs
from real firmware, the test says so and cites ../shared/reference/serial.md.

Its moves run at a tenth of their G-code time, so `G1 X1 F60` takes 0.1 s: a print of N such
moves lasts about N / 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_end_to_end import TIMING, running, until

from agent.app import Agent
from agent.assembly import CONTEXT_FILE, build_agent
from agent.outputs import Sink
from sim.gadget_service import Call, GadgetStandIn
from sim.octoprint_printer import OctoPrintPrinter
from sim.snapshot_server import SnapshotServer
from sim.virtual_printer import VirtualPrinter
from sim.world import SimWorld

KEY = "octoprint-test-key-0123"
INTERVAL_S = 1
FILE = "cube.gcode"


def gcode(moves: int, *, start: tuple[str, ...] = ()) -> str:
    """A print of `moves` 0.1 s moves in OctoPrint's printer, after the `start` lines."""
    return "".join(f"{line}\n" for line in (*start, "G91", *["G1 X1 F60"] * moves))


class Recorder(Sink):
    """Every state and event the agent publishes, in order."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def on_state(self, state: Mapping[str, Any]) -> None:
        self.states.append(dict(state))

    def on_event(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))
        self._arrived.set()

    async def wait_for_event(self, event_type: str, within: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while not (found := [e for e in self.events if e["type"] == event_type]):
                self._arrived.clear()
                await self._arrived.wait()
        return found[0]

    @property
    def types(self) -> list[str]:
        """What happened to the print (the answers to commands are not: tests/test_commands.py)."""
        return [e["type"] for e in self.events if e["type"] != "command_answer"]

    def print_states(self) -> list[str]:
        """The print states published, repeats folded."""
        seen: list[str] = []
        for state in self.states:
            if not seen or seen[-1] != state["print_state"]:
                seen.append(state["print_state"])
        return seen


@contextlib.contextmanager
def octoprint_world(
    tmp_path: Path,
    files: Mapping[str, str],
    failure_at: float | None = None,
    interval_s: float = INTERVAL_S,
    printer_settings: Mapping[str, Any] | None = None,
) -> Iterator[SimWorld]:
    with ExitStack() as stack:
        printer = stack.enter_context(OctoPrintPrinter(tmp_path, files, printer_settings))
        webcam = stack.enter_context(SnapshotServer(lambda: printer.progress / 100, failure_at, 320, 240))
        service = stack.enter_context(GadgetStandIn(api_key=KEY, interval=interval_s))
        yield SimWorld(printer, webcam, service, None, KEY)


def make_agent(
    world: SimWorld, state_dir: Path, cool_down_after_s: float = 300.0, **detection: Any
) -> tuple[Agent, Recorder]:
    settings = world.settings(state_dir, printer_id="octo", **detection)
    settings.printer.cool_down_after_s = cool_down_after_s
    agent = build_agent(settings, timing=TIMING)
    recorder = Recorder()
    agent.outputs.add(recorder)
    return agent, recorder


@dataclass
class Followed:
    printer: OctoPrintPrinter
    service: GadgetStandIn
    agent: Agent
    recorder: Recorder


@contextlib.asynccontextmanager
async def following(
    tmp_path: Path,
    files: Mapping[str, str],
    failure_at: float | None = None,
    printer_settings: Mapping[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[Followed]:
    """OctoPrint's printer with `files` on its card, and an agent following it, found idle."""
    with octoprint_world(tmp_path, files, failure_at, printer_settings=printer_settings) as world:
        agent, recorder = make_agent(world, tmp_path / "state", **options)
        async with running(agent):
            await until(agent, lambda s: s.print_state == "idle")
            assert isinstance(world.printer, OctoPrintPrinter)
            yield Followed(world.printer, world.service, agent, recorder)


def process_calls(service: GadgetStandIn) -> list[Call]:
    return [c for c in service.calls if c.endpoint == "process" and c.status == 200]


async def test_found_idle_then_a_print_started_on_the_printer_is_followed_to_its_end(tmp_path: Path) -> None:
    async with following(tmp_path, {FILE: gcode(60)}) as f:
        # OctoPrint's printer answers `M27 C` like `M27` (`Not SD printing`), never with
        # `Current file:` as Marlin does (serial.md, "Knowing the print state": `M27 C` →
        # `Current file: NAME`, with nothing open `Current file: (no file)`).
        await f.printer.wait_for_async(lambda s: "M27 C" in s["received"], 30)
        f.printer.debug(f"start_sd {FILE}")  # the printer's own panel starts the print
        await until(f.agent, lambda s: s.print_state == "printing")
        await until(f.agent, lambda s: (s.progress or 0) > 0 and s.score is not None)
        await until(f.agent, lambda s: s.print_state == "idle")
    types = f.recorder.types
    assert types[0] == "print_started" and f.recorder.events[0]["file"] == FILE, types
    assert types[-1] == "print_finished"
    assert not {"print_cancelled", "print_lost", "pause_failed"} & set(types)
    # Found idle: state published, no event, and no detour through unknown.
    assert f.recorder.print_states()[:3] == ["offline", "idle", "printing"], f.recorder.print_states()
    assert f.service.contexts_created == 1
    assert not (tmp_path / "state" / CONTEXT_FILE).exists()  # the ended print's context is dropped


def last_cold_moment(printer: OctoPrintPrinter, hot_c: float, timeout_s: float = 60) -> float:
    """Once the hotend reached `hot_c`: the last moment it was known to be below. A status asked at
    `asked` and answered below `hot_c` proves it was below then (it only rises while heating),
    however late the answer comes on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    cold_at = time.monotonic()
    while time.monotonic() < deadline:
        asked = time.monotonic()
        if printer.status()["hotend"] >= hot_c:
            return cold_at
        cold_at = asked
        time.sleep(0.05)
    raise TimeoutError(f"the hotend did not reach {hot_c:g} °C within {timeout_s:g} s")


async def test_a_heating_print_is_not_inspected_and_its_frozen_byte_is_no_pause(tmp_path: Path) -> None:
    # M109 in the file: the SD byte stands still for seconds while the hotend heats, the trap of
    # serial.md ("What falsely looks like a pause": `M109`/`M190`). OctoPrint's printer answers no
    # host command meanwhile, as Marlin does, and prints `T:` lines without a target.
    target = 60.0
    async with following(tmp_path, {FILE: gcode(80, start=(f"M109 S{target:g}",))}) as f:
        # While it heats for M109, OctoPrint's printer prints `T:31.37` lines without the
        # target, where Marlin prints `T:31.37 /60.00 B:...` (serial.md, "Temperatures"), and it
        # takes no command, so an `M155` sent then would wait: start once auto-reports are on.
        await f.printer.wait_for_async(lambda s: "M155 S2" in s["received"], 30)
        f.printer.debug(f"start_sd {FILE}")
        # The agent counts a hotend within 3 °C of its target as hot (HEATING_MARGIN_C): from
        # then on it may inspect. It learns the temperature from reports, so never earlier.
        cold_at = await asyncio.to_thread(last_cold_moment, f.printer, target - 3)
        await asyncio.to_thread(f.service.wait_for_calls, 2, 30)
        await until(f.agent, lambda s: s.print_state == "idle")
    early = [c for c in process_calls(f.service) if c.at < cold_at]
    assert not early, f"{len(early)} Process calls while the printer was still heating"
    assert f.recorder.types == ["print_started", "print_finished"]  # the frozen byte was no pause


async def test_an_auto_pause_is_confirmed_and_a_resume_on_the_panel_is_seen(tmp_path: Path) -> None:
    files = {FILE: gcode(300, start=("M104 S50",))}
    async with following(tmp_path, files, 0.1, cool_down_after_s=0.5, resume_grace_s=60) as f:
        f.printer.debug(f"start_sd {FILE}")
        await until(f.agent, lambda s: s.paused_by == "agent" or s.pause_failed)
        assert not f.agent.state.pause_failed, f.recorder.events
        assert f.agent.state.print_state == "paused"
        status = f.printer.status()
        # OctoPrint's printer stops its SD reader the moment M25 arrives; real Marlin first runs
        # the queued moves ("takes effect after queued moves drain (seconds)", serial.md
        # "Pausing"), so there the byte freezes later than here.
        assert status["sd"] == "paused"
        assert status["received"].count("M25") == 1
        # The hotend cooldown of a pause without parking is armed (serial.md, "After the pause is
        # confirmed": do not leave a hot nozzle resting on the part).
        await f.printer.wait_for_async(lambda s: s["hotend_target"] == 0, 30)
        calls = len(process_calls(f.service))
        f.printer.panel_resume()  # the user cleared the bed and pressed Resume on the printer
        await until(f.agent, lambda s: s.print_state == "printing")
        assert f.agent.state.paused_by is None
        await asyncio.to_thread(f.service.wait_for_calls, len(f.service.calls) + 1, 30)
    types = f.recorder.types
    assert types[:2] == ["print_started", "failure_warning"], types
    assert "failure_paused" in types and "pause_failed" not in types
    assert types.index("failure_paused") < types.index("print_resumed")
    assert "print_cancelled" not in types
    assert len(process_calls(f.service)) > calls  # inspections go on after the resume


async def test_a_resume_over_mqtt_meets_octoprints_m24_which_ends_the_print(tmp_path: Path) -> None:
    # OctoPrint 1.11.8's printer ends a paused SD print on `M24` with `Done printing file`, where
    # Marlin resumes it ("Resume with `M24`", serial.md "Pausing"). The agent must say what the
    # printer said: the print finished, it did not resume.
    async with following(tmp_path, {FILE: gcode(300, start=("M104 S50",))}) as f:
        f.printer.debug(f"start_sd {FILE}")
        await until(f.agent, lambda s: s.print_state == "printing" and s.score is not None)
        f.agent.on_command("pause", "")  # the user's Pause button in Home Assistant
        await until(f.agent, lambda s: s.paused_by == "user" or s.pause_failed)
        assert f.agent.state.print_state == "paused"
        assert f.printer.status()["sd"] == "paused"
        f.agent.on_command("resume", "")
        await until(f.agent, lambda s: s.print_state == "idle")
        assert f.printer.status()["sd"] == "idle"
        failed = await f.recorder.wait_for_event("pause_failed", within=30)
    assert failed["resume"] is True and "ended the print" in failed["message"], failed
    assert "print_finished" in f.recorder.types and "print_resumed" not in f.recorder.types


async def test_a_print_stopped_on_the_panel_ends_and_the_next_one_starts(tmp_path: Path) -> None:
    async with following(tmp_path, {FILE: gcode(400), "vase.gcode": gcode(400)}) as f:
        f.printer.debug(f"start_sd {FILE}")
        await until(f.agent, lambda s: s.print_state == "printing" and s.score is not None)
        # The panel's Stop with host actions on: the abort and `//action:cancel` (serial.md,
        # "stopped from the printer's panel"). OctoPrint's printer prints no action itself.
        f.printer.panel_stop()
        f.printer.debug("action_custom cancel")
        await until(f.agent, lambda s: s.print_state == "idle")
        assert f.recorder.types[-1] == "print_cancelled"
        calls = len(process_calls(f.service))
        # Now a stop without host actions: only `Not SD printing` remains, and OctoPrint's
        # printer cannot say with `M27 C` whether a file is still open (see the first test).
        f.printer.debug("start_sd vase.gcode")
        await until(f.agent, lambda s: s.print_state == "printing" and s.file == "vase.gcode")
        await asyncio.to_thread(f.service.wait_for_calls, len(f.service.calls) + 1, 30)
        f.printer.panel_stop()
        await until(f.agent, lambda s: s.print_state != "printing")
        f.printer.debug(f"start_sd {FILE}")
        await until(f.agent, lambda s: s.file == FILE and s.score is not None)  # inspected anew
    starts = [i for i, kind in enumerate(f.recorder.types) if kind == "print_started"]
    second = f.recorder.types[starts[1] :]  # not index(…, 1): a loaded start may say printer_silent first
    assert second[-1] == "print_started"
    ends = [t for t in second if t in ("print_cancelled", "print_lost", "print_finished")]
    assert ends in (["print_cancelled"], ["print_lost"]), f.recorder.types
    assert calls < len(process_calls(f.service))
    assert f.service.contexts_created == 3


async def test_an_unplugged_cable_mid_print_is_the_same_print_when_it_comes_back(tmp_path: Path) -> None:
    async with following(tmp_path, {FILE: gcode(400)}) as f:
        f.printer.debug(f"start_sd {FILE}")
        await until(f.agent, lambda s: s.print_state == "printing" and s.score is not None)
        f.printer.unplug()
        await until(f.agent, lambda s: s.print_state == "offline")
        f.printer.replug()
        await until(f.agent, lambda s: s.print_state == "printing")
        await asyncio.to_thread(f.service.wait_for_calls, len(f.service.calls) + 1, 30)
    assert f.recorder.types == ["print_started"], f.recorder.types  # no second start, nothing lost
    assert "offline" in f.recorder.print_states()
    assert f.service.contexts_created == 1


async def test_garbled_and_lost_lines_neither_stop_the_follow_nor_the_pause(tmp_path: Path) -> None:
    # OctoPrint's printer garbles numbered lines on purpose (its `simulated_errors`, by default at
    # lines 100-115): `resend` (`Error: Missing checksum`, `Resend: N`, `ok`), `resend_with_timeout`
    # (the same, then no answer at all to the resent line), `checksum_mismatch`. Real Marlin
    # answers a bad line with `Resend: N` and `ok` (serial.md, "Sending"); a line lost without
    # a word is what a noisy cable does. Here they come early (no auto-reports: the agent polls
    # `M27` and `M105`). Left out: its `missing_lineno`, whose renumbering (`M110`) re-arms every
    # simulated error, a storm no cable makes.
    settings = {
        "capabilities": {"AUTOREPORT_SD_STATUS": False, "AUTOREPORT_TEMP": False},
        "simulated_errors": ["4:resend", "6:resend_with_timeout", "9:checksum_mismatch"],
    }
    async with following(tmp_path, {FILE: gcode(400)}, printer_settings=settings) as f:
        f.printer.debug(f"start_sd {FILE}")
        await until(f.agent, lambda s: s.print_state == "printing")
        await f.printer.wait_for_async(lambda s: len(s["received"]) >= 13, 30)  # past line 9
        f.agent.on_command("pause", "")
        await f.printer.wait_for_async(lambda s: "M25" in s["received"], 30)
        f.printer.debug("dont_answer")  # the next line is lost: a query of the pause's confirmation
        await until(f.agent, lambda s: s.paused_by == "user" or s.pause_failed)
        assert f.agent.state.print_state == "paused", f.recorder.events
        status = f.printer.status()
        assert status["sd"] == "paused" and status["received"].count("M25") == 1
    assert f.recorder.types[:2] == ["print_started", "print_paused"], f.recorder.types
    assert not {"printer_error", "pause_failed", "print_lost", "print_cancelled"} & set(f.recorder.types)


# -- a restart mid-print on a printer that never names its file (issue 10, item 5) --------------

RESTART_INTERVAL_S = 3.0


@contextlib.contextmanager
def klipper_world(tmp_path: Path, interval_s: float) -> Iterator[SimWorld]:
    with ExitStack() as stack:
        printer = stack.enter_context(
            VirtualPrinter({FILE: gcode(400)}, profile="klipper", print_duration_s=60, heat_duration_s=0.1)
        )
        webcam = stack.enter_context(SnapshotServer(lambda: printer.progress / 100, None, 320, 240))
        service = stack.enter_context(GadgetStandIn(api_key=KEY, interval=interval_s))
        yield SimWorld(printer, webcam, service, None, KEY)


def start_print(world: SimWorld) -> None:
    if isinstance(world.printer, OctoPrintPrinter):
        world.printer.debug(f"start_sd {FILE}")
    else:
        world.printer.panel_start(FILE)


@pytest.mark.parametrize("firmware", ["octoprint", "klipper"])
async def test_an_agent_restarted_mid_print_keeps_the_context_and_its_pace(
    tmp_path: Path, firmware: str
) -> None:
    if firmware == "octoprint":
        made = octoprint_world(tmp_path, {FILE: gcode(600)}, interval_s=RESTART_INTERVAL_S)
    else:
        made = klipper_world(tmp_path, RESTART_INTERVAL_S)
    with made as world:
        state_dir = tmp_path / "state"
        first, _ = make_agent(world, state_dir)
        async with running(first):
            await until(first, lambda s: s.print_state == "idle")
            start_print(world)
            await until(first, lambda s: s.print_state == "printing")
            await asyncio.to_thread(world.service.wait_for_calls, 3, 30)  # createcontext + 2 Process
        last_call = process_calls(world.service)[-1].at
        calls = len(world.service.calls)
        # The restarted agent opens the port again and finds the print running; neither printer
        # names the file then (OctoPrint's printer has no `M27 C` name, Klipper never names it).
        second, recorder = make_agent(world, state_dir)
        async with running(second):
            await until(second, lambda s: s.print_state == "printing")
            await asyncio.to_thread(world.service.wait_for_calls, calls + 1, 30)
        after = world.service.calls[calls:]
        assert [c.endpoint for c in after][:1] == ["process"], "a second context for the same print"
        assert world.service.contexts_created == 1
        gap = after[0].at - last_call
        assert gap >= RESTART_INTERVAL_S - 0.2, f"Process call {gap:.2f} s after the last one"
        assert "print_cancelled" not in recorder.types and "print_lost" not in recorder.types
