"""What inspections cost: Process calls counted per calendar month (UTC), persisted, capped.

Every Process request sent counts, whatever its answer: an upper bound of what the service bills.
`detection.monthly_budget` stops inspections for the rest of the month once reached, and
`detection.budget_spread_hours_per_day` stretches the interval so the calls left last the month.
Each agent counts its own calls, and adds them to the Pi's count (agent.detection.pi_usage) that
every printer's agent on the Pi shares; `detection.budget_scope` says which one the budget caps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from agent.detection.pi_usage import PiUsage
from agent.detection.verdict import DetectionError
from agent.store import JsonRecord

log = logging.getLogger(__name__)

FREE_USAGE_ERROR = "OE_FREE_USAGE_LIMIT_REACHED"
BUDGET_ERROR = "BUDGET_REACHED"  # local: detection.monthly_budget is used up
# A month stop waits this much past midnight, so that a timer waking a little early (loop and wall
# clocks drift apart) finds the new month instead of stopping again.
ROLLOVER_MARGIN_S = 1.0


def month_of(timestamp: float) -> str:
    """The billing month, as `YYYY-MM` in UTC."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m")


def next_month_start(timestamp: float) -> float:
    moment = datetime.fromtimestamp(timestamp, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


class UsageMeter:
    """This month's Process calls, and whether the month allows another one.

    The free-allowance stop is kept in memory only: a restart tries once more (one call), which is
    how a user who upgraded the plan gets inspections back before the month ends.
    """

    def __init__(
        self,
        record: JsonRecord | None = None,
        budget: int = 0,
        spread_hours_per_day: float = 0.0,
        clock: Callable[[], float] = time.time,
        pi: Callable[[Callable[[], str]], PiUsage] | None = None,
        scope: Literal["pi", "printer"] = "pi",
    ) -> None:
        """`pi` makes the Pi's shared count, given the month to count in."""
        self.budget = budget
        self.spread_hours_per_day = spread_hours_per_day
        self.scope = scope if pi else "printer"
        self._record = record
        self._pi = pi(self.month) if pi else None
        self._clock = clock
        self._month = month_of(clock())
        self._calls = 0
        self._allowance_used = False
        saved = record.load() if record else None
        if saved and saved.get("month") == self._month and _count(saved.get("calls")) is not None:
            self._calls = saved["calls"]

    @property
    def calls(self) -> int:
        """Process calls this agent sent this calendar month."""
        self._roll_over()
        return self._calls

    @property
    def pi_calls(self) -> int:
        """Process calls every agent on this Pi sent this calendar month."""
        self._roll_over()
        shared = self._pi.calls() if self._pi else None
        return self._calls if shared is None else shared

    def month(self) -> str:
        return month_of(self._clock())

    def count_call(self) -> None:
        """Count the call about to be sent. With the Pi's budget used up by another agent since
        check(), nothing is counted and the month stop is raised: the call must not go out."""
        self._roll_over()
        capped = self.scope == "pi" and self.budget
        if self._pi and self._pi.add_call(limit=self.budget if capped else 0, own=self._calls) is None:
            raise self.month_stop(BUDGET_ERROR, self._budget_reason())
        self._calls += 1
        if self._record:
            self._record.save({"month": self._month, "calls": self._calls})
        if self.budget and self._counted() == self.budget:
            log.warning(
                "Gadget calls: the monthly budget of %d (%s) is used up", self.budget, self._scope_words()
            )

    def note_allowance_used(self) -> None:
        self._allowance_used = True

    def check(self) -> None:
        """Raise a stopped DetectionError, lasting until the next month, when no call is allowed."""
        self._roll_over()
        if self._allowance_used:
            reason = "the service says this month's free allowance is used up"
            error_type = FREE_USAGE_ERROR
        elif self.budget and self._counted() >= self.budget:
            reason = self._budget_reason()
            error_type = BUDGET_ERROR
        else:
            return
        raise self.month_stop(error_type, reason)

    def month_stop(self, error_type: str, reason: str) -> DetectionError:
        now = self._clock()
        resume = next_month_start(now)
        day = datetime.fromtimestamp(resume, UTC).date().isoformat()
        message = f"{reason}; inspections resume on {day} (UTC)"
        return DetectionError(error_type, message, resume + ROLLOVER_MARGIN_S - now, True)

    def spread_interval_s(self) -> float:
        """The interval that makes the calls left last until the month ends, printing the configured
        hours a day; 0 when spreading is off."""
        if not (self.budget and self.spread_hours_per_day):
            return 0.0
        now = self._clock()
        left = self.budget - self._counted()
        if left <= 0:
            return 0.0  # check() stops inspections instead
        printing_s = (next_month_start(now) - now) * self.spread_hours_per_day / 24
        return printing_s / left

    def _counted(self) -> int:
        """The calls the budget caps."""
        return self.pi_calls if self.scope == "pi" else self.calls

    def _scope_words(self) -> str:
        return "this Pi's printers together" if self.scope == "pi" else "this printer"

    def _budget_reason(self) -> str:
        made = f"{self._counted()} calls made by {self._scope_words()}"
        return f"{made}, detection.monthly_budget is {self.budget}"

    def _roll_over(self) -> None:
        month = month_of(self._clock())
        if month != self._month:
            if self._calls or self._allowance_used:
                log.info("Gadget calls: %d in %s; a new month begins", self._calls, self._month)
            self._month, self._calls, self._allowance_used = month, 0, False


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
