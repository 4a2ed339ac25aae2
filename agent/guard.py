"""The pause policy: what the agent does with a verdict. This is where it decides to pause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.detection.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Decision:
    warn: bool = False  # emit a failure_warning event
    pause: bool = False  # pause the printer now


class Guard:
    """Turns the service's suggestions into actions, once per episode rather than once per frame.

    A warning is raised when the service starts suggesting one, not on every inspection that
    repeats it. A pause is only acted on with `action = "pause"`, and not within `resume_grace_s`
    after the user resumed: they looked at the print and decided it is fine.
    """

    def __init__(self, action: Literal["pause", "warn"], resume_grace_s: float = 0.0) -> None:
        self.action = action
        self.resume_grace_s = resume_grace_s
        self._warned = False
        self._pause_warned = False
        self._grace_until = 0.0

    def reset(self) -> None:
        """A new print starts with a clean slate."""
        self._warned = False
        self._pause_warned = False
        self._grace_until = 0.0

    def note_resume(self, now: float) -> None:
        self._grace_until = now + self.resume_grace_s
        self._warned = False
        self._pause_warned = False

    def decide(self, verdict: Verdict, now: float) -> Decision:
        warn = verdict.warning and not self._warned
        self._warned = verdict.warning
        if not verdict.pause:
            self._pause_warned = False
            return Decision(warn=warn)
        if self.action == "pause" and now >= self._grace_until:
            return Decision(warn=warn, pause=True)
        # Told to only warn (or still in grace): say it once that a pause was suggested.
        first = not self._pause_warned
        self._pause_warned = True
        return Decision(warn=warn or first)
