"""Labels on alert episodes: stored from the stream and from `layerguard label`, counted by
`layerguard history`, drawn in the report; an old database gains the column."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_history import World, config_for

from agent.cli import main
from agent.history.labels import episodes, figures
from agent.history.render import _moments
from agent.history.store import HistoryWriter, connect_readonly, db_path, find_print, load_timeline


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def labels_of(world: World) -> list[tuple[int, bool, int | None, str | None]]:
    with connect_readonly(db_path(world.state_dir)) as conn:
        return [(e.print_id, e.paused, e.score, e.label) for e in episodes(conn)]


def test_a_label_from_the_stream_marks_the_last_episode_and_the_report_shows_it(world: World) -> None:
    world.failing_print()  # warning then pause: one episode
    world.event("alert_labelled", label="false_alarm")
    world.event("print_resumed")
    world.inspect(60, warning=True)
    world.event("failure_warning", score=60)  # after the resume: a second episode, unlabelled
    assert labels_of(world) == [(1, True, 90, "false_alarm"), (1, False, 60, None)]
    with connect_readonly(db_path(world.state_dir)) as conn:
        timeline = load_timeline(conn, find_print(conn, "1"))
    shown = [m.label for m in _moments(timeline)]
    assert "paused by LayerGuard: false alarm" in shown and "warning: false alarm" in shown
    assert "warning" in shown  # the second episode's, unlabelled


def test_the_command_line_labels_an_ended_print_and_history_counts(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.failing_print(file="a.gcode")
    world.event("print_cancelled")
    world.failing_print(file="b.gcode")
    world.event("print_cancelled")
    world.event("print_started", file="c.gcode")
    world.event("print_finished")
    config = config_for(tmp_path)
    assert main(["label", "1", "false-alarm", "--config", config]) == 0
    assert "labelled false alarm" in capsys.readouterr().out
    assert main(["label", "last", "real", "--config", config]) == 1  # print 3 never alerted
    assert "print #3 has no alert to label" in capsys.readouterr().err
    assert main(["label", "2", "real", "--config", config]) == 0
    assert main(["label", "2", "maybe", "--config", config]) == 1
    assert "say real or false-alarm" in capsys.readouterr().err
    assert labels_of(world) == [(1, True, 90, "false_alarm"), (2, True, 90, "real_failure")]
    assert main(["history", "--config", config, "--figures", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["all_time"] == {"alerts": 2, "false_alarms": 1, "real_failures": 1, "false_alarm_rate": 0.5}
    assert main(["history", "--config", config, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["label"] for p in listed for a in p["alerts"]] == ["real_failure", "false_alarm"]
    assert main(["history", "--config", config]) == 0
    table = capsys.readouterr().out
    assert "1: false alarm" in table and "1: real failure" in table


def test_figures_count_episodes_in_the_window() -> None:
    from agent.history.labels import Episode

    found = [
        Episode(1, 100.0, (1,), True, 80, "false_alarm"),
        Episode(2, 200.0, (2,), False, 60, None),
        Episode(3, 300.0, (3,), True, 95, "real_failure"),
    ]
    assert figures(found).false_alarm_rate == 0.5
    recent = figures(found, since=150.0)
    assert (recent.alerts, recent.false_alarms, recent.real_failures) == (2, 0, 1)
    assert figures([]).false_alarm_rate is None


def test_a_version_1_database_gains_labels_and_keeps_its_events(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE prints (id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT, started_at REAL NOT NULL,"
        " ended_at REAL, last_at REAL NOT NULL, outcome TEXT NOT NULL DEFAULT 'running', peak_score INTEGER,"
        " inspections INTEGER NOT NULL DEFAULT 0, api_calls INTEGER NOT NULL DEFAULT 0,"
        " warnings INTEGER NOT NULL DEFAULT 0, pauses INTEGER NOT NULL DEFAULT 0,"
        " resumes INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE events (id INTEGER PRIMARY KEY, print_id INTEGER REFERENCES prints(id)"
        " ON DELETE CASCADE, at REAL NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);"
        "INSERT INTO prints (file, started_at, last_at) VALUES ('old.gcode', 1, 1);"
        "INSERT INTO events (print_id, at, type, data) VALUES (1, 2, 'failure_paused', '{\"score\": 77}');"
        "PRAGMA user_version = 1;"
    )
    old.close()
    writer = HistoryWriter(path)
    assert writer.conn.execute("PRAGMA user_version").fetchone()[0] == 2
    writer.close()
    with connect_readonly(path) as conn:
        assert [(e.score, e.label) for e in episodes(conn)] == [(77, None)]
