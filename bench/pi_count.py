"""The Pi's shared monthly call count under concurrency: N processes, as N printers' agents,
each adding calls to one gadget-usage-pi.json at the same moment. Every call must be counted
(no lost update); the rate says what the lock and the durable write cost per call.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agent.detection.pi_usage import PI_USAGE_FILE
from agent.store import JsonRecord
from bench.fleet import NONE_MISSED
from bench.report import Row
from sim.counting_agents import run_counters


def measure(sizes: tuple[int, ...], calls: int) -> list[Row]:
    rows = []
    for printers in sizes:
        with tempfile.TemporaryDirectory(prefix="layerguard-bench-") as tmp:
            counted, elapsed = run_counters(Path(tmp), printers, calls)
            total = (JsonRecord(Path(tmp) / PI_USAGE_FILE).load() or {}).get("calls", 0)
        rows += [
            Row(
                f"Pi count, {printers} agent{'s' if printers > 1 else ''} at once: calls/s",
                "calls/s",
                [sum(counted) / elapsed],
                note=f"{calls} calls each, flock + atomic replace with fsync per call",
                digits=0,
            ),
            Row(
                f"Pi count, {printers} agent{'s' if printers > 1 else ''} at once: lost updates",
                "",
                [float(printers * calls - total)],
                NONE_MISSED,
                f"{total} counted of {printers * calls}",
                digits=0,
            ),
        ]
    return rows
