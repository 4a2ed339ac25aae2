"""The history: what a print leaves behind, how it ends, continues after a restart, stays bounded,
and what `layerguard history` / `report` make of it. Synthetic streams with an injected clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli import main
from agent.history.evidence import Evidence
from agent.history.recorder import Recorder
from agent.history.sink import HistorySink
from agent.history.store import EVIDENCE_DIR, HistoryWriter, connect_readonly, db_path, list_prints
from agent.history.worker import render_in_worker
from agent.settings import HistorySection

JPEG = b"\xff\xd8" + bytes(3000) + b"\xff\xd9"
MB = 1024 * 1024
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class World:
    """A recorder over a state directory, fed the way HistorySink feeds it, one commit per call."""

    def __init__(self, state_dir: Path, **bounds: float) -> None:
        self.state_dir = state_dir
        self.now = T0
        self.bounds = {"keep_days": 90, "max_db_mb": 50.0, "max_evidence_mb": 200.0, **bounds}
        self.db: HistoryWriter | None = None
        self.calls = 0
        self.restart()

    def restart(self) -> None:
        if self.db is not None:
            self.db.close()
        path = db_path(self.state_dir)
        self.db = HistoryWriter(path)
        self.db.conn.execute("PRAGMA synchronous = OFF")  # thousands of commits: no fsync each here
        self.evidence = Evidence(
            path.parent / EVIDENCE_DIR, self.db, 3, 2, int(self.bounds["max_evidence_mb"] * MB)
        )
        self.recorder = Recorder(
            self.db,
            self.evidence,
            int(self.bounds["keep_days"]),
            int(self.bounds["max_db_mb"] * MB),
            clock=lambda: self.now,
        )

    def commit(self, *items: tuple[str, object]) -> None:
        assert self.db is not None
        with self.db.transaction():
            for kind, payload in items:
                if kind == "inspection":
                    self.recorder.inspection(JPEG, payload)  # type: ignore[arg-type]
                else:
                    getattr(self.recorder, kind)(payload)
            self.recorder.flush()

    def event(self, kind: str, **fields: object) -> None:
        self.now += 1
        self.commit(("event", {"type": kind, "at": iso(self.now), **fields}))

    def inspect(self, score: int, warning: bool = False, pause: bool = False, step_s: float = 20) -> None:
        self.now += step_s
        self.calls += 1
        inspection = {
            "at": iso(self.now),
            "score": score,
            "print_quality": 10 - score // 10,
            "warning": warning,
            "pause_suggested": pause,
            "progress": 50.0,
        }
        self.commit(("inspection", inspection), ("calls", self.calls))

    def failing_print(self, file: str = "benchy.gcode", calm: int = 10) -> None:
        self.event("print_started", file=file)
        for _ in range(calm):
            self.inspect(3)
        self.inspect(60, warning=True)
        self.event("failure_warning", score=60)
        self.inspect(90, warning=True, pause=True)
        self.event("print_paused", file=file)
        self.event("failure_paused", score=90, file=file)

    def prints(self) -> list[dict[str, object]]:
        with connect_readonly(db_path(self.state_dir)) as conn:
            return [
                {k: getattr(p, k) for k in p.__slots__}  # type: ignore[attr-defined]
                for p in list_prints(conn)
            ]

    def frames(self) -> list[Path]:
        return sorted((db_path(self.state_dir).parent / EVIDENCE_DIR).rglob("*.jpg"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    assert made.db is not None
    made.db.close()


def test_a_paused_print_has_its_outcome_counts_and_evidence_around_the_warning(world: World) -> None:
    world.failing_print(calm=10)
    (p,) = world.prints()
    assert p["outcome"] == "paused_by_agent" and p["ended_at"] is None
    assert (p["peak_score"], p["inspections"], p["warnings"], p["pauses"]) == (90, 12, 1, 1)
    assert p["api_calls"] == 11  # the first call's count is the baseline: calls are counted as they grow
    # 3 calm frames before the warning, the warning's own, the pause's (flagged too).
    assert len(world.frames()) == 5
    for _ in range(3):  # resumed (not recorded here) and calm again
        world.inspect(3)
    assert len(world.frames()) == 7, "frames_after = 2: the third calm frame after is not kept"


def test_an_uneventful_print_keeps_no_frames_and_ends_finished(world: World) -> None:
    world.event("print_started", file="cube.gcode")
    for _ in range(20):
        world.inspect(2)
    world.event("print_finished", file="cube.gcode")
    (p,) = world.prints()
    assert p["outcome"] == "finished" and p["ended_at"] is not None and p["peak_score"] == 2
    assert world.frames() == []


@pytest.mark.parametrize(
    ("after_pause", "outcome"),
    [
        (["print_resumed", "print_finished"], "finished"),
        (["print_cancelled"], "paused_by_agent"),  # the story is LayerGuard's pause, not the cancel
        (["print_resumed", "print_cancelled"], "cancelled"),
        (["printer_error"], "error"),
    ],
)
def test_how_a_paused_print_ends(world: World, after_pause: list[str], outcome: str) -> None:
    world.failing_print()
    for kind in after_pause:
        world.event(kind)
    (p,) = world.prints()
    assert p["outcome"] == outcome and p["ended_at"] is not None
    assert p["resumes"] == after_pause.count("print_resumed")


def test_an_unconfirmed_pause_is_the_outcome(world: World) -> None:
    world.event("print_started", file="a.gcode")
    world.inspect(90, warning=True, pause=True)
    world.event("pause_failed", message="not confirmed", by="agent")
    world.event("print_cancelled")
    assert world.prints()[0]["outcome"] == "pause_failed"


def test_a_restart_mid_print_continues_the_same_print(world: World) -> None:
    world.event("print_started", file="long.gcode")
    for _ in range(5):
        world.inspect(4)
    world.restart()  # the agent stopped (or was killed) and runs again; the printer prints on
    world.event("print_started", file="long.gcode")  # the link finds the print running
    for _ in range(3):
        world.inspect(5)
    world.event("print_finished")
    (p,) = world.prints()
    assert (p["inspections"], p["outcome"]) == (8, "finished")


def test_a_print_left_open_by_a_stopped_agent_is_closed_as_lost_when_another_starts(world: World) -> None:
    world.event("print_started", file="first.gcode")
    world.inspect(4)
    last_seen = world.now
    world.restart()
    world.now += 3600
    world.event("print_started", file="second.gcode")
    second, first = world.prints()
    assert (first["file"], first["outcome"], first["ended_at"]) == ("first.gcode", "lost", last_seen)
    assert (second["file"], second["outcome"]) == ("second.gcode", "running")


def test_a_month_of_prints_stays_within_the_caps(tmp_path: Path) -> None:
    world = World(tmp_path, keep_days=10, max_db_mb=0.5, max_evidence_mb=0.2)
    day = 86400.0
    for n in range(60):  # two prints a day for a month, every fourth one failing
        world.now = T0 + n * day / 2
        if n % 4 == 0:
            world.failing_print(file=f"part{n}.gcode", calm=60)
            world.event("print_cancelled")
        else:
            world.event("print_started", file=f"part{n}.gcode")
            for _ in range(60):
                world.inspect(2)
            world.event("print_finished")
        assert world.db is not None
        assert world.db.db_bytes() <= 0.5 * MB
        assert sum(f.stat().st_size for f in world.frames()) <= 0.2 * MB
    prints = world.prints()
    oldest_end = min(p["ended_at"] for p in prints)  # type: ignore[type-var]
    assert world.now - oldest_end <= 10 * day  # type: ignore[operator]
    assert len(prints) < 60
    assert prints[0]["file"] == "part59.gcode"
    # Freed pages go back to the file system, so the file on the card is bounded too.
    assert db_path(tmp_path).stat().st_size <= 0.6 * MB
    assert world.db is not None
    world.db.close()


# -- the commands -----------------------------------------------------------------------------


def config_for(tmp_path: Path) -> str:
    config = tmp_path / "layerguard.toml"
    config.write_text(f'[agent]\nprinter_id = "sim"\nstate_dir = "{tmp_path}"\n')
    return str(config)


def test_history_lists_prints_newest_first_as_a_table_and_as_json(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.failing_print(file="benchy.gcode")
    world.event("print_cancelled")
    world.event("print_started", file="cube.gcode")
    world.inspect(1)
    config = config_for(tmp_path)
    assert main(["history", "--config", config, "--json", "--limit", "5"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(p["file"], p["outcome"]) for p in listed] == [
        ("cube.gcode", "running"),
        ("benchy.gcode", "paused_by_agent"),
    ]
    assert listed[1]["peak_score"] == 90 and listed[1]["inspections"] == 12
    assert main(["history", "--config", config, "--limit", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["#", "when", "file", "outcome", "peak", "inspections", "calls", "alerts"]
    assert "cube.gcode" in table[1] and "running" in table[1] and table[2] == ""
    assert table[3:] == [
        "sim: last 30 days: alerts 0, false alarms 0, real failures 0, false-alarm rate - (of the labelled)",
        "sim: all time: alerts 1, false alarms 0, real failures 0, false-alarm rate - (of the labelled)",
    ]


def test_report_writes_a_png_and_says_plainly_what_is_missing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path)
    world.failing_print()
    out = tmp_path / "r.png"
    assert main(["report", "--config", config, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", "7", "--config", config, "--out", str(out)]) == 1
    assert "no print 7" in capsys.readouterr().err


def test_commands_without_a_history_or_with_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--config", config_for(tmp_path)]) == 1
    assert "no history yet" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[history]\nkeep_days = 0\n")
    assert main(["history", "--config", str(bad)]) == 2
    assert "history.keep_days" in capsys.readouterr().err


# -- the sink and the worker, when things go wrong ------------------------------------------------


async def test_a_state_dir_that_cannot_hold_a_history_is_reported_and_nothing_else_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    sink = HistorySink(HistorySection(), blocker)
    sink.start(asyncio.get_running_loop())
    sink.on_event({"type": "print_started", "at": iso(T0), "file": "a.gcode"})
    sink.on_inspection(JPEG, {"at": iso(T0 + 20), "score": 5})
    await sink.stop()
    assert "cannot open" in caplog.text and "no history is kept in this run" in caplog.text


async def test_a_report_worker_out_of_time_is_killed_and_one_that_fails_says_why(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.failing_print()
    path = db_path(world.state_dir)
    assert await render_in_worker(path, 1, timeout_s=0.05) is None
    assert "took longer than" in caplog.text
    assert await render_in_worker(path, 99, timeout_s=60) is None
    assert "no print 99" in caplog.text
    png = await render_in_worker(path, 1, timeout_s=60)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
