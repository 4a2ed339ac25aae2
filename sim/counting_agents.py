"""Stand-ins for the agents of several printers on one Pi that all count Gadget calls at the same
moment: one process each, released together, adding to one shared count (agent.detection.pi_usage).
The tests check that none is lost; bench/pi_count.py times them.

`python -m sim.counting_agents DIR PRINTER CALLS LIMIT` is one such process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from agent.detection.pi_usage import PiUsage

MONTH = "2026-11"
TIMEOUT_S = 300.0


def run_counters(directory: Path, printers: int, calls: int, limit: int = 0) -> tuple[list[int], float]:
    """`printers` processes that count `calls` calls each (up to the Pi's `limit`), released at one
    moment; the calls each one counted, and the seconds from the release to the last one done."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", __name__, str(directory), f"printer-{n}", str(calls), str(limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(printers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline() != "ready\n":
                raise RuntimeError("a counting process did not start")
        started = time.monotonic()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        counted = []
        for process in processes:
            out, _ = process.communicate(timeout=TIMEOUT_S)
            if process.returncode != 0:
                raise RuntimeError(f"a counting process exited {process.returncode}")
            counted.append(int(out))
        return counted, time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _count(directory: Path, printer: str, calls: int, limit: int) -> int:
    usage = PiUsage(directory, printer, lambda: MONTH)
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts counting at once
    return sum(usage.add_call(limit) is not None for _ in range(calls))


if __name__ == "__main__":
    directory, printer, calls, limit = sys.argv[1:5]
    print(_count(Path(directory), printer, int(calls), int(limit)))
