"""What proves a pause: the printer's own evidence, weighed while a pause is in question.

From ../shared/reference/serial.md ("How to confirm a pause", "What falsely looks like a pause"):
the SD byte is the read-ahead position and stands still whenever the planner is full, the printer
heats or homes, so a frozen byte counts only after `M400` (the queue drained), over a window,
with no `echo:busy: processing` and no heating in it. `M31`'s job timer stops only for a pause.
`//action:pause` is a request to the host and proves nothing; `//action:paused` does, once the
queue drained. `echo:busy: paused for user` proves it at once (a parked `M25` never gets its ok).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from hardware.printer.reports import (
    Busy,
    CurrentFile,
    HostAction,
    JobTime,
    NotSdPrinting,
    PausedForUser,
    Report,
    SdPaused,
    SdProgress,
    Temperatures,
)

CONFIRM_WINDOW_S = 3.0  # "two polls a few seconds apart"
# M31 counts whole seconds: equal readings closer than this prove nothing; further apart they
# prove the timer stopped, whatever the planner does (it runs through heating, moves, G4).
TIMER_RESOLUTION_S = 1.2


class Proof(StrEnum):
    PAUSED_FOR_USER = "paused_for_user"  # `echo:busy: paused for user`
    PAUSED_ACTION = "paused_action"  # `//action:paused` (Prusa 3.13: `// action:paused`)
    SD_PAUSED = "sd_paused"  # Prusa: `M27` → `SD print paused`
    FILE_OPEN = "file_open"  # Marlin ≤ 2.1.1: `Not SD printing` while `M27 C` names the file
    FROZEN_BYTE = "frozen_byte"  # Marlin 2.1.2+, Klipper: `SD printing byte` unchanged over the window
    JOB_TIMER = "job_timer"  # Marlin: two equal `M31` answers over the window


@dataclass(slots=True)
class _Sample:
    value: int
    at: float


class PauseEvidence:
    """Collects reports while a pause is in question; `proof` says what settled it, once it is.

    `drained`: the queue is known empty (our pause command and `M400` were answered), or no
    drain is needed (a pause the printer made: the window alone must then rule out a stall).
    """

    def __init__(
        self,
        accepted: Iterable[Proof],
        window_s: float,
        clock: Callable[[], float],
        *,
        drained: bool = False,
        heating: bool = False,
    ) -> None:
        self.accepted = frozenset(accepted)
        self.window_s = window_s
        self._clock = clock
        self._drained = drained
        self.proof: str | None = None
        self._action_paused = False
        self._sd_paused = False
        self.not_printing = False  # `Not SD printing` seen: ask `M27 C`
        self._heating = heating
        self._byte: _Sample | None = None
        self._timer: _Sample | None = None

    @property
    def wants_job_time(self) -> bool:
        return self.proof is None and Proof.JOB_TIMER in self.accepted

    def drained(self) -> str | None:
        """`M400` was answered: evidence from before the drain (the actions) counts from now."""
        self._drained = True
        self._byte = self._timer = None  # samples taken before the drain prove nothing
        if self._action_paused and self._prove(
            Proof.PAUSED_ACTION, "//action:paused after the queue drained"
        ):
            return self.proof
        if self._sd_paused:
            return self._prove(Proof.SD_PAUSED, "M27 says SD print paused")
        return None

    def note(self, report: Report) -> str | None:
        """Weigh one report; returns the proof when this report settles the pause."""
        if self.proof is not None:
            return None
        match report:
            case PausedForUser():
                return self._prove(Proof.PAUSED_FOR_USER, "echo:busy: paused for user")
            case HostAction(action="paused"):
                self._action_paused = True
                if self._drained:
                    return self._prove(Proof.PAUSED_ACTION, "//action:paused after the queue drained")
            case SdPaused():
                self._sd_paused = True
                if self._drained:
                    return self._prove(Proof.SD_PAUSED, "M27 says SD print paused")
            case Busy():  # executing something: whatever stood still so far was no pause
                self._byte = self._timer = None
            case Temperatures():
                self._heating = report.heating
                if self._heating:
                    self._byte = None
            case NotSdPrinting():
                self.not_printing = self._drained
            case CurrentFile(name=name):
                if name is not None and self.not_printing:
                    return self._prove(Proof.FILE_OPEN, f"Not SD printing while {name} stays open")
            case SdProgress(position=position):
                if self._drained and not self._heating:
                    return self._same(Proof.FROZEN_BYTE, "_byte", position, f"SD byte {position}")
            case JobTime(seconds=seconds):
                if self._drained:
                    what = f"M31 print time {seconds} s"
                    return self._same(Proof.JOB_TIMER, "_timer", seconds, what, TIMER_RESOLUTION_S)
        return None

    def _same(
        self, proof: Proof, slot: str, value: int, what: str, apart_s: float | None = None
    ) -> str | None:
        """Two equal readings at least the window (and `apart_s`) apart, nothing busy in between."""
        now = self._clock()
        first: _Sample | None = getattr(self, slot)
        if first is None or first.value != value:
            setattr(self, slot, _Sample(value, now))
            return None
        if now - first.at < max(self.window_s, apart_s or 0.0):
            return None
        return self._prove(proof, f"{what} unchanged over {now - first.at:.1f} s")

    def _prove(self, proof: Proof, why: str) -> str | None:
        if proof not in self.accepted:
            return None
        self.proof = why
        return why
