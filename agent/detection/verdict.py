"""What one inspection says, and how an inspection can fail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int  # 0 perfect .. 100 failed
    print_quality: int  # 1 failed .. 10 perfect, for display
    warning: bool
    pause: bool
    next_interval_s: float  # earliest time to the next Process call, already respecting the user's minimum


class DetectionError(Exception):
    """An inspection that produced no verdict.

    `error_type` is the service's ErrorType (or a local one such as `NETWORK`), `retry_after_s`
    when to try again, and `stopped` whether inspecting must stop until something changes: a bad
    key stops with an infinite `retry_after_s` (until a restart or the next print), a used-up
    allowance or budget until the next month begins.
    """

    def __init__(self, error_type: str, message: str, retry_after_s: float, stopped: bool = False) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.retry_after_s = retry_after_s
        self.stopped = stopped
