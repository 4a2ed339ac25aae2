"""The history database: prints, their inspections and events, in SQLite in the state directory.

One writer (the history sink's thread) and any number of read-only readers (`layerguard history`
and `report`, the report worker) at the same time: WAL mode lets readers see the last commit while
the writer goes on.

Durability: `synchronous=FULL`. In WAL mode that is one fsync of the log per commit, and the
writer commits once per inspection (plus the events around it), every ~20 s. At that pace the
fsync adds almost nothing the kernel's own 30-second writeback would not write to the SD card
anyway, and in return a power cut loses at most the commit in flight; `NORMAL` could lose every
commit since the last checkpoint. Either mode leaves the file consistent after a power cut.

Bounded: prints that ended more than `keep_days` ago are deleted, and beyond a size cap the oldest
ended prints go first (`auto_vacuum=INCREMENTAL` gives the freed pages back to the card).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HISTORY_DIR = "history"  # in agent.state_dir
DB_NAME = "history.sqlite3"
EVIDENCE_DIR = "evidence"  # next to the database
SCHEMA_VERSION = 2  # 2: events.label (the user's verdict on an alert episode)
# The log is truncated back to this after a checkpoint, so it never keeps a burst's size.
WAL_LIMIT_BYTES = 4 * 1024 * 1024

OPEN_OUTCOMES = ("running", "paused_by_agent", "pause_failed")  # the print has not ended (yet)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: evidence folders and `report N` name it
    file TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    last_at REAL NOT NULL,                  -- the last thing seen of it (a lost print ends there)
    outcome TEXT NOT NULL DEFAULT 'running',
    peak_score INTEGER,
    inspections INTEGER NOT NULL DEFAULT 0,
    api_calls INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    pauses INTEGER NOT NULL DEFAULT 0,
    resumes INTEGER NOT NULL DEFAULT 0
);
-- Clustered by print: an inspection's insert touches one leaf page (a rowid table and an index
-- on print_id would touch two, plus sqlite_sequence with AUTOINCREMENT): fewer bytes on the card.
CREATE TABLE IF NOT EXISTS inspections (
    print_id INTEGER NOT NULL REFERENCES prints(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,                   -- 1, 2, ... within the print
    at REAL NOT NULL,
    score INTEGER NOT NULL,
    print_quality INTEGER,
    warning INTEGER NOT NULL,
    pause_suggested INTEGER NOT NULL,
    progress REAL,
    frame TEXT,                             -- evidence JPEG, relative to the evidence folder
    frame_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (print_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inspections_with_frame ON inspections(print_id, seq) WHERE frame IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    print_id INTEGER REFERENCES prints(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,                     -- the event's other fields, JSON
    label TEXT                              -- alerts: false_alarm / real_failure, as the user said
);
CREATE INDEX IF NOT EXISTS events_by_print ON events(print_id, at);
"""


def db_path(state_dir: Path) -> Path:
    return state_dir / HISTORY_DIR / DB_NAME


class HistoryMissing(LookupError):
    """There is no history (yet) where the configuration says it is."""


@dataclass(frozen=True, slots=True)
class PrintRow:
    id: int
    file: str | None
    started_at: float
    ended_at: float | None
    last_at: float
    outcome: str
    peak_score: int | None
    inspections: int
    api_calls: int
    warnings: int
    pauses: int
    resumes: int


@dataclass(frozen=True, slots=True)
class InspectionRow:
    seq: int
    at: float
    score: int
    print_quality: int | None
    warning: bool
    pause_suggested: bool
    progress: float | None
    frame: str | None


@dataclass(frozen=True, slots=True)
class EventRow:
    at: float
    type: str
    data: dict[str, Any]
    label: str | None = None  # of an alert: false_alarm / real_failure


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything the report draws of one print."""

    print: PrintRow
    inspections: list[InspectionRow]
    events: list[EventRow]


_PRINT_COLUMNS = ", ".join(PrintRow.__slots__)


class HistoryWriter:
    """The one writing connection. Not thread-safe: it lives on the history sink's thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        c = self.conn
        c.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect before the first table
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        c.execute("PRAGMA busy_timeout = 5000")
        if c.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            with self.transaction():
                _run_script(c, _SCHEMA)
                if not has_labels(c):  # a version 1 database: its events table predates labels
                    c.execute("ALTER TABLE events ADD COLUMN label TEXT")
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # -- prints -------------------------------------------------------------------------------

    def open_print(self, file: str | None, at: float) -> int:
        cur = self.conn.execute(
            "INSERT INTO prints (file, started_at, last_at) VALUES (?, ?, ?)", (file, at, at)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def open_prints(self) -> list[PrintRow]:
        """Prints that never ended: the agent stopped while they ran (or still runs them)."""
        rows = self.conn.execute(
            f"SELECT {_PRINT_COLUMNS} FROM prints WHERE ended_at IS NULL ORDER BY id"
        ).fetchall()
        return [PrintRow(*row) for row in rows]

    def print_ids(self) -> set[int]:
        return {row[0] for row in self.conn.execute("SELECT id FROM prints")}

    def update_print(self, print_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.conn.execute(f"UPDATE prints SET {assignments} WHERE id = ?", (*fields.values(), print_id))

    def get_print(self, print_id: int) -> PrintRow:
        return PrintRow(
            *self.conn.execute(f"SELECT {_PRINT_COLUMNS} FROM prints WHERE id = ?", (print_id,)).fetchone()
        )

    # -- inspections and events ---------------------------------------------------------------

    def add_inspection(self, print_id: int, seq: int, at: float, inspection: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO inspections (print_id, seq, at, score, print_quality, warning, pause_suggested,"
            " progress) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                print_id,
                seq,
                at,
                int(inspection.get("score") or 0),
                inspection.get("print_quality"),
                bool(inspection.get("warning")),
                bool(inspection.get("pause_suggested")),
                inspection.get("progress"),
            ),
        )

    def set_frame(self, print_id: int, seq: int, frame: str | None, size: int = 0) -> None:
        self.conn.execute(
            "UPDATE inspections SET frame = ?, frame_bytes = ? WHERE print_id = ? AND seq = ?",
            (frame, size, print_id, seq),
        )

    def add_event(self, print_id: int | None, at: float, event_type: str, data: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO events (print_id, at, type, data) VALUES (?, ?, ?, ?)",
            (print_id, at, event_type, json.dumps(data, default=str)),
        )

    # -- bounds -------------------------------------------------------------------------------

    def evidence_bytes(self) -> int:
        return self.conn.execute(
            "SELECT COALESCE(SUM(frame_bytes), 0) FROM inspections WHERE frame IS NOT NULL"
        ).fetchone()[0]

    def oldest_frames(self, limit: int) -> list[tuple[int, int, str, int]]:
        return self.conn.execute(
            "SELECT print_id, seq, frame, frame_bytes FROM inspections WHERE frame IS NOT NULL"
            " ORDER BY print_id, seq LIMIT ?",
            (limit,),
        ).fetchall()

    def db_bytes(self) -> int:
        """Bytes the tables and indexes use (free pages not counted: they are reused or vacuumed)."""
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self.conn.execute("PRAGMA page_size").fetchone()[0]

    def expired_prints(self, before: float) -> list[int]:
        rows = self.conn.execute(
            "SELECT id FROM prints WHERE ended_at IS NOT NULL AND ended_at < ? ORDER BY id", (before,)
        ).fetchall()
        return [row[0] for row in rows]

    def oldest_ended_print(self) -> int | None:
        row = self.conn.execute("SELECT MIN(id) FROM prints WHERE ended_at IS NOT NULL").fetchone()
        return row[0]

    def delete_print(self, print_id: int) -> None:
        self.conn.execute("DELETE FROM prints WHERE id = ?", (print_id,))  # cascades

    def delete_loose_events(self, before: float) -> None:
        """Events outside any print (a detection error while idle) age out like prints."""
        self.conn.execute("DELETE FROM events WHERE print_id IS NULL AND at < ?", (before,))

    def give_back_free_pages(self) -> None:
        self.conn.execute("PRAGMA incremental_vacuum")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """executescript() would COMMIT the open transaction first; run statement by statement."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


# -- reading (the CLI, the report worker) ------------------------------------------------------


@contextmanager
def connect_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that never writes, safe beside the running agent.

    Without a write-ahead log the agent is not writing (it removes the log when it closes), and the
    file is opened as immutable: a plain read-only open would leave `-wal` and `-shm` files owned by
    whoever ran the command (root, say), which the agent's own user could then not open."""
    if not path.is_file():
        raise HistoryMissing(f"{path}: no history yet (it is created when the agent first runs)")
    idle = not path.with_name(path.name + "-wal").exists()
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if idle else ''}", uri=True)
    try:
        yield conn
    finally:
        conn.close()  # at once: an open reader keeps the agent from removing its log on exit


def list_prints(conn: sqlite3.Connection, limit: int | None = None) -> list[PrintRow]:
    rows = conn.execute(
        f"SELECT {_PRINT_COLUMNS} FROM prints ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,)
    ).fetchall()
    return [PrintRow(*row) for row in rows]


def find_print(conn: sqlite3.Connection, ref: str) -> PrintRow:
    """`last` or a print's number; LookupError says plainly what is not there."""
    if ref == "last":
        row = conn.execute(f"SELECT {_PRINT_COLUMNS} FROM prints ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise LookupError("no prints in the history yet")
        return PrintRow(*row)
    if not ref.isdigit():
        raise LookupError(f"{ref!r} is not a print number (see `layerguard history`) or 'last'")
    row = conn.execute(f"SELECT {_PRINT_COLUMNS} FROM prints WHERE id = ?", (int(ref),)).fetchone()
    if row is None:
        raise LookupError(f"no print {ref} in the history (it may have aged out; see `layerguard history`)")
    return PrintRow(*row)


def has_labels(conn: sqlite3.Connection) -> bool:
    """Whether the events table has its label column (a database the agent has not yet upgraded,
    read beside an older agent, has none: it reads as unlabelled)."""
    return any(row[1] == "label" for row in conn.execute("PRAGMA table_info(events)"))


def load_timeline(conn: sqlite3.Connection, print_row: PrintRow) -> Timeline:
    inspections = conn.execute(
        "SELECT seq, at, score, print_quality, warning, pause_suggested, progress, frame"
        " FROM inspections WHERE print_id = ? ORDER BY seq",
        (print_row.id,),
    ).fetchall()
    label = "label" if has_labels(conn) else "NULL"
    events = conn.execute(
        f"SELECT at, type, data, {label} FROM events WHERE print_id = ? ORDER BY at, id", (print_row.id,)
    ).fetchall()
    return Timeline(
        print_row,
        [
            InspectionRow(seq, at, score, quality, bool(warn), bool(pause), progress, frame)
            for seq, at, score, quality, warn, pause, progress, frame in inspections
        ],
        [EventRow(at, kind, json.loads(data), label) for at, kind, data, label in events],
    )
