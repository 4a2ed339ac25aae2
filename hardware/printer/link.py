"""SerialPrinter: the agent's printer over USB serial, following an SD print and pausing it.

One command is in flight at a time and every line is numbered and checksummed, because a
garbled `M25` must be resent, not lost. Print state comes from the firmware's reports (answers to
polls, auto-reports, host actions), not from the reply to a particular command, so a late `ok`
or a missed poll never confuses it. Everything runs on the event loop; no thread is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from hardware.printer.base import EventSink, PauseFailed
from hardware.printer.dialects import (
    DIALECTS,
    MARLIN,
    Dialect,
    FirmwareInfo,
    choose_dialect,
    parse_firmware_info,
)
from hardware.printer.events import PrinterEvent, PrinterEventKind
from hardware.printer.follower import PrintFollower, PrintState
from hardware.printer.protocol import HELLO, LineKind, LineNumbers, classify, resend_number
from hardware.printer.reports import PrinterReset, Report, parse_report
from hardware.printer.transport import LinkLost, SerialTransport

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0  # without an ok (or busy) for this long, give up on a command
HELLO_TIMEOUT_S = 2.0


class CommandFailed(Exception):
    """A command got no `ok`: timed out, or the firmware lost track of line numbers."""


class NotConnected(CommandFailed):
    """No open port to send on."""


@dataclass(slots=True)
class _Pending:
    """The command in flight: lines seen since it was sent, and when to stop waiting for its ok."""

    reply: asyncio.Future[list[str]]
    timeout_s: float
    deadline: float
    lines: list[str] = field(default_factory=list)
    swallow_ok: bool = False


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
        reconnect_interval_s: float = 2.0,
    ) -> None:
        if dialect != "auto" and dialect not in DIALECTS:
            raise ValueError(f"unknown printer dialect {dialect!r}")
        self._port = port
        self._baudrate = baudrate
        self._dialect_setting = dialect
        self._on_event = on_event
        self._poll_interval_s = poll_interval_s
        self._confirm_timeout_s = confirm_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self.firmware = FirmwareInfo()
        self.dialect: Dialect = DIALECTS.get(dialect, MARLIN)  # until M115 says otherwise
        self._transport: SerialTransport | None = None
        self._lines = LineNumbers()
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._follower = PrintFollower()
        self._waiters: list[tuple[PrintState, asyncio.Future[None]]] = []
        self._connected: bool | None = None  # None until the first attempt
        self._resync = False
        self._restarted = False
        self._auto_sd = False
        self._auto_temp = False
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
        await self._change_state(self.dialect.pause, PrintState.PAUSED, "pause")

    async def resume(self) -> None:
        await self._change_state(self.dialect.resume, PrintState.PRINTING, "resume")

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
            return await self._exchange(transport, command, timeout_s)

    # --- connection ---------------------------------------------------------------------------

    async def _session(self) -> None:
        transport = SerialTransport.open(self._port, self._baudrate, self._on_line)
        self._transport = transport
        self._follower = PrintFollower()
        self._resync = False
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
        log.info(
            "connected to %s on %s (dialect %s)", self.firmware.name or "?", self._port, self.dialect.name
        )
        self._emit(
            PrinterEvent(PrinterEventKind.CONNECTED, firmware=self.firmware.name, dialect=self.dialect.name)
        )
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
        if self._connected is False:
            log.debug("printer on %s still unavailable: %s", self._port, reason)
            return
        log.warning(
            "printer on %s unavailable (%s); retrying every %g s",
            self._port,
            reason,
            self._reconnect_interval_s,
        )
        self._connected = False
        self._follower = PrintFollower()
        self._emit(PrinterEvent(PrinterEventKind.DISCONNECTED, message=reason))

    # --- following the print ------------------------------------------------------------------

    async def _poll(self) -> None:
        if self._restarted:  # a rebooted board forgot the auto-report intervals
            self._restarted = False
            await self._enable_auto_reports()
        if not self._auto_sd:
            await self._try_send("M27")
        if not self._auto_temp:
            await self._try_send("M105")
        if self._follower.needs_file_check:
            await self._check_file()

    async def _check_file(self) -> None:
        """After `Not SD printing` mid-print: an open file means paused, none means stopped."""
        await self._try_send("M27 C")
        if self._follower.needs_file_check:  # firmware without `M27 C`
            self._emit_all(self._follower.assume_paused())

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
            return await self.send(command)
        except CommandFailed as exc:
            log.warning("%s failed: %s", command, exc)
            return None

    async def _change_state(self, command: str, target: PrintState, what: str) -> None:
        if self._follower.state is target:
            return
        if not self._connected:
            raise PauseFailed(f"cannot {what}: the printer on {self._port} is not connected")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (target, confirmed)
        self._waiters.append(waiter)
        log.info("sending %s (%s) to the printer", command, what)
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                await self.send(command, timeout_s=self._confirm_timeout_s)
                await confirmed
        except (TimeoutError, CommandFailed, LinkLost) as exc:
            detail = str(exc) or "no confirmation"
            raise PauseFailed(
                f"{what}: sent {command}, the printer did not confirm within {self._confirm_timeout_s:g} s "
                f"({detail})"
            ) from exc
        finally:
            self._waiters.remove(waiter)
        log.debug("printer confirmed the %s", what)

    # --- lines in -----------------------------------------------------------------------------

    async def _exchange(self, transport: SerialTransport, command: str, timeout_s: float) -> list[str]:
        loop = asyncio.get_running_loop()
        if command == HELLO:
            self._lines.reset()
        pending = _Pending(loop.create_future(), timeout_s, loop.time() + timeout_s)
        self._pending = pending
        try:
            transport.write_line(self._lines.frame(command))
            return await self._await_ok(transport, pending, command)
        finally:
            self._pending = None

    async def _await_ok(self, transport: SerialTransport, pending: _Pending, command: str) -> list[str]:
        loop = asyncio.get_running_loop()
        while not pending.reply.done():
            remaining = pending.deadline - loop.time()
            if remaining <= 0:
                raise CommandFailed(f"no ok for {command} within {pending.timeout_s:g} s")
            await asyncio.wait(
                {pending.reply, transport.lost}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if transport.lost.done() and not pending.reply.done():
                raise LinkLost(transport.lost.result())
        return pending.reply.result()

    def _on_line(self, line: str) -> None:
        """Every line: first the fact it reports, then what it means for the command in flight."""
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
        if pending.swallow_ok:  # the ok that belongs to the garbled line, not to its resend
            pending.swallow_ok = False
            return
        pending.lines.append(line)
        pending.reply.set_result(pending.lines)

    def _on_resend(self, pending: _Pending, number: int | None) -> None:
        line = None if number is None else self._lines.resend(number)
        if line is None or self._transport is None:
            self._resync = True
            pending.reply.set_exception(CommandFailed(f"printer asked for line {number}; renumbering"))
            return
        log.info("resending line %d", number)
        pending.swallow_ok = self.dialect.ok_after_resend
        with contextlib.suppress(LinkLost):  # _await_ok sees the lost port
            self._transport.write_line(line)

    def _on_report(self, report: Report) -> None:
        if isinstance(report, PrinterReset):
            log.warning("printer on %s restarted", self._port)
            self._resync = self._restarted = True
            if self._pending is not None and not self._pending.reply.done():  # its ok died with the reboot
                self._pending.reply.set_exception(CommandFailed("the printer restarted"))
        self._emit_all(self._follower.apply(report))
        if self._follower.needs_file_check or self._restarted:
            self._wake.set()

    # --- events out ---------------------------------------------------------------------------

    def _emit_all(self, events: list[PrinterEvent]) -> None:
        for event in events:
            self._emit(event)
        for target, confirmed in self._waiters:
            if self._follower.state is target and not confirmed.done():
                confirmed.set_result(None)

    def _emit(self, event: PrinterEvent) -> None:
        log.debug("event: %s", event)
        try:
            self._on_event(event)
        except Exception:  # a faulty consumer must not take the printer link down
            log.exception("printer event handler failed on %s", event.kind)
