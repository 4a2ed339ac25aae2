"""The print lifecycle: folds the printer link's events into one print state and its transitions.

Pure and synchronous, so every rule about what counts as a start, a pause or an end is tested
without a printer.

`unknown` is the honest answer when the printer's reports do not say whether a print still runs:
after the link came back from a disconnect during a print (until the first report), or when the
link says its reports are ambiguous. It never becomes "finished" by guesswork: a print that
turns out to be gone without the printer saying how ends as `print_lost`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hardware.printer.events import PrinterEvent, PrinterEventKind

# A target this far above the measured temperature means the printer is still heating.
HEATING_MARGIN_C = 3.0


class PrintState(StrEnum):
    OFFLINE = "offline"
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"
    UNKNOWN = "unknown"


class Transition(StrEnum):
    """Lifecycle changes, named as the MQTT event types they become."""

    STARTED = "print_started"
    PAUSED = "print_paused"
    RESUMED = "print_resumed"
    FINISHED = "print_finished"
    CANCELLED = "print_cancelled"
    LOST = "print_lost"  # the print is gone and the printer never said how it ended
    ERROR = "printer_error"


@dataclass
class PrintTracker:
    state: PrintState = PrintState.OFFLINE
    file: str | None = None
    progress: float | None = None
    heating: bool = False
    error: str = ""
    # The print that was running when the link went away or the reports became ambiguous: the
    # same file found running again is that print going on, not a new one.
    _interrupted_file: str | None = None

    @property
    def in_print(self) -> bool:
        return self.state in (PrintState.PRINTING, PrintState.PAUSED)

    def apply(self, event: PrinterEvent) -> Transition | None:
        """Update the state from one event; return the transition it caused, if any."""
        kind = event.kind
        if kind is PrinterEventKind.CONNECTED:
            if self.state is PrintState.OFFLINE:
                self.state = PrintState.UNKNOWN if self._interrupted_file else PrintState.IDLE
            return None
        if kind is PrinterEventKind.DISCONNECTED:
            if self.in_print or self.state is PrintState.UNKNOWN:
                self._interrupted_file = self.file
            self.state = PrintState.OFFLINE
            return None
        if kind is PrinterEventKind.UNKNOWN:
            if self.in_print:  # a print the agent followed (not one first met in this state)
                self._interrupted_file = self.file
            self.file = event.file or self.file
            self.state = PrintState.UNKNOWN
            return None
        if kind is PrinterEventKind.IDLE:
            return self._settled_idle()
        if kind is PrinterEventKind.TEMPERATURE:
            self.heating = _is_heating(event.temperatures)
            return None
        if kind is PrinterEventKind.PROGRESS:
            if event.progress is not None:
                self.progress = event.progress
            return None
        if kind is PrinterEventKind.PRINT_STARTED:
            return self._started(event.file)
        if kind is PrinterEventKind.PAUSED:
            only_from = (PrintState.PRINTING, PrintState.UNKNOWN)
            return self._move(PrintState.PAUSED, Transition.PAUSED, only_from)
        if kind is PrinterEventKind.RESUMED:
            return self._move(PrintState.PRINTING, Transition.RESUMED, only_from=(PrintState.PAUSED,))
        if kind is PrinterEventKind.FINISHED:
            return self._ended(Transition.FINISHED)
        if kind is PrinterEventKind.CANCELLED:
            return self._ended(Transition.CANCELLED)
        if kind is PrinterEventKind.ERROR:
            self.error = event.message
            self.state = PrintState.ERROR
            self._interrupted_file = None
            return Transition.ERROR
        return None

    def _settled_idle(self) -> Transition | None:
        """The printer says nothing runs. A print the tracker still held is lost, not guessed ended."""
        lost = self.state is PrintState.UNKNOWN and self._interrupted_file is not None
        self._interrupted_file = None
        if self.state in (PrintState.UNKNOWN, PrintState.OFFLINE):
            self.state = PrintState.IDLE
        return Transition.LOST if lost else None

    def _started(self, file: str | None) -> Transition | None:
        continuing = self.in_print and file in (self.file, None)
        # Klipper never names the file it prints: an unnamed print found again is the same one.
        again = self._interrupted_file is not None and file in (self._interrupted_file, None)
        self._interrupted_file = None
        if continuing:
            return None
        if again:  # the same print, seen again after the link came back or the reports cleared up
            self.state = PrintState.PRINTING
            return None
        self.state = PrintState.PRINTING
        self.file = file
        self.progress = 0.0
        self.error = ""
        return Transition.STARTED

    def _move(
        self, target: PrintState, transition: Transition, only_from: tuple[PrintState, ...]
    ) -> Transition | None:
        if self.state not in only_from:
            return None
        self.state = target
        return transition

    def _ended(self, transition: Transition) -> Transition | None:
        self._interrupted_file = None
        if not self.in_print and self.state is not PrintState.UNKNOWN:
            return None
        self.state = PrintState.IDLE
        return transition


def _is_heating(temperatures: dict[str, float]) -> bool:
    for heater in ("hotend", "bed"):
        target = temperatures.get(f"{heater}_target", 0.0)
        if target > 0 and temperatures.get(heater, 0.0) < target - HEATING_MARGIN_C:
            return True
    return False
