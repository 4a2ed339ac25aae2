"""Follows the print from the firmware's reports and says what changed, once per change.

Polls and auto-reports repeat the same facts every few seconds; the agent wants transitions
(started, paused, finished ...), so this turns a stream of reports into a stream of events.
Pure state, no I/O: the link feeds it and acts on `needs_file_check`.

Where the reports do not settle a question (Marlin's `Not SD printing` with a file open but no
sign whether it is paused or merely selected), the follower says UNKNOWN instead of guessing
that a print ended, and leaves UNKNOWN as soon as a report is unambiguous.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

from hardware.printer.dialects import MARLIN, Dialect
from hardware.printer.events import PrinterEvent, PrinterEventKind
from hardware.printer.reports import (
    CurrentFile,
    DonePrinting,
    FatalError,
    FileOpened,
    HostAction,
    NotSdPrinting,
    PercentDone,
    PrinterReset,
    Report,
    SdPaused,
    SdProgress,
    Temperatures,
)

K = PrinterEventKind
_PAUSE_ACTIONS = {"pause", "paused"}
_RESUME_ACTIONS = {"resume", "resumed"}
HEATING_MARGIN_C = 3.0  # a target this far above the reading means the printer is heating
KLIPPER_STALL_S = 30.0  # Klipper: an SD position frozen this long (not heating) is a pause
PAUSE_CONFIRM_REPORTS = 2  # Klipper: equal positions after PAUSE's ok that confirm it


class PrintState(Enum):
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    UNKNOWN = "unknown"


class PrintFollower:
    def __init__(
        self,
        dialect: Dialect = MARLIN,
        *,
        stall_s: float = KLIPPER_STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dialect = dialect
        self.state = PrintState.IDLE
        self.file: str | None = None
        # Marlin's `Not SD printing` means paused if the file is still open, stopped if not;
        # the link answers this with `M27 C` and feeds back the CurrentFile report.
        self.needs_file_check = False
        self.temperatures: dict[str, float] = {}
        self._stall_s = stall_s
        self._clock = clock
        self._position: int | None = None
        self._progress: float | None = None
        self._percent_done = False  # Prusa's M73 progress seen: byte progress would contradict it
        self._error: str | None = None
        self._status_seen = False  # the first SD status of a session says what was found
        self._opened = False  # a file was opened since the last print ended
        self._frozen_since: float | None = None
        self._pause_expected = 0  # Klipper: equal positions still needed to confirm a PAUSE

    @property
    def active(self) -> bool:
        return self.state is not PrintState.IDLE

    @property
    def heating(self) -> bool:
        for heater in ("hotend", "bed"):
            target = self.temperatures.get(f"{heater}_target", 0.0)
            if target > 0 and self.temperatures.get(heater, 0.0) < target - HEATING_MARGIN_C:
                return True
        return False

    def apply(self, report: Report) -> list[PrinterEvent]:
        """The events this report causes, usually none."""
        match report:
            case FileOpened(name=name):
                return self._file_opened(name)
            case CurrentFile(name=name):
                return self._current_file(name)
            case SdProgress(position=position, total=total):
                return self._sd_progress(position, total)
            case PercentDone(percent=percent):
                self._percent_done = True  # only a print prints these
                return self._found_running() + self._report_progress(percent)
            case NotSdPrinting():
                return self._not_printing()
            case SdPaused():
                self._status_seen = True
                return self._found_running() + self._pause()
            case DonePrinting():
                return self._done()
            case HostAction(action=action):
                return self._host_action(action)
            case PrinterReset():
                return self._reset()
            case FatalError(message=message):
                return self._fatal(message)
            case Temperatures():
                return self._temperature(report.as_dict())
        return []

    def expect_pause(self) -> None:
        """The link's pause command was acknowledged; with Klipper, frozen positions now confirm it."""
        self._pause_expected = PAUSE_CONFIRM_REPORTS

    def file_check_unanswered(self) -> list[PrinterEvent]:
        """`Not SD printing` and `M27 C` names no file either way: paused, or stopped? Say unknown."""
        self.needs_file_check = False
        return self._unknown("Not SD printing, and the firmware does not say whether a file is open")

    def _event(
        self,
        kind: PrinterEventKind,
        *,
        progress: float | None = None,
        message: str = "",
        temperatures: dict[str, float] | None = None,
    ) -> PrinterEvent:
        return PrinterEvent(
            kind, file=self.file, progress=progress, message=message, temperatures=temperatures or {}
        )

    def _file_opened(self, name: str) -> list[PrinterEvent]:
        events = self._end(K.CANCELLED) if self.active and name != self.file else []
        self.file = name
        self._opened = True
        return events

    def _current_file(self, name: str | None) -> list[PrinterEvent]:
        checking, self.needs_file_check = self.needs_file_check, False
        if name is None:
            if self.state is PrintState.UNKNOWN or (checking and self.state is PrintState.IDLE):
                return self._idle()  # settled: nothing runs (found so, or after being unknown)
            return self._end(K.CANCELLED)
        self.file = name
        if not checking:
            return []
        if self.state is PrintState.PRINTING:
            return self._pause()
        if self.state is PrintState.IDLE:  # found at connect: paused, or selected and never started
            return self._unknown("a file is open but not printing: paused, or selected and not started")
        return []

    def _not_printing(self) -> list[PrinterEvent]:
        first, self._status_seen = not self._status_seen, True
        may_be_paused = self.dialect.not_printing_may_be_paused
        if self.state is PrintState.PRINTING:
            if may_be_paused:
                self.needs_file_check = True
                return []
            return self._end(K.CANCELLED)  # no file open: the print was stopped
        if self.state is PrintState.PAUSED:
            return [] if may_be_paused else self._end(K.CANCELLED)
        if self.state is PrintState.UNKNOWN:
            return [] if may_be_paused else self._idle()
        if not first:
            return []
        if may_be_paused:
            self.needs_file_check = True
            return []
        return self._idle()

    def _sd_progress(self, position: int, total: int) -> list[PrinterEvent]:
        self._status_seen = True
        self.needs_file_check = False
        events = self._found_running()
        if self.state is PrintState.PAUSED:
            if self._position is None or position <= self._position:
                self._position = position
                return events
            events += self._resume()
        if self.dialect.frozen_position_is_pause and self._frozen(position):
            return events + self._pause()
        self._position = position
        if total > 0 and not self._percent_done:
            events += self._report_progress(round(100.0 * position / total, 1))
        return events

    def _frozen(self, position: int) -> bool:
        """Klipper: has the position stood still long enough (or often enough after PAUSE) to be a pause?"""
        if position != self._position:
            self._frozen_since = None
            if self._pause_expected:
                self._pause_expected = PAUSE_CONFIRM_REPORTS
            return False
        if self._pause_expected:
            self._pause_expected -= 1
            return self._pause_expected == 0
        if self.heating:  # an M109 in the file: standing still on purpose
            self._frozen_since = None
            return False
        now = self._clock()
        if self._frozen_since is None:
            self._frozen_since = now
        return now - self._frozen_since >= self._stall_s

    def _done(self) -> list[PrinterEvent]:
        """`Done printing file`; after a `File opened` it ends even a print too short to see running."""
        if not self.active and not self._opened:
            return []
        return self._found_running() + self._end(K.FINISHED)

    def _report_progress(self, progress: float) -> list[PrinterEvent]:
        if progress == self._progress:
            return []
        self._progress = progress
        return [self._event(K.PROGRESS, progress=progress)]

    def _host_action(self, action: str) -> list[PrinterEvent]:
        if action in _PAUSE_ACTIONS:
            return self._found_running() + self._pause()
        if action in _RESUME_ACTIONS:
            return self._found_running() + self._resume()
        if action == "cancel":
            return self._end(K.CANCELLED)
        if action == "start":
            return self._found_running()
        return []

    def _found_running(self) -> list[PrinterEvent]:
        """A print is running: announce it if the follower did not know of one (idle or unknown)."""
        if self.state in (PrintState.PRINTING, PrintState.PAUSED):
            return []
        if self.state is PrintState.IDLE:
            self._progress = None
            self._error = None
        self.state = PrintState.PRINTING
        self._position = None
        self._frozen_since = None
        return [self._event(K.PRINT_STARTED)]

    def _pause(self) -> list[PrinterEvent]:
        if self.state is not PrintState.PRINTING:
            return []
        self.state = PrintState.PAUSED
        self.needs_file_check = False
        self._pause_expected = 0
        self._frozen_since = None
        return [self._event(K.PAUSED)]

    def _resume(self) -> list[PrinterEvent]:
        if self.state is not PrintState.PAUSED:
            return []
        self.state = PrintState.PRINTING
        self.needs_file_check = False  # a `Not SD printing` from before the resume is old news
        return [self._event(K.RESUMED)]

    def _unknown(self, why: str) -> list[PrinterEvent]:
        if self.state is PrintState.UNKNOWN:
            return []
        self.state = PrintState.UNKNOWN
        return [self._event(K.UNKNOWN, message=why)]

    def _idle(self) -> list[PrinterEvent]:
        """No print is running, though the follower did not see one end (found so, or was unknown)."""
        self.state = PrintState.IDLE
        self.file = None
        self._opened = self._percent_done = False
        return [self._event(K.IDLE)]

    def _end(self, kind: PrinterEventKind, message: str = "") -> list[PrinterEvent]:
        if not self.active:
            return []
        event = self._event(kind, message=message)
        self.state = PrintState.IDLE
        self.file = None
        self._opened = self._percent_done = False
        self.needs_file_check = False
        self._pause_expected = 0
        return [event]

    def _reset(self) -> list[PrinterEvent]:
        self._status_seen = False  # what runs after a reboot is found anew
        self._error = None
        if not self.active:
            return []
        return self._end(K.ERROR, message="the printer restarted during the print")

    def _fatal(self, message: str) -> list[PrinterEvent]:
        # A halted firmware repeats its last words, and one fault comes as several lines
        # (`Thermal Runaway` then `kill() called!`): the first says it; the rest until a reset is noise.
        if self._error is not None:
            return []
        self._error = message
        if self.active:
            return self._end(K.ERROR, message=message)
        return [self._event(K.ERROR, message=message)]

    def _temperature(self, values: dict[str, float]) -> list[PrinterEvent]:
        if values == self.temperatures:
            return []
        self.temperatures = values
        return [self._event(K.TEMPERATURE, temperatures=dict(values))]
