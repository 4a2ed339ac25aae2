"""The benchmark harness itself runs: `python -m bench` measures and prints its table.

Only the fast figures, in --quick mode: this checks the harness, not LayerGuard's speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _median(table: str, figure: str) -> float:
    row = next(line for line in table.splitlines() if line.startswith(f"| {figure}"))
    return float(row.split("|")[2].split()[0])


def test_bench_measures_upload_and_startup_and_prints_a_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "upload,startup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a safety net for a hung run; a quick one takes seconds, a loaded one more
    )
    assert result.returncode == 0, result.stderr
    # A 1280x720 frame at quality 85 plus the multipart framing: tens of KiB, never more than 6 MiB.
    assert 20 < _median(result.stdout, "upload per inspection") < 6 * 1024
    # A measurement, not a bound (bench/ holds the figures): about 2 s quiet, never 30 s loaded.
    assert 0 < _median(result.stdout, "start-up: → printer connected") < 30
    assert "FAILED" not in result.stdout
