"""Quiet, useful logs: a lasting condition is told when it starts, at slowing reminders and when
it ends; a burst of lines of one kind is collapsed into the first one and a count.

A camera that stays broken for a month, retried every few seconds, must not write a line per
attempt to a Pi's SD card: the journal of that month is a few dozen lines (`REMINDERS_S`).

It lives in `hardware/` because both layers log lasting conditions (the printer link, the
camera, the detection link) and `hardware/` may not import `agent/`. Time comes from an
injectable clock, so tests replay a month without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

# Reminders after 1 min, 10 min, 1 h and 6 h of a condition, then once a day.
REMINDERS_S = (60.0, 600.0, 3600.0, 6 * 3600.0)
REMINDER_EVERY_S = 24 * 3600.0
# A condition that changes its reason all the time logs at most this many reasons per episode.
MAX_REASONS = 8
# Lines of one kind within this window after the first are counted, not written; while the
# flood goes on, the next windows last 1 min, 10 min, then 1 h each.
BURST_WINDOW_S = 10.0
LATER_BURST_WINDOWS_S = (60.0, 600.0, 3600.0)
MAX_BURST_KINDS = 64


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`: how long, for a person."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h" + (f" {minutes % 60} min" if minutes % 60 else "")
    return f"{days} d" + (f" {hours % 24} h" if hours % 24 else "")


class LastingCondition:
    """One condition that may last (e.g. "Camera"): `failed(reason)` on every failed attempt,
    `recovered()` on every success; only the changes and the reminders reach the log."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        clock: Clock = time.monotonic,
    ) -> None:
        self.log, self.what, self.level, self.clock = logger, what, level, clock
        self.since: float | None = None  # when the current episode began
        self.failures = 0
        self._reasons: list[str] = []
        self._next_reminder = 0.0
        self._reminders = 0

    def failed(self, reason: str) -> None:
        now = self.clock()
        if self.since is None:
            self.since, self.failures, self._reasons, self._reminders = now, 0, [], 0
            self._next_reminder = now + REMINDERS_S[0]
        self.failures += 1
        if reason not in self._reasons and len(self._reasons) < MAX_REASONS:
            self._reasons.append(reason)
            self.log.log(self.level, "%s: %s", self.what, reason)
        elif now >= self._next_reminder:
            self.log.log(
                self.level,
                "%s: still failing after %s (%d attempts): %s",
                self.what,
                duration(now - self.since),
                self.failures,
                reason,
            )
        else:
            return
        while self._next_reminder <= now:
            self._reminders += 1
            step = self._reminders
            self._next_reminder = (
                self.since + REMINDERS_S[step]
                if step < len(REMINDERS_S)
                else self._next_reminder + REMINDER_EVERY_S
            )

    def recovered(self) -> None:
        if self.since is None:
            return
        lasted = duration(self.clock() - self.since)
        attempts = f"{self.failures} failed attempt" + ("s" if self.failures != 1 else "")
        self.log.info("%s: working again after %s (%s)", self.what, lasted, attempts)
        self.since = None


class BurstLog:
    """Writes the first line of a kind (its format string) and counts the next ones; when the
    window closes it writes the count. A flood that goes on gets ever longer windows (10 s, 1 min,
    10 min, then 1 h), so it too is a handful of lines; a window without a repeat ends the burst.

    Kinds are format strings, not rendered text, so junk that differs in every message (500 bad
    MQTT commands) still collapses into one line. With an asyncio loop running the count is
    written when its window closes; otherwise at the next line or at `flush()`.
    """

    def __init__(self, logger: logging.Logger, *, clock: Clock = time.monotonic) -> None:
        self.log, self.clock = logger, clock
        self._open: dict[str, _Burst] = {}  # by format string
        self._timer: asyncio.TimerHandle | None = None

    def log_line(self, level: int, msg: str, *args: object) -> None:
        now = self.clock()
        self.flush(now)
        if (burst := self._open.get(msg)) is not None:
            burst.repeats += 1
            return
        self.log.log(level, msg, *args)
        if len(self._open) < MAX_BURST_KINDS:
            first = (msg % args if args else msg)[:120]
            self._open[msg] = _Burst(level, first, now + BURST_WINDOW_S, BURST_WINDOW_S)
            self._arm()

    def flush(self, now: float | None = None) -> None:
        """Write the counts of the windows that have closed."""
        now = self.clock() if now is None else now
        for msg, burst in list(self._open.items()):
            if now < burst.closes_at:
                continue
            if not burst.repeats:
                del self._open[msg]
                continue
            self.log.log(
                burst.level, '%d more like "%s" in %s', burst.repeats, burst.first, duration(burst.window_s)
            )
            burst.window_s = LATER_BURST_WINDOWS_S[min(burst.windows, len(LATER_BURST_WINDOWS_S) - 1)]
            burst.closes_at, burst.repeats, burst.windows = now + burst.window_s, 0, burst.windows + 1

    def _arm(self) -> None:
        if self._timer is not None or not self._open:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = min(b.closes_at for b in self._open.values()) - self.clock()
        self._timer = loop.call_later(max(delay, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()
        self._arm()


@dataclass(slots=True)
class _Burst:
    level: int
    first: str  # the first line, as written
    closes_at: float
    window_s: float
    repeats: int = 0
    windows: int = 0  # closed with a count so far
