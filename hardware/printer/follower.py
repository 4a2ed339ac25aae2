"""Follows the print from the firmware's reports and says what changed, once per change.

Polls and auto-reports repeat the same facts every few seconds; the agent wants transitions
(started, paused, finished ...), so this turns a stream of reports into a stream of events.
Pure state, no I/O: the link feeds it and acts on `needs_file_check`.
"""

from __future__ import annotations

from enum import Enum

from hardware.printer.events import PrinterEvent, PrinterEventKind
from hardware.printer.reports import (
    CurrentFile,
    DonePrinting,
    FatalError,
    FileOpened,
    HostAction,
    NotSdPrinting,
    PrinterReset,
    Report,
    SdPaused,
    SdProgress,
    Temperatures,
)

K = PrinterEventKind
_PAUSE_ACTIONS = {"pause", "paused"}
_RESUME_ACTIONS = {"resume", "resumed"}


class PrintState(Enum):
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"


class PrintFollower:
    def __init__(self) -> None:
        self.state = PrintState.IDLE
        self.file: str | None = None
        # Marlin's `Not SD printing` means paused if the file is still open, stopped if not;
        # the link answers this with `M27 C` and feeds back the CurrentFile report.
        self.needs_file_check = False
        self._position: int | None = None
        self._progress: float | None = None
        self._temperatures: dict[str, float] = {}
        self._error: str | None = None

    @property
    def active(self) -> bool:
        return self.state is not PrintState.IDLE

    def apply(self, report: Report) -> list[PrinterEvent]:
        """The events this report causes, usually none."""
        match report:
            case FileOpened(name=name):
                return self._file_opened(name)
            case CurrentFile(name=name):
                return self._current_file(name)
            case SdProgress(position=position, total=total):
                return self._sd_progress(position, total)
            case NotSdPrinting():
                self.needs_file_check = self.active
                return []
            case SdPaused():
                return self._start_if_idle() + self._pause()
            case DonePrinting():
                return self._end(K.FINISHED)
            case HostAction(action=action):
                return self._host_action(action)
            case PrinterReset():
                return self._reset()
            case FatalError(message=message):
                return self._fatal(message)
            case Temperatures():
                return self._temperature(report.as_dict())
        return []

    def assume_paused(self) -> list[PrinterEvent]:
        """`Not SD printing` with no answer to `M27 C`: the safe reading is a pause (it can resume)."""
        self.needs_file_check = False
        return self._pause()

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
        return events

    def _current_file(self, name: str | None) -> list[PrinterEvent]:
        checking, self.needs_file_check = self.needs_file_check, False
        if name is None:
            return self._end(K.CANCELLED)
        self.file = name
        return self._pause() if checking else []

    def _sd_progress(self, position: int, total: int) -> list[PrinterEvent]:
        self.needs_file_check = False
        events = self._start_if_idle()
        if self.state is PrintState.PAUSED:
            if self._position is None or position <= self._position:
                self._position = position
                return events
            events += self._resume()
        self._position = position
        progress = round(100.0 * position / total, 1) if total > 0 else 0.0
        if progress != self._progress:
            self._progress = progress
            events.append(self._event(K.PROGRESS, progress=progress))
        return events

    def _host_action(self, action: str) -> list[PrinterEvent]:
        if action in _PAUSE_ACTIONS:
            return self._pause()
        if action in _RESUME_ACTIONS:
            return self._resume()
        if action == "cancel":
            return self._end(K.CANCELLED)
        if action == "start":
            return self._start_if_idle()
        return []

    def _start_if_idle(self) -> list[PrinterEvent]:
        if self.active:
            return []
        self.state = PrintState.PRINTING
        self._position = None
        self._progress = None
        self._error = None
        return [self._event(K.PRINT_STARTED)]

    def _pause(self) -> list[PrinterEvent]:
        if self.state is not PrintState.PRINTING:
            return []
        self.state = PrintState.PAUSED
        self.needs_file_check = False
        return [self._event(K.PAUSED)]

    def _resume(self) -> list[PrinterEvent]:
        if self.state is not PrintState.PAUSED:
            return []
        self.state = PrintState.PRINTING
        self.needs_file_check = False  # a `Not SD printing` from before the resume is old news
        return [self._event(K.RESUMED)]

    def _end(self, kind: PrinterEventKind, message: str = "") -> list[PrinterEvent]:
        if not self.active:
            return []
        event = self._event(kind, message=message)
        self.state = PrintState.IDLE
        self.file = None
        self.needs_file_check = False
        return [event]

    def _reset(self) -> list[PrinterEvent]:
        if not self.active:
            return []
        return self._end(K.ERROR, message="the printer restarted during the print")

    def _fatal(self, message: str) -> list[PrinterEvent]:
        if message == self._error:  # a halted Marlin repeats its last words every few seconds
            return []
        self._error = message
        if self.active:
            return self._end(K.ERROR, message=message)
        return [self._event(K.ERROR, message=message)]

    def _temperature(self, values: dict[str, float]) -> list[PrinterEvent]:
        if values == self._temperatures:
            return []
        self._temperatures = values
        return [self._event(K.TEMPERATURE, temperatures=dict(values))]
