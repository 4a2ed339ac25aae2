"""This printer's line on the Pi's overview: a small summary that every agent of the Pi writes
beside the others', so whichever printer's page the user opens lists them all (agent/web/overview.py).

`<agent.shared_state_dir>/pages/<printer_id>.json` holds the state the overview shows and
`<printer_id>.jpg` a thumbnail of the last inspected frame (at most `THUMB_MAX_BYTES`), each
replaced atomically, at most once per `MIN_GAP_S`: a few hundred bytes per state change and one
small JPEG per inspection. The agent holds an exclusive `flock` on `<printer_id>.lock` while it
runs; the kernel lets go of it when the process ends however it ends, so a reader knows "offline"
without heartbeats (no clock, no writes to the SD card while nothing changes).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.outputs import Sink
from agent.settings import Settings
from agent.store import replace_file
from agent.web.address import page_url
from agent.web.thumbnail import reduced
from hardware.quiet_log import LastingCondition

log = logging.getLogger(__name__)

PAGES_DIR = "pages"
MIN_GAP_S = 5.0
THUMB_WIDTH = 320
THUMB_MAX_BYTES = 20_000
MAX_TEXT = 200
SHOWN = (
    "print_state",
    "file",
    "progress",
    "monitoring",
    "score",
    "warning",
    "pause_suggested",
    "last_inspection",
)


class ServedPage(Protocol):
    """What the card needs of the page (agent.web.server.WebPage): whether it serves, and where."""

    ready: asyncio.Event
    port: int | None


class PiSummary(Sink):
    """The sink that keeps this printer's summary, with the address of its page once it serves."""

    name = "pi-summary"

    def __init__(self, settings: Settings, page: ServedPage) -> None:
        self.settings = settings
        self.directory = pages_dir(settings.agent.shared_state_dir or settings.agent.state_dir)
        self.printer_id = settings.agent.printer_id
        self.page = page
        self._state: dict[str, Any] = {}
        self._jpeg: bytes | None = None
        self._changed = asyncio.Event()
        self._lock_fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._trouble = LastingCondition(log, f"The Pi's overview ({self.directory})")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._hold_lock():  # a few calls on a local file, none of them waits
            self._task = loop.create_task(self._run(), name="pi-summary")

    def on_state(self, state: Mapping[str, Any]) -> None:
        self._state = {key: _short(state.get(key)) for key in SHOWN}
        self._changed.set()

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        self._jpeg = jpeg
        self._changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the overview now says offline
            self._lock_fd = None

    async def _run(self) -> None:
        await self.page.ready.wait()  # its port is known (or it failed: no link then)
        while True:
            await self._changed.wait()
            self._changed.clear()
            jpeg, self._jpeg = self._jpeg, None
            record = {
                "printer_id": self.printer_id,
                "page": self._where(),
                "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                **self._state,
            }
            await asyncio.to_thread(self._write, record, jpeg)
            await asyncio.sleep(MIN_GAP_S)

    def _where(self) -> dict[str, Any] | None:
        """How the overview links here: `url` as this page names itself; `any_host` when it
        listens on every address, so the overview may use the address the user typed instead."""
        if self.page.port is None:
            return None
        host, _ = self.settings.web.address
        return {
            "url": page_url(self.settings, self.page.port),
            "port": self.page.port,
            "any_host": host in ("0.0.0.0", "::", ""),
        }

    def _hold_lock(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / f"{self.printer_id}.lock", os.O_RDWR | os.O_CREAT, 0o660)
        except OSError as exc:
            self._trouble.failed(f"{exc.strerror or exc}; this printer is left out of it")
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            log.error(
                "Another agent on this Pi runs as printer %r: agent.printer_id must differ per "
                "printer; this one is left out of the Pi's overview",
                self.printer_id,
            )
            return False
        self._lock_fd = fd
        return True

    def _write(self, record: dict[str, Any], jpeg: bytes | None) -> None:
        """The thumbnail first: a reader that finds the new state finds its frame too. A frame
        PIL cannot read (an OSError too) leaves the old thumbnail and still writes the state."""
        files = [(".json", lambda: json.dumps(record).encode())]
        if jpeg is not None:
            files.insert(0, (".jpg", lambda: reduced(jpeg, THUMB_WIDTH, 60, THUMB_MAX_BYTES)))
        failed = ""
        for suffix, content in files:
            try:
                replace_file(self.directory / f"{self.printer_id}{suffix}", content())
            except OSError as exc:
                failed = f"{self.printer_id}{suffix}: {exc.strerror or exc}"
        if failed:
            self._trouble.failed(f"{failed}; this printer's card there is not current")
        else:
            self._trouble.recovered()


def _short(value: Any) -> Any:
    """A file name can be long: the card stays a few hundred bytes (the reader takes 4 KB)."""
    return value[:MAX_TEXT] if isinstance(value, str) else value


def pages_dir(shared_state_dir: Path) -> Path:
    return shared_state_dir / PAGES_DIR
