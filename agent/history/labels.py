"""Alert episodes and the user's labels on them: "false alarm" or "real failure".

An alert episode is a print's run of alerts (failure_warning, failure_paused) up to the next
resume: the warning and the pause that follows it are one episode, one label. The label is kept
on the episode's alert events (`events.label`). Labelled by the running agent's history writer
(a label command from MQTT or the page arrives as an `alert_labelled` event) or, for a print
no agent is guarding, written straight into the history (`write_label`: `layerguard label`, and
the page's history).

The figures per printer (one history per agent, so per printer): alert episodes, labelled false
alarms and real failures, and the false-alarm rate (false alarms of the labelled episodes) over
the last 30 days and all the history keeps.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.history.store import has_labels

FALSE_ALARM, REAL_FAILURE = "false_alarm", "real_failure"
LABELS = (FALSE_ALARM, REAL_FAILURE)
ALERT_EVENTS = ("failure_warning", "failure_paused")
RECENT_DAYS = 30
_WORDS = {
    "false_alarm": FALSE_ALARM,
    "false-alarm": FALSE_ALARM,
    "false": FALSE_ALARM,
    "real_failure": REAL_FAILURE,
    "real-failure": REAL_FAILURE,
    "real": REAL_FAILURE,
}


def parse_label(text: str) -> str | None:
    """`false_alarm` or `real_failure` from what a user may type (`false-alarm`, `real`)."""
    return _WORDS.get(text.strip().lower())


@dataclass(frozen=True, slots=True)
class Episode:
    print_id: int
    started_at: float
    event_ids: tuple[int, ...]
    paused: bool  # LayerGuard paused the print in it (else it only warned)
    score: int | None  # the highest score its alerts reported
    label: str | None


def episodes(conn: sqlite3.Connection, print_id: int | None = None) -> list[Episode]:
    """The alert episodes of one print, or of the whole history, oldest first."""
    label = "label" if has_labels(conn) else "NULL"
    where = "WHERE print_id = ?" if print_id is not None else "WHERE print_id IS NOT NULL"
    rows = conn.execute(
        f"SELECT id, print_id, at, type, json_extract(data, '$.score'), {label} FROM events {where}"
        f" AND type IN ('print_resumed', 'print_started', {', '.join('?' * len(ALERT_EVENTS))})"
        " ORDER BY print_id, at, id",
        (*(() if print_id is None else (print_id,)), *ALERT_EVENTS),
    ).fetchall()
    found: list[Episode] = []
    current: dict[str, Any] | None = None
    for event_id, pid, at, kind, score, row_label in rows:
        if current is not None and (kind not in ALERT_EVENTS or pid != current["print_id"]):
            found.append(Episode(**current))
            current = None
        if kind not in ALERT_EVENTS:
            continue
        if current is None:
            current = {"print_id": pid, "started_at": at, "event_ids": (), "paused": False}
            current |= {"score": None, "label": None}
        current["event_ids"] += (event_id,)
        current["paused"] |= kind == "failure_paused"
        if isinstance(score, int | float):
            current["score"] = max(current["score"] or 0, int(score))
        current["label"] = row_label or current["label"]
    if current is not None:
        found.append(Episode(**current))
    return found


def by_print(found: list[Episode]) -> dict[int, list[Episode]]:
    """Episodes grouped by print, each print's oldest first."""
    alerts: dict[int, list[Episode]] = {}
    for episode in found:
        alerts.setdefault(episode.print_id, []).append(episode)
    return alerts


def label_last_episode(conn: sqlite3.Connection, print_id: int | None, label: str) -> Episode | None:
    """Label the last alert episode of `print_id` (None: the newest print that has one); returns
    it, or None when there is no alert to label. The caller commits."""
    if print_id is None:
        row = conn.execute(
            f"SELECT print_id FROM events WHERE type IN ({', '.join('?' * len(ALERT_EVENTS))})"
            " AND print_id IS NOT NULL ORDER BY at DESC, id DESC LIMIT 1",
            ALERT_EVENTS,
        ).fetchone()
        if row is None:
            return None
        print_id = row[0]
    found = episodes(conn, print_id)
    if not found:
        return None
    last = found[-1]
    conn.execute(
        f"UPDATE events SET label = ? WHERE id IN ({', '.join('?' * len(last.event_ids))})",
        (label, *last.event_ids),
    )
    return Episode(last.print_id, last.started_at, last.event_ids, last.paused, last.score, label)


def write_label(path: Path, print_id: int, label: str, by: str) -> Episode | None:
    """Label the last alert episode of a print no running agent is guarding, in the history
    database at `path` (beside the agent's writer: SQLite waits for its commit in flight), with an
    `alert_labelled` event saying `by` whom; None when the print has no alert to label."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        if not has_labels(conn):  # not yet upgraded by the agent: the column it would add
            conn.execute("ALTER TABLE events ADD COLUMN label TEXT")
        episode = label_last_episode(conn, print_id, label)
        if episode is not None:
            data = json.dumps({"label": label, "by": by})
            conn.execute(
                "INSERT INTO events (print_id, at, type, data) VALUES (?, ?, 'alert_labelled', ?)",
                (print_id, time.time(), data),
            )
        conn.execute("COMMIT")
        return episode
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Figures:
    alerts: int
    false_alarms: int
    real_failures: int

    @property
    def false_alarm_rate(self) -> float | None:
        """False alarms of the labelled episodes; None when none is labelled."""
        labelled = self.false_alarms + self.real_failures
        return None if not labelled else self.false_alarms / labelled

    def as_json(self) -> dict[str, Any]:
        rate = self.false_alarm_rate
        return {
            "alerts": self.alerts,
            "false_alarms": self.false_alarms,
            "real_failures": self.real_failures,
            "false_alarm_rate": None if rate is None else round(rate, 3),
        }


def figures(found: list[Episode], since: float | None = None) -> Figures:
    chosen = [e for e in found if since is None or e.started_at >= since]
    return Figures(
        len(chosen),
        sum(e.label == FALSE_ALARM for e in chosen),
        sum(e.label == REAL_FAILURE for e in chosen),
    )
