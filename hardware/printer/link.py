"""SerialPrinter: the agent's printer over USB serial, following an SD print and pausing it.

One command is in flight at a time and every line is numbered and checksummed, because a
garbled `M25` must be resent, not lost. Print state comes from the firmware's reports (answers to
polls, auto-reports, host actions), not from the reply to a particular command, so a late `ok`
or a missed poll never confuses it; follower.py decides it. Everything runs on the event loop.

A pause or resume is driven until the printer confirms it by confirmation.py (the firmware's
own evidence, evidence.py, per dialect); the link feeds it every report and event. Through a pause
LayerGuard made, the hotend cools after a while (cooldown.py) and the motors stay on (motor_hold.py).

A printer that stops sending anything is probed; without an answer within `silence_s` the
follower says `unknown` (SILENT) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from hardware.printer.base import EventSink, PauseFailed
from hardware.printer.confirmation import Confirmation
from hardware.printer.cooldown import HeaterPolicy
from hardware.printer.dialects import (
    DIALECTS,
    MARLIN,
    Dialect,
    FirmwareInfo,
    choose_dialect,
    parse_firmware_info,
)
from hardware.printer.events import PrinterEvent, PrinterEventKind, PrintState
from hardware.printer.evidence import CONFIRM_WINDOW_S
from hardware.printer.follower import KLIPPER_STALL_S, PrintFollower
from hardware.printer.motor_hold import MotorHold
from hardware.printer.protocol import HELLO, CommandFailed, LineKind, LineNumbers, classify, resend_number
from hardware.printer.reports import PrinterReset, Report, SdProgress, Temperatures, parse_report
from hardware.printer.transport import LinkLost, SerialTransport
from hardware.quiet_log import LastingCondition

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0  # without an ok (or busy) for this long, give up on a command
HELLO_TIMEOUT_S = 2.0
PROBE = "M105"  # sent after a timeout: its `ok T:...` cannot be mistaken for a late plain `ok`
# Marlin sends the `ok` of a garbled line right after `Resend:`; some firmware sends none. The
# resent line goes out when that ok arrives, or after this long without it.
RESEND_OK_GRACE_S = 0.2
FILE_CHECK_EVERY = 5  # Marlin, paused or unknown: ask `M27 C` every this many polls, not every one
COOL_DOWN_AFTER_S = 300.0
REHEAT_TIMEOUT_S = 600.0
# Nothing heard for a third of this: probe with M105 (two tries of a fifth each); no answer: SILENT.
# With a 2 s poll the printer is reported silent at most ~13 s after its last line.
SILENCE_S = 15.0
SD_REPORT_OVERDUE = 2.5  # auto-reported SD status missing this many intervals: ask M27 (quiet bugfix Marlin)
# A print that leaves the pause any of these ways no longer needs the saved heater targets.
_PAUSE_OVER = {
    PrinterEventKind.RESUMED,
    PrinterEventKind.FINISHED,
    PrinterEventKind.CANCELLED,
    PrinterEventKind.LOST,
    PrinterEventKind.ERROR,
    PrinterEventKind.IDLE,
}


class NotConnected(CommandFailed):
    """No open port to send on."""


class CommandTimedOut(CommandFailed):
    """No `ok` in time; the link probes with M105 before giving up on it."""


@dataclass(slots=True)
class _Pending:
    """The command in flight: lines seen since it was sent, and when to stop waiting for its ok."""

    reply: asyncio.Future[list[str]]
    timeout_s: float
    deadline: float
    lines: list[str] = field(default_factory=list)
    resend: list[str] | None = None  # the framed lines to send again once the garbled line's ok is in
    skip_oks: int = 0  # oks of resent earlier lines, before the one of the command in flight
    resend_timer: asyncio.TimerHandle | None = None
    wants_temperatures: bool = False  # the M105 probe: only an `ok T:...` answers it


class SerialPrinter:
    """A printer on a serial port implementing the `Printer` protocol (see hardware/printer/base.py)."""

    def __init__(
        self,
        port: str,
        baudrate: int,
        dialect: str,
        on_event: EventSink,
        *,
        poll_interval_s: float = 2.0,
        confirm_timeout_s: float = 15.0,
        confirm_window_s: float = CONFIRM_WINDOW_S,
        reconnect_interval_s: float = 2.0,
        cool_down_after_s: float = COOL_DOWN_AFTER_S,
        cool_down_bed: bool = False,
        reheat_timeout_s: float = REHEAT_TIMEOUT_S,
        stall_s: float = KLIPPER_STALL_S,
        silence_s: float = SILENCE_S,
    ) -> None:
        if dialect != "auto" and dialect not in DIALECTS:
            raise ValueError(f"unknown printer dialect {dialect!r}")
        self._port = port
        self._baudrate = baudrate
        self._dialect_setting = dialect
        self._on_event = on_event
        self._poll_interval_s = poll_interval_s
        self._reconnect_interval_s = reconnect_interval_s
        self._silence_s = silence_s
        self._poll_timeout_s = min(COMMAND_TIMEOUT_S, silence_s / 5)
        self.firmware = FirmwareInfo()
        self.dialect: Dialect = DIALECTS.get(dialect, MARLIN)  # until M115 says otherwise
        self._transport: SerialTransport | None = None
        self._lines = LineNumbers()
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._follower = PrintFollower(self.dialect, stall_s=stall_s, window_s=confirm_window_s)
        self._heaters = HeaterPolicy(
            self.send,
            self._on_cooled,
            after_s=cool_down_after_s,
            bed=cool_down_bed,
            reheat_timeout_s=reheat_timeout_s,
        )
        self._motors = MotorHold(self.send)
        self._polls = 0
        self._confirm = Confirmation(
            self.send,
            self._follower,
            lambda: self.dialect,
            lambda: self.connected,
            confirm_timeout_s=confirm_timeout_s,
            window_s=confirm_window_s,
            poll_timeout_s=self._poll_timeout_s,
        )
        self._connected: bool | None = None  # None until the first attempt
        self._unavailable = LastingCondition(log, f"printer on {port}")  # retried for as long as it lasts
        self._resync = False
        self._restarted = False
        self._auto_sd = False
        self._auto_temp = False
        self._last_heard = 0.0
        self._silent_since: float | None = None
        self._last_sd_report = 0.0
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return bool(self._connected)

    @property
    def print_state(self) -> PrintState:
        return self._follower.state

    async def run(self) -> None:
        """Connect and follow the printer until cancelled; reopen the port when it goes away."""
        while True:
            try:
                await self._session()
            except LinkLost as exc:
                self._disconnected(str(exc))
            except Exception as exc:  # the link must outlive any surprise; log it and reconnect
                log.exception("printer link on %s failed", self._port)
                self._disconnected(f"link failed: {exc}")
            await asyncio.sleep(self._reconnect_interval_s)

    async def pause(self) -> None:
        """Pause with the dialect's command, confirmed by the printer's evidence, sent twice at most.

        A pause that leaves the line free gets the motor hold, and the cooldown where the hotend
        stays hot; a parked Marlin that waits for the user holds the line and handles both itself.
        """
        if self._follower.state is PrintState.PAUSED:
            return
        self._check_can("pause", PrintState.PRINTING)
        proof = await self._confirm.pause()
        log.info("pause confirmed: %s", proof)
        self._emit_all(self._follower.confirm_paused(proof))
        if self._confirm.parked:
            log.info("the printer waits for the user at its display; no command can be sent meanwhile")
            return
        if self.dialect.pause_keeps_hotend_hot:
            self._heaters.arm()
        await self._motors.hold(self.dialect.hold_motors, self.dialect.release_motors)

    async def resume(self) -> None:
        """Heat back up if the cooldown switched the heaters off, resume, confirmed like the pause."""
        if self._follower.state is PrintState.PRINTING:
            return
        self._check_can("resume", PrintState.PAUSED)
        await self._heaters.restore()
        await self._confirm.resume()
        await self._motors.release()

    async def send(self, command: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> list[str]:
        """Send one command and wait for its `ok`; returns the lines received meanwhile, ok last.

        Each `echo:busy:` line restarts the timeout. Raises CommandFailed or LinkLost.
        """
        async with self._lock:
            transport = self._transport
            if transport is None:
                raise NotConnected(f"the printer on {self._port} is not connected")
            if self._resync and command != HELLO:
                await self._exchange(transport, HELLO, HELLO_TIMEOUT_S)
                self._resync = False
            try:
                return await self._exchange(transport, command, timeout_s)
            except CommandTimedOut as exc:
                if command == HELLO:
                    raise
                raise CommandTimedOut(f"{exc}; {await self._probe(transport, timeout_s)}") from exc

    async def _probe(self, transport: SerialTransport, timeout_s: float) -> str:
        """After a timeout: is the printer there at all? Renumber if it is not, to be safe."""
        try:
            probe_s = min(timeout_s, COMMAND_TIMEOUT_S, self._silence_s / 5)
            await self._exchange(transport, PROBE, probe_s, wants_temperatures=True)
        except CommandTimedOut:
            self._resync = True
            self._went_silent()
            return f"{PROBE} got no answer either: the printer is not responding"
        return f"the printer answers {PROBE}, so that ok was lost"

    # --- connection ---------------------------------------------------------------------------

    async def _session(self) -> None:
        transport = SerialTransport.open(self._port, self._baudrate, self._on_line)
        self._transport = transport
        self._resync = False
        self._last_heard = self._last_sd_report = asyncio.get_running_loop().time()
        log.info("opened %s at %d baud", self._port, self._baudrate)
        try:
            await self._handshake(transport)
            while True:
                await self._poll()
                await self._sleep(transport, self._poll_interval_s)
        finally:
            self._transport = None
            transport.close()

    async def _handshake(self, transport: SerialTransport) -> None:
        await self._hello(transport)
        reply = await self._try_send("M115") or []  # no answer: talk Marlin rather than reopen
        self.firmware = parse_firmware_info(reply)
        self.dialect = choose_dialect(self._dialect_setting, self.firmware.name)
        self._connected = True
        self._unavailable.recovered()
        log.info(
            "connected to %s on %s (dialect %s)", self.firmware.name or "?", self._port, self.dialect.name
        )
        self._emit_all(self._follower.connected(self.firmware.name, self.dialect))
        await self._enable_auto_reports()
        await self._try_send("M27 C")  # names the open file before the first progress report

    async def _hello(self, transport: SerialTransport) -> None:
        """`M110 N0` until the firmware answers: the first often drowns in garbage or a reboot."""
        attempts = 0
        while True:
            try:
                await self.send(HELLO, timeout_s=HELLO_TIMEOUT_S)
                return
            except CommandFailed:
                attempts += 1
            if attempts == 2:
                log.warning("printer on %s does not answer %s; still trying", self._port, HELLO)
            if attempts >= 2:  # keep the port open: reopening would reset the board again
                await self._sleep(transport, self._reconnect_interval_s)

    async def _enable_auto_reports(self) -> None:
        """Let the firmware report on its own when it can and polls are whole seconds apart."""
        seconds = round(self._poll_interval_s)
        self._auto_sd = self._auto_temp = False
        if seconds < 1:
            return
        if self.firmware.has("AUTOREPORT_SD_STATUS"):
            self._auto_sd = await self._try_send(f"M27 S{seconds}") is not None
        if self.firmware.has("AUTOREPORT_TEMP"):
            self._auto_temp = await self._try_send(f"M155 S{seconds}") is not None

    def _disconnected(self, reason: str) -> None:
        self._unavailable.failed(f"unavailable ({reason}); retrying every {self._reconnect_interval_s:g} s")
        if self._connected is False:
            return
        self._connected = False
        self._silent_since = None
        self._heaters.cancel()  # the saved targets stay: the same paused print may come back
        self._emit_all(self._follower.disconnected(reason))

    def _went_silent(self) -> None:
        """A probe got no answer. Silent only if nothing else came for a while either: a printer
        that still sends auto-reports merely lost an `ok`."""
        loop_time = asyncio.get_running_loop().time()
        if self._silent_since is not None or loop_time - self._last_heard < self._silence_s / 3:
            return
        self._silent_since = self._last_heard
        quiet = loop_time - self._last_heard
        log.warning(
            "printer on %s has sent nothing for %.0f s and does not answer %s; print state unknown "
            "until it does (an SD print goes on without us)",
            self._port,
            quiet,
            PROBE,
        )
        self._emit_all(self._follower.silent(f"the printer has sent nothing for {quiet:.0f} s"))

    def _heard(self) -> None:
        now = asyncio.get_running_loop().time()
        self._last_heard = now
        if self._silent_since is None:
            return
        log.warning(
            "printer on %s answers again after %.0f s of silence", self._port, now - self._silent_since
        )
        self._silent_since = None
        self._emit_all(self._follower.heard())

    # --- following the print ------------------------------------------------------------------

    async def _poll(self) -> None:
        if self._restarted:  # a rebooted board forgot the auto-report intervals
            self._restarted = False
            await self._enable_auto_reports()
        now = asyncio.get_running_loop().time()
        quiet = now - self._last_heard > self._silence_s / 3
        overdue = now - self._last_sd_report > SD_REPORT_OVERDUE * max(self._poll_interval_s, 1.0)
        if not self._auto_sd or (overdue and self._follower.in_print):  # bugfix Marlin: silent when frozen
            await self._try_send("M27")
        if not self._auto_temp or quiet:
            await self._try_send("M105")
        self._polls += 1
        for query in self._follower.queries():
            await self._try_send(query)
            if query == "M27 C" and self._follower.needs_file_check:  # firmware without `M27 C`
                self._emit_all(self._follower.file_check_unanswered())
        if self._follower.state in (PrintState.PAUSED, PrintState.UNKNOWN) and (
            self.dialect.not_printing_may_be_paused and self._polls % FILE_CHECK_EVERY == 0
        ):
            await self._try_send("M27 C")  # still open? a panel stop says nothing else on Marlin

    async def _sleep(self, transport: SerialTransport, delay: float) -> None:
        """Wait `delay`, less if an auto-report needs an answer; raise LinkLost if the port goes away."""
        self._wake.clear()  # what the poll just did needs no second look
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({transport.lost, woken}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if transport.lost.done():
            raise LinkLost(transport.lost.result())

    async def _try_send(self, command: str) -> list[str] | None:
        """Send, logging a failure instead of raising it: the next poll asks again."""
        try:
            return await self.send(command, timeout_s=self._poll_timeout_s)
        except CommandFailed as exc:
            # While silent, the SILENT warning said it; the next line heard ends it.
            log.log(
                logging.DEBUG if self._silent_since is not None else logging.WARNING,
                "%s failed: %s",
                command,
                exc,
            )
            return None

    def _check_can(self, what: str, needed: PrintState) -> None:
        """Fail at once, not after a timeout, when there is nothing to pause or resume."""
        if not self._connected:
            raise PauseFailed(f"cannot {what}: the printer on {self._port} is not connected")
        if self._silent_since is not None:
            raise PauseFailed(
                f"cannot {what}: the printer on {self._port} is not answering, so {what} could not be sent"
            )
        if self._confirm.holds_line:
            raise PauseFailed(
                f"cannot {what}: the printer waits for the user at its display (its M25 is still "
                "unanswered); continue there"
            )
        if self._follower.state is not needed:
            raise PauseFailed(f"cannot {what}: the printer reports {self._follower.state.value}")

    # --- lines in -----------------------------------------------------------------------------

    async def _exchange(
        self, transport: SerialTransport, command: str, timeout_s: float, *, wants_temperatures: bool = False
    ) -> list[str]:
        loop = asyncio.get_running_loop()
        if command == HELLO:
            self._lines.reset()
        pending = _Pending(loop.create_future(), timeout_s, loop.time() + timeout_s)
        pending.wants_temperatures = wants_temperatures
        self._pending = pending
        try:
            transport.write_line(self._lines.frame(command))
            return await self._await_ok(transport, pending, command)
        finally:
            if pending.resend_timer is not None:
                pending.resend_timer.cancel()
            self._pending = None

    async def _await_ok(self, transport: SerialTransport, pending: _Pending, command: str) -> list[str]:
        loop = asyncio.get_running_loop()
        while not pending.reply.done():
            remaining = pending.deadline - loop.time()
            if remaining <= 0:
                raise CommandTimedOut(f"no ok for {command} within {pending.timeout_s:g} s")
            await asyncio.wait(
                {pending.reply, transport.lost}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if transport.lost.done() and not pending.reply.done():
                raise LinkLost(transport.lost.result())
        return pending.reply.result()

    def _on_line(self, line: str) -> None:
        """Every line: first the fact it reports, then what it means for the command in flight."""
        self._heard()
        if (report := parse_report(line)) is not None:
            self._on_report(report)
        kind = classify(line)
        if kind is LineKind.ERROR:
            log.warning("printer says: %s", line)
        pending = self._pending
        if pending is None or pending.reply.done():
            return
        if kind is LineKind.OK:
            self._on_ok(pending, line)
        elif kind is LineKind.RESEND:
            self._on_resend(pending, resend_number(line))
        elif kind is LineKind.BUSY:
            pending.deadline = asyncio.get_running_loop().time() + pending.timeout_s
        elif kind is LineKind.LINE_ERROR:
            log.info("printer rejected a line: %s", line)
        else:
            pending.lines.append(line)

    def _on_ok(self, pending: _Pending, line: str) -> None:
        if pending.resend is not None:  # the ok that belongs to the garbled line, not to its resend
            self._write_resend(pending)
            return
        if pending.skip_oks:  # an earlier line, resent before the one in flight
            pending.skip_oks -= 1
            return
        if pending.wants_temperatures and not isinstance(parse_report(line), Temperatures):
            return  # a late ok of the command that timed out, not the probe's
        pending.lines.append(line)
        pending.reply.set_result(pending.lines)

    def _on_resend(self, pending: _Pending, number: int | None) -> None:
        lines = None if number is None else self._lines.resend(number)
        if lines is None or self._transport is None:
            self._resync = True
            pending.reply.set_exception(CommandFailed(f"printer asked for line {number}; renumbering"))
            return
        loop = asyncio.get_running_loop()
        if pending.resend_timer is not None:
            pending.resend_timer.cancel()
        pending.resend = lines
        pending.deadline = loop.time() + pending.timeout_s
        pending.resend_timer = loop.call_later(RESEND_OK_GRACE_S, self._write_resend, pending)

    def _write_resend(self, pending: _Pending) -> None:
        """Send the garbled line again: its ok came, or it is not coming from this firmware."""
        lines, pending.resend = pending.resend, None
        if pending.resend_timer is not None:
            pending.resend_timer.cancel()
            pending.resend_timer = None
        if lines is None or pending is not self._pending or self._transport is None:
            return
        log.info("resending %s", ", ".join(lines))
        pending.skip_oks = len(lines) - 1
        with contextlib.suppress(LinkLost):  # _await_ok sees the lost port
            for line in lines:
                self._transport.write_line(line)

    def _on_report(self, report: Report) -> None:
        if isinstance(report, PrinterReset):
            log.warning("printer on %s restarted", self._port)
            self._resync = self._restarted = True
            if self._pending is not None and not self._pending.reply.done():  # its ok died with the reboot
                self._pending.reply.set_exception(CommandFailed("the printer restarted"))
        if isinstance(report, Temperatures):  # every reading, not only changes: a reheat waits on them
            self._heaters.on_temperatures(report.as_dict())
        if isinstance(report, SdProgress):
            self._last_sd_report = asyncio.get_running_loop().time()
        self._confirm.on_report(report)
        self._emit_all(self._follower.apply(report))
        if self._follower.queries() or self._restarted:  # a question to ask: do not wait a poll
            self._wake.set()

    # --- events out ---------------------------------------------------------------------------

    def _emit_all(self, events: list[PrinterEvent]) -> None:
        for event in events:
            if event.kind in _PAUSE_OVER:
                self._heaters.forget()
                self._motors.release_soon()
            self._emit(event)
        self._confirm.on_events(events)

    def _on_cooled(self, saved: dict[str, float]) -> None:
        heaters = ", ".join(f"{heater} (was {target:g} °C)" for heater, target in saved.items())
        self._emit(
            self._follower.event(
                PrinterEventKind.HEATERS_OFF,
                message=f"switched off during the pause: {heaters}; resuming heats them again",
                temperatures=saved,
            )
        )

    def _emit(self, event: PrinterEvent) -> None:
        log.debug("event: %s", event)
        try:
            self._on_event(event)
        except Exception:  # a faulty consumer must not take the printer link down
            log.exception("printer event handler failed on %s", event.kind)
