"""Drives the agent's pause and resume until the printer confirms them (or says why not).

A pause is confirmed by the firmware's own evidence (evidence.py, per dialect): the pause
command, `M400` (the queue drained), then the dialect's queries until the evidence settles it. A
resume is confirmed when the follower sees the print run again. Either is sent once more before
giving up and saying so. The link (link.py) owns one Confirmation and feeds it:

    await pause()       the dialect's pause until proven; returns the proof, raises PauseFailed
    await resume()      the dialect's resume until the print runs; raises PauseFailed
    on_report(report)   every report from the printer: the evidence of a pause in question
    on_events(events)   every event the follower made: a resume under way settles or fails
    holds_line          a parked `M25` waits for the user at the printer's display
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from hardware.printer.base import PauseFailed
from hardware.printer.dialects import Dialect
from hardware.printer.events import PrinterEvent, PrinterEventKind, PrintState
from hardware.printer.evidence import PauseEvidence
from hardware.printer.follower import PrintFollower
from hardware.printer.protocol import CommandFailed
from hardware.printer.reports import Report
from hardware.printer.transport import LinkLost

log = logging.getLogger(__name__)

# A print that ends any of these ways will not be seen to run again by a resume under way.
_PRINT_OVER = {
    PrinterEventKind.FINISHED,
    PrinterEventKind.CANCELLED,
    PrinterEventKind.LOST,
    PrinterEventKind.ERROR,
}


class Send(Protocol):
    def __call__(self, command: str, *, timeout_s: float) -> Awaitable[list[str]]: ...


class Confirmation:
    """One pause or resume in question at a time, for the link that sends through `send`."""

    def __init__(
        self,
        send: Send,
        follower: PrintFollower,
        dialect: Callable[[], Dialect],
        connected: Callable[[], bool],
        *,
        confirm_timeout_s: float,
        window_s: float,
        poll_timeout_s: float,
    ) -> None:
        self._send = send
        self._follower = follower
        self._dialect = dialect
        self._connected = connected
        self.confirm_timeout_s = confirm_timeout_s
        self._window_s = window_s
        self._poll_timeout_s = poll_timeout_s
        self._waiters: list[tuple[PrintState, asyncio.Future[None]]] = []
        # Our pause in question: the evidence, and the future its proof goes to.
        self._evidence: tuple[PauseEvidence, asyncio.Future[str]] | None = None
        # A parked M25 waits for the user at the printer's display and holds the line meanwhile.
        self._held_line: asyncio.Future[list[str]] | None = None

    @property
    def parked(self) -> bool:
        """The last pause left its `M25` unanswered: the printer waits for the user."""
        return self._held_line is not None

    @property
    def holds_line(self) -> bool:
        """A parked `M25` is still unanswered: no command can be sent until the user continues."""
        return self._held_line is not None and not self._held_line.done()

    async def pause(self) -> str:
        return await self._twice(self._pause_once, "pause", PrintState.PAUSED)

    async def resume(self) -> str:
        return await self._twice(self._resume_once, "resume", PrintState.PRINTING)

    def on_report(self, report: Report) -> None:
        if self._evidence is not None:
            evidence, proven = self._evidence
            if (proof := evidence.note(report)) and not proven.done():
                proven.set_result(proof)

    def on_events(self, events: list[PrinterEvent]) -> None:
        for event in events:
            if event.kind in _PRINT_OVER:  # a resume under way will not see the print run again
                for _, confirmed in self._waiters:
                    if not confirmed.done():
                        confirmed.set_exception(
                            PauseFailed(f"the printer ended the print ({event.kind.value})")
                        )
        for target, confirmed in self._waiters:
            if self._follower.state is target and not confirmed.done():
                confirmed.set_result(None)

    async def _twice(self, attempt: Callable[[], Awaitable[str]], what: str, target: PrintState) -> str:
        """Send once more if unconfirmed, while the print is still where it was."""
        before = self._follower.state
        try:
            return await attempt()
        except PauseFailed as exc:
            if self._follower.state is target:  # the printer said so itself meanwhile
                return f"the printer reports {target.value}"
            if not self._connected() or self._follower.state is not before:
                raise
            log.warning("%s not confirmed (%s); sending it once more", what, exc)
            try:
                return await attempt()
            except PauseFailed as again:
                raise PauseFailed(f"{again} (second attempt; the first: {exc})") from again

    async def _pause_once(self) -> str:
        """The pause command, `M400`, then the dialect's queries until its evidence proves the pause."""
        loop = asyncio.get_running_loop()
        dialect = self._dialect()
        command = dialect.pause
        evidence = PauseEvidence(
            dialect.pause_evidence, self._window_s, loop.time, heating=self._follower.heating
        )
        proven: asyncio.Future[str] = loop.create_future()
        self._evidence = (evidence, proven)
        self._held_line = None
        log.info("sending %s (pause) to the printer", command)
        sent = self._send_on_its_own(command, self.confirm_timeout_s)
        try:
            async with asyncio.timeout(self.confirm_timeout_s):
                await asyncio.wait({sent, proven}, return_when=asyncio.FIRST_COMPLETED)
                if proven.done():
                    return proven.result()
                await asyncio.shield(sent)
                await self._drain()
                if proof := evidence.drained():
                    return proof
                while not proven.done():
                    file_check = ("M27 C",) if evidence.not_printing else ()
                    for query in dialect.pause_queries + file_check:
                        with contextlib.suppress(CommandFailed):  # no evidence this round, that is all
                            await asyncio.shield(self._send_on_its_own(query, self._poll_timeout_s))
                        if proven.done():
                            break
                    else:
                        await asyncio.wait({proven}, timeout=self._window_s / 2)
                return proven.result()
        except (TimeoutError, CommandFailed, LinkLost) as exc:
            raise self._unconfirmed("pause", command, exc, "no evidence of a pause") from exc
        finally:
            self._evidence = None
            if not sent.done():  # a parked M25: its ok comes when the user continues at the display
                self._held_line = sent

    async def _drain(self) -> None:
        """`M400`: answered once the queued moves ran. Sent again if its line was lost on the wire
        (a second M400 only waits once more); busy lines keep a slow one alive."""
        timeout_s = self._poll_timeout_s if self._dialect().busy_lines else self.confirm_timeout_s
        try:
            await asyncio.shield(self._send_on_its_own("M400", timeout_s))
        except CommandFailed as exc:
            log.info("M400 unanswered (%s); sending it again", exc)
            await asyncio.shield(self._send_on_its_own("M400", timeout_s))

    def _send_on_its_own(self, command: str, timeout_s: float) -> asyncio.Future[list[str]]:
        """A send that runs to its own end (its ok, or its own timeout) even if the caller stops
        waiting: cancelling it would leave its late `ok` to be taken for the next command's."""
        task = asyncio.ensure_future(self._send(command, timeout_s=timeout_s))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _resume_once(self) -> str:
        """The resume command; confirmed when the follower sees the print run again."""
        command = self._dialect().resume
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (PrintState.PRINTING, confirmed)
        self._waiters.append(waiter)
        log.info("sending %s (resume) to the printer", command)
        try:
            async with asyncio.timeout(self.confirm_timeout_s):
                await asyncio.shield(self._send_on_its_own(command, self.confirm_timeout_s))
                await confirmed
        except (TimeoutError, CommandFailed, LinkLost) as exc:
            raise self._unconfirmed("resume", command, exc, "the print did not move again") from exc
        finally:
            self._waiters.remove(waiter)
        return "the print runs again"

    def _unconfirmed(self, what: str, command: str, exc: Exception, silence: str) -> PauseFailed:
        within = f"the printer did not confirm within {self.confirm_timeout_s:g} s"
        return PauseFailed(f"{what}: sent {command}, {within} ({str(exc) or silence})")
