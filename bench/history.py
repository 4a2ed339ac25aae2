"""History figures: what the history writes to the SD card per hour of monitoring, and what the
report worker costs (wall time pinned to one core, CPU time, peak memory, PNG size).

The writes are measured in a child process that runs the real `HistorySink` (its writer thread,
SQLite with WAL and synchronous=FULL) through simulated hours of inspections at a 20 s interval,
one commit each as in a real print, as fast as it can: /proc/self/io's `wchar` counts every byte
handed to write(), which is what reaches the card (the file system adds its journal on top).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.history.sink import HistorySink
from agent.history.store import db_path
from agent.history.worker import worker_command, worker_env
from agent.settings import HistorySection
from bench.launch import CAMERA_SIZE
from bench.report import Row, below
from sim.frames import render_frame

INTERVAL_S = 20.0
PER_HOUR = int(3600 / INTERVAL_S)
KIB = 1024


def measure(hours: int, renders: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="layerguard-bench-history-") as tmp:
        calm = _child(Path(tmp) / "calm", hours, failing=False)
        failing = _child(Path(tmp) / "failing", 1, failing=True)
        report_rows = _renders(db_path(Path(tmp) / "failing"), renders)
    per_hour = list(calm["wchar_kib_per_hour"])
    evidence_kib = failing["evidence_kib"]
    return [
        Row(
            "history: writes per hour of monitoring",
            "KiB",
            per_hour,
            note=f"wchar, {PER_HOUR} inspections/h at 20 s, one commit (one fsync) each; "
            f"database + log after {hours} h: {calm['files_kib']:.0f} KiB; "
            f"block-layer count {calm['write_bytes_kib']:.0f} KiB in all",
        ),
        Row(
            "history: evidence frames of one failing print",
            "KiB",
            [evidence_kib],
            note=f"{failing['frames']} frames of {CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} around the warning and "
            "the pause; an uneventful print writes none",
        ),
        *report_rows,
    ]


# -- the writes (in a child process, so that /proc/self/io counts only the history) --------------


def _child(state_dir: Path, hours: int, failing: bool) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.history", str(state_dir), str(hours), "1" if failing else "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout)


def _io() -> dict[str, int]:
    lines = Path("/proc/self/io").read_text().split("\n")
    return {key: int(value) for key, _, value in (line.partition(": ") for line in lines if line)}


async def _simulate(state_dir: Path, hours: int, failing: bool) -> dict[str, object]:
    clean = render_frame(0.3, None, *CAMERA_SIZE)
    spaghetti = render_frame(0.6, 0.4, *CAMERA_SIZE)
    sink = HistorySink(HistorySection(), state_dir)
    sink.start(asyncio.get_running_loop())
    start = time.time() - hours * 3600
    sink.on_event({"type": "print_started", "at": _iso(start), "file": "bench.gcode"})
    await sink.flushed()
    per_hour: list[float] = []
    frames_at_warning = PER_HOUR // 2
    for hour in range(hours):
        before = _io()["wchar"]
        for n in range(PER_HOUR):
            k = hour * PER_HOUR + n
            at = _iso(start + (k + 1) * INTERVAL_S)
            flagged = failing and k >= frames_at_warning
            sink.on_inspection(
                spaghetti if flagged else clean,
                {
                    "at": at,
                    "score": 80 if flagged else 3,
                    "print_quality": 8,
                    "warning": flagged,
                    "pause_suggested": False,
                    "progress": round(100 * k / (hours * PER_HOUR), 1),
                },
            )
            sink.on_state({"api_calls_month": k + 1, "progress": k})
            if flagged and k == frames_at_warning:
                sink.on_event({"type": "failure_warning", "at": at, "score": 80})
            if flagged and k == frames_at_warning + 1:
                sink.on_event({"type": "print_paused", "at": at})
                sink.on_event({"type": "failure_paused", "at": at, "score": 80})
                await sink.flushed()
                break
            await sink.flushed()  # 20 s apart in a real print: one commit per inspection
        per_hour.append((_io()["wchar"] - before) / KIB)
        if failing:
            break
    await sink.stop()
    folder = db_path(state_dir).parent
    files = [p for p in folder.glob("history.sqlite3*")]
    frames = list((folder / "evidence").rglob("*.jpg"))
    return {
        "wchar_kib_per_hour": per_hour,
        "write_bytes_kib": _io()["write_bytes"] / KIB,
        "files_kib": sum(p.stat().st_size for p in files) / KIB,
        "frames": len(frames),
        "evidence_kib": sum(p.stat().st_size for p in frames) / KIB,
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the report worker -------------------------------------------------------------------------


def _renders(db: Path, renders: int) -> list[Row]:
    """The worker as the agent starts it, pinned to one core (a Pi's core is slower still)."""
    core = min(os.sched_getaffinity(0))
    walls, cpus, peaks, sizes = [], [], [], []
    first = 0.0
    for n in range(renders + 1):  # the first builds matplotlib's font cache
        out = db.parent / f"report-{n}.png"
        started = time.monotonic()
        process = subprocess.Popen(
            worker_command(db, "last", out),
            env=worker_env(db),
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        if process.returncode != 0:
            raise RuntimeError(f"report worker exited {process.returncode}")
        if n == 0:
            first = wall
            continue
        walls.append(wall)
        cpus.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss / 1024)
        sizes.append(out.stat().st_size / KIB)
    return [
        Row(
            "report worker: wall time on one core",
            "s",
            walls,
            goal=below(10, "s"),
            note="start, import matplotlib, draw, write the PNG; "
            f"the very first run (font cache) {first:.1f} s; a Pi 4 core is about 3x slower, "
            "the deadline is history.report_timeout_s = 60 s",
        ),
        Row("report worker: CPU time", "s", cpus),
        Row("report worker: peak RSS", "MB", peaks, note="its own process: the agent's RSS does not grow"),
        Row("report PNG", "KiB", sizes, note="1200 px wide, 4 evidence frames"),
    ]


if __name__ == "__main__":
    directory, hours_arg, failing_arg = sys.argv[1:]
    print(json.dumps(asyncio.run(_simulate(Path(directory), int(hours_arg), failing_arg == "1"))))
