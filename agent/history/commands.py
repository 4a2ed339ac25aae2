"""`layerguard history`, `report` and `label`: the history beside a running agent.

`history` and `report` open the database read-only (WAL lets them read the last commit while
the agent writes). `label` on the print the running agent is guarding goes to the agent as its
MQTT `label` command (so a false alarm resumes LayerGuard's pause and mutes the guard); on an
ended print, or with no agent or broker to take it, it writes the label itself (SQLite waits
for the agent's commit in flight).
Exit codes as everywhere: 0 done, 2 invalid configuration (raised to the CLI), 1 anything else,
such as no history yet or no such print, with one plain line saying so.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from agent.health import check_health
from agent.history.labels import (
    FALSE_ALARM,
    REAL_FAILURE,
    RECENT_DAYS,
    Episode,
    Figures,
    by_print,
    episodes,
    figures,
    parse_label,
    write_label,
)
from agent.history.render import shorten, write_report
from agent.history.store import PrintRow, connect_readonly, db_path, find_print, list_prints
from agent.settings import load_settings

EXIT_OK, EXIT_FAILURE = 0, 1
DAY_S = 86400.0


def history(config: str | None, as_json: bool, limit: int, only_figures: bool = False) -> int:
    settings = load_settings(config)
    path = db_path(settings.agent.state_dir)
    try:
        with connect_readonly(path) as conn:
            prints = list_prints(conn, limit)
            found = episodes(conn)
    except (LookupError, sqlite3.Error) as exc:
        return _fail(f"{exc}" if isinstance(exc, LookupError) else f"{path}: {exc}")
    recent = figures(found, since=time.time() - RECENT_DAYS * DAY_S)
    overall = figures(found)
    alerts = by_print(found)
    if only_figures:
        block = {"printer_id": settings.agent.printer_id, "last_30_days": recent, "all_time": overall}
        text = (
            json.dumps({k: v if isinstance(v, str) else v.as_json() for k, v in block.items()}, indent=2)
            if as_json
            else _figures_text(settings.agent.printer_id, recent, overall)
        )
    elif as_json:
        text = json.dumps([print_json(p, alerts.get(p.id, [])) for p in prints], indent=2)
    elif prints:
        text = _table(prints, alerts) + "\n\n" + _figures_text(settings.agent.printer_id, recent, overall)
    else:
        text = "No prints in the history yet."
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `layerguard history | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def label(config: str | None, print_ref: str, verdict: str) -> int:
    settings = load_settings(config)
    chosen = parse_label(verdict)
    if chosen is None:
        return _fail(f"{verdict!r} is not a label: say real or false-alarm")
    path = db_path(settings.agent.state_dir)
    try:
        with connect_readonly(path) as conn:
            target = find_print(conn, print_ref)
    except (LookupError, sqlite3.Error) as exc:
        return _fail(f"{exc}" if isinstance(exc, LookupError) else f"{path}: {exc}")
    words = chosen.replace("_", " ")
    agent_runs = check_health(settings.agent.state_dir) is None
    if target.ended_at is None and agent_runs and settings.mqtt.enabled:
        from agent.mqtt.send import send_command

        problem = send_command(settings, "label", chosen)
        if problem is None:
            print(f"Print #{target.id}: its last alert labelled {words} by the running agent")
            return EXIT_OK
        print(f"layerguard: {problem}; writing the label to the history instead", file=sys.stderr)
    try:
        episode = write_label(path, target.id, chosen, by="command line")
    except sqlite3.Error as exc:
        return _fail(f"{path}: cannot write the label: {exc}")
    if episode is None:
        return _fail(f"print #{target.id} has no alert to label")
    what = "paused" if episode.paused else "warned"
    print(f"Print #{target.id}: the alert of {_local(episode.started_at)} ({what}) labelled {words}")
    if target.ended_at is None and chosen == FALSE_ALARM:
        stays = "stays paused and its" if episode.paused else "goes on and its"
        print(
            f"The running agent was not reached (MQTT off, or no agent running): the print {stays}"
            " alerts are not muted; use Home Assistant's button or the page for that"
        )
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


def _local(timestamp: float) -> str:
    return f"{datetime.fromtimestamp(timestamp):%Y-%m-%d %H:%M}"


def _figures_text(printer_id: str, recent: Figures, overall: Figures) -> str:
    def line(f: Figures) -> str:
        rate = f.false_alarm_rate
        shown = "-" if rate is None else f"{rate:.0%}"
        return (
            f"alerts {f.alerts}, false alarms {f.false_alarms}, real failures {f.real_failures},"
            f" false-alarm rate {shown} (of the labelled)"
        )

    return f"{printer_id}: last {RECENT_DAYS} days: {line(recent)}\n{printer_id}: all time: {line(overall)}"


def print_json(p: PrintRow, alerts: Sequence[Episode] = ()) -> dict[str, object]:
    """One print as `history --json` and the page show it, with its alert episodes."""
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
        "alerts": [
            {"at": _iso(e.started_at), "paused": e.paused, "score": e.score, "label": e.label} for e in alerts
        ],
    }


def _alerts_cell(alerts: list[Episode]) -> str:
    """`2: false alarm, unlabelled`: each alert episode's label, oldest first."""
    if not alerts:
        return "-"
    words = {FALSE_ALARM: "false alarm", REAL_FAILURE: "real failure"}
    return f"{len(alerts)}: " + ", ".join(words.get(e.label or "", "unlabelled") for e in alerts)


def _table(prints: list[PrintRow], alerts: dict[int, list[Episode]]) -> str:
    header = ("#", "when", "file", "outcome", "peak", "inspections", "calls", "alerts")
    rows = [
        (
            str(p.id),
            f"{datetime.fromtimestamp(p.started_at):%Y-%m-%d %H:%M}",
            shorten(p.file or "-", 32),
            p.outcome,
            "-" if p.peak_score is None else str(p.peak_score),
            str(p.inspections),
            str(p.api_calls),
            _alerts_cell(alerts.get(p.id, [])),
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
