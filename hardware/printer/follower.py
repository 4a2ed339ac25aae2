"""The print's state machine: the one place that decides what the print is doing.

Polls and auto-reports repeat the same facts every few seconds, the link comes and goes, the
printer may fall silent; the agent wants the print's state and its transitions (started, paused,
finished ...), each once and only when it happened. Pure state, no I/O: the link feeds it reports
and link facts (connected, disconnected, silent) and sends the queries it asks for (`queries`).
The firmware-specific evidence lives in the dialect (dialects.py) and is weighed by evidence.py.

Rules that keep the events honest:
- a print ends (finished, cancelled, lost) only if the follower saw it running;
- a print the follower was following when the link lost sight of it (a disconnect, silence, or
  ambiguous reports) is *held*: the state says `unknown`/`offline`, and when the reports come back
  it goes on (CONTINUED, no new `print_started`), or it is LOST if nothing runs any more;
- `unknown` is said when the reports do not settle a question, never a guessed end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hardware.printer.dialects import MARLIN, Dialect
from hardware.printer.events import PrinterEvent, PrinterEventKind, PrintState
from hardware.printer.evidence import CONFIRM_WINDOW_S, TIMER_RESOLUTION_S, PauseEvidence, Proof
from hardware.printer.reports import (
    Busy,
    CurrentFile,
    DonePrinting,
    FatalError,
    FileOpened,
    HostAction,
    JobTime,
    NotSdPrinting,
    PausedForUser,
    PercentDone,
    PrinterReset,
    Report,
    SdPaused,
    SdProgress,
    Temperatures,
)

K = PrinterEventKind
KLIPPER_STALL_S = 30.0  # a byte frozen this long (not heating) is a pause made elsewhere (Klipper)
_IN_PRINT = (PrintState.PRINTING, PrintState.PAUSED)


class PrintFollower:
    def __init__(
        self,
        dialect: Dialect = MARLIN,
        *,
        stall_s: float = KLIPPER_STALL_S,
        window_s: float = CONFIRM_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dialect = dialect
        self.state = PrintState.OFFLINE
        self.file: str | None = None
        self.progress: float | None = None
        # Marlin's `Not SD printing` means paused if the file is still open, stopped if not;
        # the link answers this with `M27 C` and feeds back the CurrentFile report.
        self.needs_file_check = False
        self.temperatures: dict[str, float] = {}
        self._stall_s = stall_s
        self._window_s = window_s
        self._clock = clock
        self._heating = False
        self._held: PrintState | None = None  # what the print was when the link lost sight of it
        self._silent = False
        self._size: int | None = None
        self._position: int | None = None
        self._percent_done = False  # Prusa's M73 progress seen: byte progress would contradict it
        self._error: str | None = None
        self._status_seen = False  # the first SD status of a session says what was found
        self._opened = False  # a file was opened this session: a print of it is seen starting
        self._evidence: PauseEvidence | None = None  # a pause made elsewhere, in question

    @property
    def in_print(self) -> bool:
        return self.state in _IN_PRINT

    @property
    def heating(self) -> bool:
        return self._heating

    @property
    def unseen_print(self) -> bool:
        """A print that was printing when the link lost sight of it: it very likely goes on."""
        return self._held is PrintState.PRINTING and (self.state is PrintState.OFFLINE or self._silent)

    def queries(self) -> list[str]:
        """What the link should ask this poll for the follower to settle an open question."""
        wanted = ["M27 C"] if self.needs_file_check else []
        if self.state is PrintState.PRINTING and self._evidence is not None and self._evidence.wants_job_time:
            wanted.append("M31")
        return wanted

    # --- link facts ------------------------------------------------------------------------------

    def connected(self, firmware: str, dialect: Dialect) -> list[PrinterEvent]:
        self.dialect = dialect
        self._status_seen = False
        self._opened = False
        self._silent = False
        # A printer that kept its auto-reports through a replug sends them before the handshake
        # ends: a print they already showed going on stays followed, not found again.
        if not self.in_print:
            self.state = PrintState.UNKNOWN if self._held else PrintState.IDLE
        return [self.event(K.CONNECTED, firmware=firmware, dialect=dialect.name)]

    def disconnected(self, reason: str) -> list[PrinterEvent]:
        self._lose_sight()
        self.state = PrintState.OFFLINE
        return [self.event(K.DISCONNECTED, message=reason)]

    def silent(self, why: str) -> list[PrinterEvent]:
        """The open port carries nothing and a probe got no answer."""
        if self._silent or self.state is PrintState.OFFLINE:
            return []
        self._lose_sight()
        self._silent = True
        self.state = PrintState.UNKNOWN
        return [self.event(K.SILENT, message=why)]

    def heard(self) -> list[PrinterEvent]:
        """Any line after SILENT: the reports that follow settle the state again."""
        if not self._silent:
            return []
        self._silent = False
        self._status_seen = False
        return [self.event(K.RESPONDING)]

    def confirm_paused(self, proof: str) -> list[PrinterEvent]:
        """The link's own pause command was confirmed by the printer's evidence."""
        return self._pause(proof)

    def file_check_unanswered(self) -> list[PrinterEvent]:
        """`Not SD printing` and `M27 C` names no file either way: paused, or stopped?"""
        self.needs_file_check = False
        if self.state is PrintState.PRINTING:
            self._lose_sight()
            self.state = PrintState.UNKNOWN
            why = "Not SD printing, and the firmware does not say whether a file is open: paused or stopped?"
            return [self.event(K.UNKNOWN, message=why)]
        return []  # idle at connect stays idle: nothing was seen running

    # --- reports ---------------------------------------------------------------------------------

    def apply(self, report: Report) -> list[PrinterEvent]:
        """The events this report causes, usually none."""
        evidence = self._evidence
        if evidence is not None and self.state is PrintState.PRINTING and (proof := evidence.note(report)):
            return self._pause(proof)
        match report:
            case FileOpened(name=name, size=size):
                return self._file_opened(name, size)
            case CurrentFile(name=name):
                return self._current_file(name)
            case SdProgress(position=position, total=total):
                return self._sd_progress(position, total)
            case PercentDone(percent=percent):
                self._percent_done = True  # only a print prints these
                return self._running() + self._report_progress(percent)
            case NotSdPrinting():
                return self._not_printing()
            case SdPaused():
                self._status_seen = True
                return self._running() + self._pause("M27 says SD print paused")
            case PausedForUser():
                return self._pause("echo:busy: paused for user") if self.state is not PrintState.IDLE else []
            case HostAction(action=action):
                return self._host_action(action)
            case DonePrinting():
                return self._done()
            case PrinterReset():
                return self._reset()
            case FatalError(message=message):
                return self._fatal(message)
            case Temperatures():
                return self._temperature(report)
            case Busy():
                # Said every ~2 s while the firmware works through something long: the agent's
                # stall watch hears it (a print standing still while busy has not stalled).
                return [self.event(K.BUSY)] if self.state is PrintState.PRINTING else []
            case JobTime():
                return []
        return []

    def _file_opened(self, name: str, size: int) -> list[PrinterEvent]:
        events: list[PrinterEvent] = []
        if self.in_print and name != self.file:  # another file: the one followed was stopped
            events = self._end(K.CANCELLED)
        elif self._held and name != self.file:
            events = self._end(K.LOST, "another file was opened meanwhile")
        self.file = name
        self._size = size
        self._opened = True
        return events

    def _current_file(self, name: str | None) -> list[PrinterEvent]:
        checking, self.needs_file_check = self.needs_file_check, False
        if name is None:
            if self.in_print:
                return self._end(K.CANCELLED)  # the file was closed: stopped at the panel
            if self._held:
                return self._end(K.LOST, "no file is open any more")
            return self._idle()
        self.file = name
        if not checking:
            return []
        if self.state is PrintState.PRINTING:  # no evidence object (e.g. right after a resume)
            return self._pause(f"Not SD printing while {name} stays open")
        if self._held:
            return self._continue(PrintState.PAUSED)
        if self.state is PrintState.IDLE:  # found at connect: paused, or selected and never started
            return self._unknown("a file is open but not printing: paused, or selected and not started")
        return []

    def _not_printing(self) -> list[PrinterEvent]:
        first, self._status_seen = not self._status_seen, True
        may_be_paused = self.dialect.not_printing_may_be_paused
        if self.state is PrintState.PRINTING:
            if not may_be_paused:
                return self._end(K.CANCELLED)  # no file open: the print was stopped
            self._suspect()
            self.needs_file_check = True
            return []
        if self.state is PrintState.PAUSED:
            return [] if may_be_paused else self._end(K.CANCELLED)
        if self._held:
            if may_be_paused:
                self.needs_file_check = True
                return []
            return self._end(K.LOST, "the printer says nothing is printing")
        if self.state is PrintState.UNKNOWN:
            return [] if may_be_paused else self._idle()
        if first and may_be_paused and self.state is PrintState.IDLE:
            self.needs_file_check = True  # a print paused before we came? `M27 C` tells
        return []

    def _sd_progress(self, position: int, total: int) -> list[PrinterEvent]:
        self._status_seen = True
        self.needs_file_check = False
        if total > 0:
            self._size = total
        before, self._position = self._position, position
        moved = before is not None and position != before
        if self._held:
            if self._held is PrintState.PAUSED and moved:
                return self._continue(PrintState.PAUSED) + self._resume()
            return self._continue(self._held) + self._progress_of(position)
        if self.state is PrintState.PAUSED:
            if not moved:
                return []
            return self._resume() + self._progress_of(position)
        if self.state is not PrintState.PRINTING:
            if not self._opened and self.dialect.byte_freezes_when_paused and not moved:
                # Found at connect: the byte of a paused print stands still too; wait for it to move.
                return self._unknown("a print is open but its SD byte does not move yet: paused, or busy")
            events = self._start(found=not self._opened)
            return events + self._progress_of(position)
        if moved:
            self._evidence = None
            return self._progress_of(position)
        self._suspect()
        return []

    def _suspect(self) -> None:
        """The print stands still: a pause made elsewhere? The dialect's passive evidence decides."""
        if self._evidence is not None:
            return
        # Klipper: the byte frozen for stall_s. Marlin: M31, whose timer runs through every stall,
        # so two equal readings just over its resolution apart suffice.
        frozen = Proof.FROZEN_BYTE in self.dialect.passive_evidence
        window = self._stall_s if frozen else min(self._window_s, TIMER_RESOLUTION_S)
        self._evidence = PauseEvidence(
            self.dialect.passive_evidence, window, self._clock, drained=True, heating=self._heating
        )
        if self._position is not None:
            self._evidence.note(SdProgress(self._position, self._size or 0))

    def _host_action(self, action: str) -> list[PrinterEvent]:
        if action == "paused":
            return self._pause("//action:paused")
        if action == "pause" and self.state is PrintState.PRINTING:
            self._suspect()  # a request to the host, not a confirmation: look for evidence
        elif action == "resumed" and self.state is PrintState.PAUSED:
            return self._resume()
        elif action == "cancel" and (self.in_print or self._held):
            return self._end(K.CANCELLED)
        return []

    def _done(self) -> list[PrinterEvent]:
        """`Done printing file`; after a `File opened` it ends even a print too short to see running."""
        if self._held:
            return self._continue(PrintState.PRINTING) + self._end(K.FINISHED)
        if not self.in_print and not self._opened:
            return self._idle() if self.state is PrintState.UNKNOWN else []
        return self._running() + self._end(K.FINISHED)

    def _reset(self) -> list[PrinterEvent]:
        self._status_seen = False  # what runs after a reboot is found anew
        self._error = None
        if self.in_print or self._held:
            return self._end(K.ERROR, "the printer restarted during the print", PrintState.ERROR)
        return self._idle() if self.state is PrintState.UNKNOWN else []

    def _fatal(self, message: str) -> list[PrinterEvent]:
        # A halted firmware repeats its last words, and one fault comes as several lines
        # (`Thermal Runaway` then `kill() called!`): the first says it; the rest until a reset is noise.
        if self._error is not None:
            return []
        self._error = message
        return self._end(K.ERROR, message, PrintState.ERROR)

    def _temperature(self, reading: Temperatures) -> list[PrinterEvent]:
        values = reading.as_dict()
        heating, self._heating = self._heating, reading.heating
        if values == self.temperatures and heating == self._heating:
            return []
        self.temperatures = values
        return [self.event(K.TEMPERATURE, temperatures=dict(values))]

    # --- transitions -----------------------------------------------------------------------------

    def event(self, kind: PrinterEventKind, **fields: object) -> PrinterEvent:
        """An event stamped with the state after it."""
        snapshot: dict[str, object] = {
            "state": self.state,
            "file": self.file,
            "progress": self.progress,
            "heating": self._heating,
            "unseen_print": self.unseen_print,
            "sd_size": self._size,
            "sd_position": self._position,
        }
        return PrinterEvent(kind, **(snapshot | fields))  # type: ignore[arg-type]

    def _running(self) -> list[PrinterEvent]:
        """A report only a running print sends: announce the print if none is followed."""
        if self.in_print:
            return []
        if self._held:
            return self._continue(self._held)
        return self._start(found=not self._opened)

    def _start(self, *, found: bool) -> list[PrinterEvent]:
        self.state = PrintState.PRINTING
        self._error = None
        self._evidence = None
        self._heating = True  # until a reading says otherwise: the start G-code heats first
        self.progress = 0.0 if not found else None
        return [self.event(K.PRINT_STARTED, found=found)]

    def _continue(self, state: PrintState) -> list[PrinterEvent]:
        """The print held while the link could not see it goes on, as the printer now says."""
        self._held = None
        self._silent = False
        self.state = state
        return [self.event(K.CONTINUED)]

    def _pause(self, proof: str) -> list[PrinterEvent]:
        if self._held:
            return self._continue(PrintState.PAUSED)
        if self.state is not PrintState.PRINTING:
            return []
        self.state = PrintState.PAUSED
        self.needs_file_check = False
        self._evidence = None
        return [self.event(K.PAUSED, message=proof)]

    def _resume(self) -> list[PrinterEvent]:
        if self.state is not PrintState.PAUSED:
            return []
        self.state = PrintState.PRINTING
        self.needs_file_check = False  # a `Not SD printing` from before the resume is old news
        self._evidence = None
        return [self.event(K.RESUMED)]

    def _unknown(self, why: str) -> list[PrinterEvent]:
        if self.state is PrintState.UNKNOWN:
            return []
        self.state = PrintState.UNKNOWN
        return [self.event(K.UNKNOWN, message=why)]

    def _idle(self) -> list[PrinterEvent]:
        """Nothing runs, and nothing the follower followed ended: a state, not a transition."""
        was = self.state
        self._forget_print()
        if was is PrintState.ERROR:
            return []  # an error stays the state until a print starts
        self.state = PrintState.IDLE
        return [] if was is PrintState.IDLE else [self.event(K.IDLE)]

    def _end(
        self, kind: PrinterEventKind, message: str = "", state: PrintState = PrintState.IDLE
    ) -> list[PrinterEvent]:
        """The print ends: the event names it (file, progress), the state after it has none."""
        ended = {"file": self.file, "progress": self.progress}
        self._forget_print()
        self.state = state
        return [self.event(kind, message=message, **ended)]

    def _forget_print(self) -> None:
        self.file = None
        self.progress = None
        self._held = None
        self._silent = False
        self._position = self._size = None
        self._opened = self._percent_done = False
        self.needs_file_check = False
        self._evidence = None

    def _lose_sight(self) -> None:
        if self.in_print:
            self._held = self.state
        self.needs_file_check = False
        self._evidence = None

    def _progress_of(self, position: int) -> list[PrinterEvent]:
        if not self._size or self._percent_done:
            return []
        return self._report_progress(round(100.0 * position / self._size, 1))

    def _report_progress(self, progress: float) -> list[PrinterEvent]:
        if progress == self.progress:
            return []
        self.progress = progress
        return [self.event(K.PROGRESS, progress=progress)]
