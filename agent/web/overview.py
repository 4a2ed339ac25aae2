"""The Pi's overview (`/pi`): every printer on this Pi with its state, score and last frame, read
from the summaries their agents write (agent/web/summary.py). Every agent's page serves it, so
there is no extra service and whichever page the user opens has it.

The page polls `/api/pi` (a few hundred bytes per printer) every few seconds rather than holding
an event stream: the summaries come from other processes' files, the states it shows change at
the pace of inspections, and a poll holds none of the page's few stream slots. A thumbnail is
fetched only when its file changed. Bounded: at most `MAX_PRINTERS` summaries of at most
`MAX_SUMMARY_BYTES`, thumbnails of at most `MAX_THUMB_BYTES`.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.settings import INSTANCE_PATTERN, Settings
from agent.web.summary import THUMB_MAX_BYTES, pages_dir

MAX_PRINTERS = 32
MAX_SUMMARY_BYTES = 4096
MAX_THUMB_BYTES = 2 * THUMB_MAX_BYTES  # what an agent of another version might write, at most


def read_summaries(directory: Path) -> list[dict[str, Any]]:
    """The printers of this Pi, by name: each summary as written, plus `online` (its agent runs)
    and `frame` (a version of its thumbnail, None without one). Unreadable summaries are left out."""
    try:
        names = sorted(p for p in directory.glob("*.json") if re.match(INSTANCE_PATTERN, p.stem))
    except OSError:
        return []
    printers = []
    for path in names[:MAX_PRINTERS]:
        summary = _load(path)
        if summary is None:
            continue
        summary["online"] = _running(directory / f"{path.stem}.lock")
        try:
            summary["frame"] = str((directory / f"{path.stem}.jpg").stat().st_mtime_ns)
        except OSError:
            summary["frame"] = None
        printers.append(summary)
    return printers


def read_thumbnail(directory: Path, printer_id: str) -> bytes | None:
    try:
        with open(directory / f"{printer_id}.jpg", "rb") as file:
            data = file.read(MAX_THUMB_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_THUMB_BYTES else None


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SUMMARY_BYTES + 1)
        summary = json.loads(data) if len(data) <= MAX_SUMMARY_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("printer_id") != path.stem:
        return None
    return summary


def _running(lock: Path) -> bool:
    """Whether an agent holds this printer's lock (the kernel drops it when the process ends)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if it was ours
    return False


def add_overview_routes(app: web.Application, settings: Settings) -> None:
    directory = pages_dir(settings.agent.shared_state_dir or settings.agent.state_dir)

    async def printers(request: web.Request) -> web.Response:
        found = await asyncio.to_thread(read_summaries, directory)
        return web.json_response({"this": settings.agent.printer_id, "printers": found})

    async def thumbnail(request: web.Request) -> web.Response:
        jpeg = await asyncio.to_thread(read_thumbnail, directory, request.match_info["id"])
        if jpeg is None:
            raise web.HTTPNotFound(text="No frame from this printer yet.\n")
        return web.Response(body=jpeg, content_type="image/jpeg")

    app.router.add_get("/api/pi", printers)
    app.router.add_get(r"/api/pi/{id:[A-Za-z0-9_-]{1,64}}.jpg", thumbnail)
