"""`layerguard history` and `layerguard report`: read the history beside a running agent.

Both open the database read-only (WAL lets them read the last commit while the agent writes).
Exit codes as everywhere: 0 done, 2 invalid configuration (raised to the CLI), 1 anything else,
such as no history yet or no such print, with one plain line saying so.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

from agent.history.render import shorten, write_report
from agent.history.store import PrintRow, connect_readonly, db_path, list_prints
from agent.settings import load_settings

EXIT_OK, EXIT_FAILURE = 0, 1


def history(config: str | None, as_json: bool, limit: int) -> int:
    path = db_path(load_settings(config).agent.state_dir)
    try:
        with connect_readonly(path) as conn:
            prints = list_prints(conn, limit)
    except (LookupError, sqlite3.Error) as exc:
        return _fail(f"{exc}" if isinstance(exc, LookupError) else f"{path}: {exc}")
    text = json.dumps([print_json(p) for p in prints], indent=2) if as_json else _table(prints)
    try:
        print(text if prints or as_json else "No prints in the history yet.", flush=True)
    except BrokenPipeError:  # `layerguard history | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def report(config: str | None, print_ref: str, out: Path) -> int:
    path = db_path(load_settings(config).agent.state_dir)
    try:
        number = write_report(path, print_ref, out)
    except LookupError as exc:
        return _fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        return _fail(f"cannot write the report: {exc}")
    print(f"Report of print #{number} written to {out}")
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"layerguard: {message}", file=sys.stderr)
    return EXIT_FAILURE


def _iso(timestamp: float | None) -> str | None:
    return (
        None
        if timestamp is None
        else datetime.fromtimestamp(timestamp).astimezone().isoformat("T", "seconds")
    )


def print_json(p: PrintRow) -> dict[str, object]:
    """One print as `history --json` and the page show it."""
    return {
        "id": p.id,
        "file": p.file,
        "started_at": _iso(p.started_at),
        "ended_at": _iso(p.ended_at),
        "outcome": p.outcome,
        "peak_score": p.peak_score,
        "inspections": p.inspections,
        "api_calls": p.api_calls,
        "warnings": p.warnings,
        "pauses": p.pauses,
        "resumes": p.resumes,
    }


def _table(prints: list[PrintRow]) -> str:
    header = ("#", "when", "file", "outcome", "peak", "inspections", "calls")
    rows = [
        (
            str(p.id),
            f"{datetime.fromtimestamp(p.started_at):%Y-%m-%d %H:%M}",
            shorten(p.file or "-", 32),
            p.outcome,
            "-" if p.peak_score is None else str(p.peak_score),
            str(p.inspections),
            str(p.api_calls),
        )
        for p in prints
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {0, 4, 5, 6}
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    )
