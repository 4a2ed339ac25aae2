"""SerialPrinter against the virtual Marlin printer over a real pseudo-terminal: no mocks, no sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from hardware.printer.base import PauseFailed
from hardware.printer.events import PrinterEvent
from hardware.printer.events import PrinterEventKind as K
from hardware.printer.link import CommandFailed, SerialPrinter
from sim.virtual_printer import DEFAULT_FILE, VirtualPrinter

# A deadline for an event that comes: costs nothing when it does, so sized for a loaded 2-core machine.
WAIT_S = 30.0
# A print no test waits out: the firmware's clock runs on while a loaded machine is slow to act, so
# what a test does mid-print must come long before the end (a 4 s print ended first, beside two
# emulated Pi guests). Leaving the printer's block ends it; a test that follows a print to its end
# lets it end with end_now() once it has seen what it came for.
LONG_PRINT_S = 120.0


def end_now(vp: VirtualPrinter) -> None:
    """The rest of the print at once (the printer's next tick finishes it)."""
    vp.print_duration_s = 0.0


class Events:
    """The sink under test: records events and lets a test wait for them."""

    def __init__(self) -> None:
        self.seen: list[PrinterEvent] = []
        self.threads: set[int] = set()
        self._changed = asyncio.Event()

    def __call__(self, event: PrinterEvent) -> None:
        self.seen.append(event)
        self.threads.add(threading.get_ident())
        self._changed.set()

    def of(self, kind: K) -> list[PrinterEvent]:
        return [event for event in self.seen if event.kind is kind]

    def kinds(self) -> list[K]:
        """Everything but temperatures (they come whenever the heaters move) and the `idle` found
        at connect (it races the test's first panel press)."""
        return [event.kind for event in self.seen if event.kind not in (K.TEMPERATURE, K.IDLE)]

    async def wait_for(self, kind: K, count: int = 1, timeout_s: float = WAIT_S) -> PrinterEvent:
        async with asyncio.timeout(timeout_s):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[count - 1]


@pytest.fixture
def vp() -> Iterator[VirtualPrinter]:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.2, pause_delay_s=0.1) as printer:
        yield printer


@pytest.fixture
def events() -> Events:
    return Events()


@contextlib.asynccontextmanager
async def running(port: str, events: Events, **options: Any) -> AsyncIterator[SerialPrinter]:
    """A SerialPrinter with fast test timings, its run() task cancelled on exit."""
    settings: dict[str, Any] = {
        "poll_interval_s": 0.05,
        "confirm_timeout_s": 10.0,  # a pause is confirmed in well under 1 s, unless the test says so
        "confirm_window_s": 0.15,
        "reconnect_interval_s": 0.05,
    }
    printer = SerialPrinter(port, 115200, "auto", events, **(settings | options))
    task = asyncio.create_task(printer.run())
    try:
        yield printer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def start_print(vp: VirtualPrinter, events: Events) -> None:
    await events.wait_for(K.CONNECTED)
    vp.panel_start()
    await events.wait_for(K.PRINT_STARTED)


async def test_connects_and_identifies_marlin(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events) as printer:
        connected = await events.wait_for(K.CONNECTED)
    assert connected.firmware.startswith("Marlin")
    assert connected.dialect == "marlin"
    assert printer.firmware.has("AUTOREPORT_SD_STATUS")
    assert vp.received[:2] == ["M110 N0", "M115"]


async def test_follows_a_panel_print_to_the_end(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events):
        await start_print(vp, events)
        await events.wait_for(K.PROGRESS, count=3)
        end_now(vp)
        finished = await events.wait_for(K.FINISHED)
    kinds = events.kinds()
    assert kinds[:2] == [K.CONNECTED, K.PRINT_STARTED]
    assert kinds[-1] is K.FINISHED
    assert set(kinds[2:-1]) == {K.PROGRESS}
    progress = [event.progress or 0.0 for event in events.of(K.PROGRESS)]
    assert len(progress) >= 3
    assert progress == sorted(set(progress)), "progress is reported once per change, only forward"
    assert finished.file == DEFAULT_FILE
    assert any(event.temperatures["hotend_target"] == 205.0 for event in events.of(K.TEMPERATURE))
    assert events.threads == {threading.get_ident()}, "events arrive on the event loop thread"


async def test_agent_pause_and_resume_are_confirmed(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events) as printer:
        await start_print(vp, events)
        await printer.pause()
        assert vp.state == "paused"
        assert "M25" in vp.received
        await printer.resume()
        assert vp.state in ("heating", "printing")
        end_now(vp)
        await events.wait_for(K.FINISHED)
    assert events.kinds().count(K.PAUSED) == 1
    assert events.kinds().count(K.RESUMED) == 1


async def test_marlin_2_1_1_pause_is_confirmed_by_the_open_file(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, profile="marlin-2.1.1") as vp:
        async with running(vp.port, events) as printer:
            await start_print(vp, events)
            await printer.pause()
            assert "M27 C" in vp.received[vp.received.index("M25") :]
            vp.panel_stop()
            await events.wait_for(K.CANCELLED)


async def test_panel_pause_resume_and_stop(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events):
        await start_print(vp, events)
        vp.panel_pause()
        await events.wait_for(K.PAUSED)
        vp.panel_resume()
        await events.wait_for(K.RESUMED)
        vp.panel_stop()
        cancelled = await events.wait_for(K.CANCELLED)
    assert cancelled.file == DEFAULT_FILE
    assert K.FINISHED not in events.kinds()


async def test_checksum_errors_are_resent(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events) as printer:
        await start_print(vp, events)
        vp.request_resend(2)  # the next line fails, and so does its first resend
        await printer.pause()
    assert vp.resends == 2
    assert vp.state == "paused"


async def test_unconfirmed_pause_raises_pause_failed(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, ignore={"M25"}) as vp:
        async with running(vp.port, events, confirm_timeout_s=0.3) as printer:
            await start_print(vp, events)
            with pytest.raises(PauseFailed, match="M25"):
                await printer.pause()
            assert vp.state == "printing"
            assert "M25" in vp.received
    assert K.PAUSED not in events.kinds()


async def test_printer_restart_ends_the_print_and_the_link_carries_on(
    vp: VirtualPrinter, events: Events
) -> None:
    async with running(vp.port, events) as printer:
        await start_print(vp, events)
        vp.reset()
        error = await events.wait_for(K.ERROR)
        assert "restarted" in error.message
        vp.panel_start()
        await events.wait_for(K.PRINT_STARTED, count=2)
        await printer.pause()  # numbered lines are accepted again after a fresh M110
    assert vp.received.count("M110 N0") == 2


async def test_busy_lines_extend_the_command_deadline(events: Events) -> None:
    # The heat-up lasts two and a half command timeouts, so only the busy lines can keep M109
    # alive. One comes every 0.05 s: the 2.5 s timeout holds through a 50-fold delay of the
    # printer's or the link's thread (1 s was not enough beside two emulated Pi guests).
    with VirtualPrinter(heat_duration_s=6.0, busy_interval_s=0.05) as vp:
        async with running(vp.port, events) as printer:
            await events.wait_for(K.CONNECTED)
            reply = await printer.send("M109 S200", timeout_s=2.5)
            assert reply[-1] == "ok"
            assert vp.temperatures["hotend"] >= 199.5


async def test_auto_reports_replace_polling_when_the_firmware_offers_them(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0) as vp:
        async with running(vp.port, events, poll_interval_s=1.0):
            await start_print(vp, events)
    assert {"M27 S1", "M155 S1"} <= set(vp.received)
    assert "M27" not in vp.received
    assert "M105" not in vp.received


async def test_missing_port_is_retried_until_the_printer_appears(tmp_path: Path, events: Events) -> None:
    port = str(tmp_path / "ttyACM0")
    async with running(port, events) as printer:
        disconnected = await events.wait_for(K.DISCONNECTED)
        assert "cannot open" in disconnected.message
        with pytest.raises(PauseFailed, match="not connected"):
            await printer.pause()
        with VirtualPrinter(port=port):
            await events.wait_for(K.CONNECTED)
    assert events.kinds() == [K.DISCONNECTED, K.CONNECTED], "one DISCONNECTED however many retries"


async def test_an_outage_is_logged_when_it_starts_and_when_it_ends(
    tmp_path: Path, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    port = str(tmp_path / "ttyACM0")
    caplog.set_level(logging.INFO, logger="hardware.printer.link")
    async with running(port, events) as printer:
        await events.wait_for(K.DISCONNECTED)
        async with asyncio.timeout(WAIT_S):  # the outage: attempts 0.05 s apart, at least five
            while printer._unavailable.failures < 5:  # noqa: ASYNC110 (a count, not an event)
                await asyncio.sleep(0.05)
        with VirtualPrinter(port=port):
            await events.wait_for(K.CONNECTED)
    lines = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or "again" in r.getMessage()
    ]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"printer on {port}: unavailable (cannot open")
    attempts = int(lines[1].split("(")[1].split()[0])
    # Its duration is whole seconds: under a second quiet, more on a loaded machine.
    assert re.match(f"printer on {re.escape(port)}: working again after \\d+ s \\(", lines[1])
    assert attempts >= 5


async def test_lost_device_is_reported_and_reconnected(tmp_path: Path, events: Events) -> None:
    port = str(tmp_path / "ttyACM0")
    async with running(port, events):
        with VirtualPrinter(port=port):
            await events.wait_for(K.CONNECTED)
        await events.wait_for(K.DISCONNECTED)
        with VirtualPrinter(port=port):
            await events.wait_for(K.CONNECTED, count=2)
    assert events.kinds()[:3] == [K.CONNECTED, K.DISCONNECTED, K.CONNECTED]


async def test_cancelling_run_releases_the_port(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events):
        await events.wait_for(K.CONNECTED)
    with serial.Serial(vp.port, 115200, timeout=0, exclusive=True):
        pass  # would raise if the link still held the exclusive lock


async def test_garbage_and_broken_bytes_change_nothing(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events) as printer:
        await start_print(vp, events)
        vp.send_raw(b"\xff\xfe\x00garbage\x80\n" + b"N\xc3(ok" + b"\n//action:\n")
        await printer.pause()
    assert events.kinds().count(K.CONNECTED) == 1, "garbage is no reason to reopen the port"
    assert vp.state == "paused"


async def test_resend_when_the_firmware_sends_no_ok_after_it(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, ok_after_resend=False) as vp:
        async with running(vp.port, events) as printer:
            await start_print(vp, events)
            vp.request_resend(1)
            await printer.pause()
            reply = await printer.send("M105")  # the ok count is still in step
    assert vp.resends == 1
    assert reply[-1].startswith("ok T:")


async def test_a_lost_ok_is_probed_with_m105(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events) as printer:
        await events.wait_for(K.CONNECTED)
        vp.drop_ok("M400")
        with pytest.raises(CommandFailed, match="answers M105, so that ok was lost"):
            # The probe gets as long as the command: 2 s is room for M105's answer under load.
            await printer.send("M400", timeout_s=2.0)
        assert (await printer.send("M400"))[-1] == "ok"


async def test_a_halted_printer_fails_the_probe_too(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, poll_interval_s=10.0) as printer:
        await events.wait_for(K.CONNECTED)
        await vp.wait_for_async(lambda: "M27 C" in vp.received, WAIT_S)  # the handshake's last
        await printer.send("M105")  # queued behind it: the handshake is over once this returns
        vp.kill()
        await events.wait_for(K.ERROR)
        with pytest.raises(CommandFailed, match="not responding"):
            await printer.send("M400", timeout_s=0.2)


async def test_a_slow_pause_is_confirmed_by_the_second_attempt(events: Events) -> None:
    # The printer pauses 5 s after the first M25 arrives: never within the first attempt's 4 s
    # (its clock starts before the send), and 1 s into the second, which leaves 3 s for the evidence
    # (a few polls and the 0.15 s window) on a loaded machine.
    with VirtualPrinter(print_duration_s=30.0, heat_duration_s=0.0, pause_delay_s=5.0) as vp:
        async with running(vp.port, events, confirm_timeout_s=4.0) as printer:
            await start_print(vp, events)
            await printer.pause()
    assert vp.received.count("M25") == 2
    assert vp.state == "paused"


async def test_pause_without_a_print_fails_at_once(vp: VirtualPrinter, events: Events) -> None:
    # "At once": well before the 30 s a confirmation could take; 10 s is room for a loaded machine.
    async with running(vp.port, events, confirm_timeout_s=30.0) as printer:
        await events.wait_for(K.CONNECTED)
        async with asyncio.timeout(10):
            with pytest.raises(PauseFailed, match="reports idle"):
                await printer.pause()
    assert "M25" not in vp.received


async def test_ambiguous_reports_make_the_state_unknown(events: Events) -> None:
    # Marlin without host actions nor `M27 C`: a paused print and a stopped one look the same.
    with VirtualPrinter(
        print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, profile="marlin-2.1.1", current_file=False
    ) as vp:
        async with running(vp.port, events) as printer:
            await start_print(vp, events)
            vp.panel_pause()
            unknown = await events.wait_for(K.UNKNOWN)
            assert printer.print_state.value == "unknown"
            vp.panel_resume()
            await events.wait_for(K.CONTINUED)  # running again: the same print, found, not guessed
    assert unknown.file == DEFAULT_FILE
    assert events.kinds().count(K.PRINT_STARTED) == 1
    assert K.CANCELLED not in events.kinds() and K.PAUSED not in events.kinds()


async def test_a_paused_print_found_at_connect_is_unknown(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, profile="marlin-2.1.1") as vp:
        vp.panel_start()
        vp.panel_pause()  # paused, or only selected? Marlin's reports cannot tell
        async with running(vp.port, events):
            unknown = await events.wait_for(K.UNKNOWN)
            vp.panel_stop()
            await events.wait_for(K.IDLE)
    assert unknown.file == DEFAULT_FILE


async def test_a_running_print_found_at_connect(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0) as vp:
        vp.panel_start()
        async with running(vp.port, events):
            started = await events.wait_for(K.PRINT_STARTED)
    assert started.file == DEFAULT_FILE


async def test_a_print_too_short_to_poll_is_seen(events: Events) -> None:
    with VirtualPrinter(print_duration_s=0.05, heat_duration_s=0.0, autoreport=False) as vp:
        async with running(vp.port, events, poll_interval_s=1.0):
            await events.wait_for(K.TEMPERATURE)  # the first poll is over; the next is a second away
            vp.panel_start()
            finished = await events.wait_for(K.FINISHED)
    assert events.kinds()[-2:] == [K.PRINT_STARTED, K.FINISHED]
    assert K.PROGRESS not in events.kinds(), "no poll saw it running"
    assert finished.file == DEFAULT_FILE


async def test_paused_marlin_is_not_asked_for_its_file_on_every_poll(events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, profile="marlin-2.1.1") as vp:
        async with running(vp.port, events) as printer:
            await start_print(vp, events)
            await printer.pause()
            checks = vp.received.count("M27 C")
            polls = vp.received.count("M27")
            await vp.wait_for_async(lambda: vp.received.count("M27") >= polls + 10, 30.0)
    assert vp.received.count("M27 C") - checks <= 10 // 5 + 1


async def test_a_runout_pause_and_resume_are_followed(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events):
        await start_print(vp, events)
        vp.runout()
        await events.wait_for(K.PAUSED)
        vp.panel_resume()
        await events.wait_for(K.RESUMED)


async def test_a_power_cycle_while_unplugged_shows_the_print_gone(vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events):
        await start_print(vp, events)
        vp.vanish()
        await events.wait_for(K.DISCONNECTED)
        vp.reappear(reset=True)
        await events.wait_for(K.CONNECTED, count=2)
        lost = await events.wait_for(K.LOST)
    assert lost.file == DEFAULT_FILE and lost.state.value == "idle"
    assert K.FINISHED not in events.kinds() and K.CANCELLED not in events.kinds()
