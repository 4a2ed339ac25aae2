"""A process's memory and CPU time straight from /proc: no psutil needed on a Pi or here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Sample:
    cpu_s: float  # time on a CPU so far, all live threads
    rss_mb: float  # resident now (VmRSS)
    peak_rss_mb: float  # the high-water mark (VmHWM)


def sample(pid: int) -> Sample:
    """One reading of `pid`; the process must be alive (ProcessLookupError otherwise)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cpu_ns = sum(_run_time_ns(task) for task in Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    kib = {
        key: int(value.split()[0])
        for key, _, value in (line.partition(":") for line in status.splitlines())
        if key in ("VmRSS", "VmHWM")
    }
    return Sample(cpu_ns / 1e9, kib["VmRSS"] / 1024, kib["VmHWM"] / 1024)


def _run_time_ns(task: Path) -> int:
    """A thread's time on a CPU in nanoseconds (schedstat), 0 if it just ended.

    /proc/<pid>/stat's utime + stime count in 10 ms ticks, too coarse for an agent that needs a
    few milliseconds per inspection; schedstat is exact but per live thread, so a window must
    not span threads that end (the agent's threads live as long as it does).
    """
    try:
        return int((task / "schedstat").read_text().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return 0


def cpu_percent(before: Sample, after: Sample, seconds: float) -> float:
    """Share of one core used between two samples taken `seconds` apart."""
    return 100 * (after.cpu_s - before.cpu_s) / seconds


@dataclass(frozen=True, slots=True)
class Window:
    cpu_percent: float  # of one core, over the window
    rss_mb: float  # at its end
    peak_rss_mb: float


def watch(pid: int, seconds: float) -> Window:
    """CPU share and memory of `pid` over the next `seconds` (a measuring window, not a settling wait)."""
    before, started = sample(pid), time.monotonic()
    time.sleep(seconds)
    after = sample(pid)
    return Window(cpu_percent(before, after, time.monotonic() - started), after.rss_mb, after.peak_rss_mb)
