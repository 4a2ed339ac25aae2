"""Draws a report in a short-lived worker process, so matplotlib never lives in the agent.

Importing matplotlib costs ~40 MB and seconds on a Pi; the agent stays small and the worker,
given the database path and a print id, writes the PNG and exits. It has a deadline, and its
output has a size cap, like every other outside call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 4 * 1024 * 1024
FONT_CACHE_DIR = "matplotlib"  # next to the database: built once, not on every report


def worker_command(db_path: Path, print_ref: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "agent.history.render", str(db_path), print_ref, str(out)]


def worker_env(db_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env.setdefault("MPLCONFIGDIR", str(db_path.parent / FONT_CACHE_DIR))
    return env


async def render_in_worker(db_path: Path, print_id: int, timeout_s: float) -> bytes | None:
    """The PNG of one print, or None (logged) when the worker failed or ran out of time."""
    with tempfile.TemporaryDirectory(prefix="layerguard-report-") as tmp:
        out = Path(tmp) / "report.png"
        process = await asyncio.create_subprocess_exec(
            *worker_command(db_path, str(print_id), out),
            env=worker_env(db_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout_s):
                _, stderr = await process.communicate()
        except TimeoutError:
            log.warning(
                "Report of print %d: the worker took longer than %.0f s; skipped", print_id, timeout_s
            )
            return None
        finally:
            if process.returncode is None:  # timed out or cancelled: it must not outlive us
                process.kill()
                await process.wait()
        if process.returncode != 0:
            why = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {process.returncode}"]
            log.warning("Report of print %d failed: %s", print_id, why[0])
            return None
        return await asyncio.to_thread(_read_capped, out)


def _read_capped(path: Path) -> bytes | None:
    with path.open("rb") as file:
        data = file.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        log.warning("Report %s is over %d bytes; not published", path, MAX_REPORT_BYTES)
        return None
    return data
