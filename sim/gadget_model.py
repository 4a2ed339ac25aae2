"""The stand-in's temporal model: one per context, turning frame scores into the Process answer.

Like the real service, it warns and pauses only after several bad frames in a row, so a single odd
frame never stops a print. Higher confidence levels (1..5) demand longer streaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BAD_FRAME_SCORE = 50  # a frame at or above this counts towards a failure streak


def warning_streak(confidence: int) -> int:
    """Consecutive bad frames before WarningSuggested: 2 at level 1 .. 6 at level 5 (4 by default)."""
    return 1 + confidence


def pause_streak(confidence: int) -> int:
    """Consecutive bad frames before PauseSuggested: 4 at level 1 .. 8 at level 5 (6 by default)."""
    return 3 + confidence


@dataclass(slots=True)
class ContextModel:
    context_id: str
    warning_confidence: int = 3
    pause_confidence: int = 3
    frames: int = 0
    bad_streak: int = 0

    def observe(self, score: int, interval: float | dict[str, float] | None) -> dict[str, Any]:
        """Fold one frame's score into the history and return the Process answer for it."""
        self.frames += 1
        self.bad_streak = self.bad_streak + 1 if score >= BAD_FRAME_SCORE else 0
        pause = self.bad_streak >= pause_streak(self.pause_confidence)
        warning = pause or self.bad_streak >= warning_streak(self.warning_confidence)
        answer: dict[str, Any] = {
            "Score": score,
            "PrintQuality": 10 - round(score * 9 / 100),
            "WarningSuggested": warning,
            "PauseSuggested": pause,
        }
        if interval is not None:
            answer["NextProcessIntervalSec"] = interval
        if isinstance(interval, dict):  # the newest docs pair the object form with this flag
            answer["FasterInspectionSuggested"] = warning and not pause
        return answer
