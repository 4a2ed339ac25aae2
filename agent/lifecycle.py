"""The print lifecycle as the agent sees it: a mirror of the printer link's state, and its events.

The print's state machine lives in one place, `hardware/printer/follower.py`; every PrinterEvent
carries the state after it. This module only names the transitions the agent publishes (MQTT
event types) and keeps the last state for the rest of the agent to read, so no rule about what
counts as a start, a pause or an end is decided twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hardware.printer.events import PrinterEvent, PrinterEventKind, PrintState

__all__ = ["PrintState", "PrintTracker", "Transition"]


class Transition(StrEnum):
    """Lifecycle changes, named as the MQTT event types they become."""

    STARTED = "print_started"
    PAUSED = "print_paused"
    RESUMED = "print_resumed"
    FINISHED = "print_finished"
    CANCELLED = "print_cancelled"
    LOST = "print_lost"  # the print is gone and the printer never said how it ended
    ERROR = "printer_error"


_TRANSITIONS = {
    PrinterEventKind.PRINT_STARTED: Transition.STARTED,
    PrinterEventKind.PAUSED: Transition.PAUSED,
    PrinterEventKind.RESUMED: Transition.RESUMED,
    PrinterEventKind.FINISHED: Transition.FINISHED,
    PrinterEventKind.CANCELLED: Transition.CANCELLED,
    PrinterEventKind.LOST: Transition.LOST,
    PrinterEventKind.ERROR: Transition.ERROR,
}


@dataclass
class PrintTracker:
    state: PrintState = PrintState.OFFLINE
    file: str | None = None
    progress: float | None = None
    heating: bool = False
    error: str = ""
    # The link lost sight (silent, unplugged) of a print that was printing: it most likely goes on.
    unseen_print: bool = False

    @property
    def in_print(self) -> bool:
        return self.state in (PrintState.PRINTING, PrintState.PAUSED)

    def apply(self, event: PrinterEvent) -> Transition | None:
        """Mirror the state the event carries; return the transition it reports, if any."""
        self.state = event.state
        self.file = event.file
        self.progress = event.progress
        self.heating = event.heating
        self.unseen_print = event.unseen_print
        transition = _TRANSITIONS.get(event.kind)
        if transition is Transition.ERROR:
            self.error = event.message
        elif transition is Transition.STARTED:
            self.error = ""
        return transition
