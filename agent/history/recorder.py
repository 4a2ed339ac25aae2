"""Turns the agent's output stream into history rows: which print an inspection or event belongs
to, how a print ended, and when the history is trimmed. Synchronous, on the writer's thread.

A print's outcome while it runs is `running`, or `paused_by_agent` / `pause_failed` once
LayerGuard paused it (or tried to). How it ends decides the rest: `finished`, `cancelled`, `lost`
or `error`, except that a print LayerGuard paused and that was then cancelled (or lost) keeps
`paused_by_agent` (or `pause_failed`): that is the story the user wants to find.

A print still open from an earlier run of the agent is continued when the printer reports the
same file running again (the same rule that continues its Gadget context); any other print it
left open ended unseen, and is closed as `lost` at the last moment it was seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.history.evidence import Evidence
from agent.history.labels import label_last_episode
from agent.history.store import HistoryWriter, PrintRow

log = logging.getLogger(__name__)

DAY_S = 86400.0
# As agent.detection.timing's context_max_age_s: beyond it a print is not continued anyway.
CONTINUE_WITHIN_S = 14 * DAY_S
ENDINGS = {
    "print_finished": "finished",
    "print_cancelled": "cancelled",
    "print_lost": "lost",
    "printer_error": "error",
}
HELD_OUTCOMES = ("paused_by_agent", "pause_failed")  # survive a cancel or a loss


@dataclass
class _Open:
    """The print being recorded, mirrored in memory and written once per commit."""

    row: PrintRow
    changes: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.changes.get(name, getattr(self.row, name))

    def set(self, **values: Any) -> None:
        self.changes.update(values)

    def add(self, name: str, n: int = 1) -> None:
        self.set(**{name: self.get(name) + n})


class Recorder:
    def __init__(
        self,
        db: HistoryWriter,
        evidence: Evidence,
        keep_days: int,
        max_db_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.evidence = evidence
        self.keep_days = keep_days
        self.max_db_bytes = max_db_bytes
        self.clock = clock
        self.reports: list[int] = []  # prints whose picture is due once this commit is in
        self._open: _Open | None = None
        self._left_open = db.open_prints()  # by an earlier run: continued or closed at the next start
        self._calls: int | None = None

    # -- the stream ---------------------------------------------------------------------------

    def calls(self, api_calls_month: int) -> None:
        """The month's Gadget call count; what it grows by during a print is that print's."""
        if self._calls is not None and self._open is not None:
            grown = api_calls_month - self._calls
            self._open.add("api_calls", grown if grown >= 0 else api_calls_month)  # a new month began
        self._calls = api_calls_month

    def inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        current = self._open
        if current is None:  # no print seen starting: nothing to file it under
            return
        at = _when(inspection, self.clock)
        current.add("inspections")
        seq = current.get("inspections")
        self.db.add_inspection(current.row.id, seq, at, dict(inspection))
        score = int(inspection.get("score") or 0)
        peak = current.get("peak_score")
        current.set(last_at=at, peak_score=score if peak is None else max(peak, score))
        flagged = bool(inspection.get("warning") or inspection.get("pause_suggested"))
        self.evidence.inspected(current.row.id, seq, jpeg, flagged)

    def event(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type"))
        at = _when(event, self.clock)
        if kind == "print_started":
            self._started(event.get("file"), at)
        if kind == "alert_labelled":
            self._label(str(event.get("label")))
        current = self._open
        data = {k: v for k, v in event.items() if k not in ("type", "at")}
        self.db.add_event(current.row.id if current else None, at, kind, data)
        if current is None:
            return
        current.set(last_at=max(at, current.get("last_at")))
        if kind == "failure_warning":
            current.add("warnings")
        elif kind == "print_paused":
            current.add("pauses")
        elif kind == "print_resumed":
            current.add("resumes")
            if current.get("outcome") == "paused_by_agent":
                current.set(outcome="running")
        elif kind == "failure_paused":
            current.set(outcome="paused_by_agent")
            self.reports.append(current.row.id)
        elif kind == "pause_failed" and not event.get("resume"):
            current.set(outcome="pause_failed")
            self.reports.append(current.row.id)
        elif kind in ENDINGS:
            self._end(current, ENDINGS[kind], at)

    def flush(self) -> None:
        """Write the open print's changed counters (once per commit, not once per item)."""
        if self._open is not None and self._open.changes:
            self.db.update_print(self._open.row.id, **self._open.changes)
            self._open.row = self.db.get_print(self._open.row.id)
            self._open.changes.clear()

    def resync(self) -> None:
        """A commit failed (full or failing card): what memory holds may not be in the file.
        Carry on with the newest print the file has open, as it is there."""
        self.reports.clear()
        self.evidence.new_print()
        left_open = self.db.open_prints()
        self._open = _Open(left_open[-1]) if left_open else None

    def _label(self, label: str) -> None:
        """The user's verdict on the last alert: of the open print, else of the newest one."""
        self.flush()
        episode = label_last_episode(self.db.conn, self._open.row.id if self._open else None, label)
        if episode is None:
            log.info("History: a %s label with no alert to put it on", label)
        else:
            self.reports.append(episode.print_id)  # the picture marks the labelled episode

    # -- prints -------------------------------------------------------------------------------

    def _started(self, file: str | None, at: float) -> None:
        if self._open is not None:  # the tracker began a new print without ending this one
            self._end(self._open, "lost", self._open.get("last_at"))
        continued = next(
            (p for p in self._left_open if p.file == file and 0 <= at - p.started_at < CONTINUE_WITHIN_S),
            None,
        )
        self._left_open = [p for p in self._left_open if p is not continued]
        self._close_left_open()
        self.evidence.new_print()
        if continued is not None:
            log.info("History: print %d (%s) continues after the restart", continued.id, file)
            self._open = _Open(continued)
            if continued.outcome == "paused_by_agent":
                self._open.set(outcome="running")  # found printing: someone resumed it meanwhile
        else:
            self._open = _Open(self.db.get_print(self.db.open_print(file, at)))

    def _close_left_open(self) -> None:
        for row in self._left_open:
            self._end(_Open(row), "lost", row.last_at)
        self._left_open = []

    def _end(self, current: _Open, outcome: str, at: float) -> None:
        held = current.get("outcome")
        if outcome in ("cancelled", "lost") and held in HELD_OUTCOMES:
            outcome = held
        current.set(outcome=outcome, ended_at=at, last_at=max(at, current.get("last_at")))
        self.db.update_print(current.row.id, **current.changes)
        current.changes.clear()
        if current is self._open:
            self._open = None
            self.evidence.new_print()
            self.reports.append(current.row.id)
            self.prune()

    # -- bounds -------------------------------------------------------------------------------

    def prune(self) -> None:
        """Keep `keep_days` and the size caps; the open print is never touched."""
        cutoff = self.clock() - self.keep_days * DAY_S
        for print_id in self.db.expired_prints(cutoff):
            self._delete(print_id)
        self.db.delete_loose_events(cutoff)
        while self.db.db_bytes() > self.max_db_bytes:
            oldest = self.db.oldest_ended_print()
            if oldest is None:
                break
            self._delete(oldest)
        self.evidence.prune()
        self.db.give_back_free_pages()

    def _delete(self, print_id: int) -> None:
        self.db.delete_print(print_id)
        self.evidence.forget_print(print_id)


def _when(payload: Mapping[str, Any], clock: Callable[[], float]) -> float:
    at = payload.get("at")
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at).timestamp()
        except ValueError:
            pass
    return clock()
