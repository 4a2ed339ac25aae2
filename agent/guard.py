"""The pause policy: what the agent does with a verdict. This is where it decides to pause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.detection.verdict import Verdict

# After a false alarm, alerts come back for this print only when the score climbs clearly above the
# false alarm's: at least this many points over its peak (at most to 100) ...
UNMUTE_MARGIN = 10
# ... on this many inspections in a row (about a minute at the service's usual 20 s): one odd
# frame never re-arms the guard, a failure that grows beyond the clutter does.
UNMUTE_STREAK = 3


@dataclass(frozen=True, slots=True)
class Decision:
    warn: bool = False  # emit a failure_warning event
    pause: bool = False  # pause the printer now


class Guard:
    """Turns the service's suggestions into actions, once per episode rather than once per frame.

    A warning is raised when the service starts suggesting one, not on every inspection that
    repeats it. A pause is only acted on with `action = "pause"`, and not within `resume_grace_s`
    after the user resumed: they looked at the print and decided it is fine.

    The user can silence it for the rest of a print. A false alarm (the last alert labelled so)
    mutes warnings and pauses until the score reaches the false alarm's peak + UNMUTE_MARGIN on
    UNMUTE_STREAK inspections in a row; then the guard listens to the service again. A snooze
    mutes them for the rest of the print, whatever the score.
    """

    def __init__(self, action: Literal["pause", "warn"], resume_grace_s: float = 0.0) -> None:
        self.action = action
        self.resume_grace_s = resume_grace_s
        self.reset()

    def reset(self) -> None:
        """A new print starts with a clean slate."""
        self._warned = False
        self._pause_warned = False
        self._grace_until = 0.0
        self.episode_peak: int | None = None  # the highest score of this print's last alert episode
        self._episode_open = False  # a resume ends an episode; the next alert begins one
        self.muted_below: int | None = None  # muted until the score climbs to this (101: snoozed)
        self._climb = 0

    def note_false_alarm(self) -> bool:
        """The last alert was a false alarm: mute (see the class). False if this print had none."""
        if self.episode_peak is None:
            return False
        self.muted_below = min(self.episode_peak + UNMUTE_MARGIN, 100)
        self._climb = 0
        return True

    def snooze(self) -> None:
        """No warning or pause for the rest of this print."""
        self.muted_below = 101

    @property
    def muted(self) -> str | None:
        """`snoozed`, `false_alarm` (muted below a score), or None."""
        if self.muted_below is None:
            return None
        return "snoozed" if self.muted_below > 100 else "false_alarm"

    def note_resume(self, now: float) -> None:
        self._grace_until = now + self.resume_grace_s
        self._warned = False
        self._pause_warned = False
        self._episode_open = False

    def decide(self, verdict: Verdict, now: float) -> Decision:
        if self._still_muted(verdict.score):
            return Decision()
        if verdict.warning or verdict.pause:
            opened = self._episode_open and self.episode_peak is not None
            self.episode_peak = max(self.episode_peak or 0, verdict.score) if opened else verdict.score
            self._episode_open = True
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

    def _still_muted(self, score: int) -> bool:
        if self.muted_below is None:
            return False
        self._climb = self._climb + 1 if score >= self.muted_below else 0
        if self._climb < UNMUTE_STREAK:
            return True
        self.muted_below = None  # clearly worse than the false alarm: a new episode begins
        self._warned = self._pause_warned = self._episode_open = False
        return False
