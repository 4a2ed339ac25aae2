"""The small interface the agent needs from a printer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hardware.printer.events import PrinterEvent

EventSink = Callable[[PrinterEvent], None]


class PauseFailed(Exception):
    """The printer did not confirm a pause or resume in time; the message says what was tried."""


class Printer(Protocol):
    """A printer that reports events to a sink (called on the event loop) and obeys pause/resume."""

    async def run(self) -> None:
        """Connect and follow the printer until cancelled, reconnecting when the device returns."""

    async def pause(self) -> None:
        """Pause the print; returns once the printer confirms it, raises PauseFailed otherwise."""

    async def resume(self) -> None:
        """Resume a paused print; returns once confirmed, raises PauseFailed otherwise."""
