"""The history as a sink of the output stream: queued on the loop, written on one thread.

The loop only puts items on a bounded queue (a stalled SD card costs memory up to the bound, then
drops, never a delayed pause). The writer thread applies everything queued since its last commit
in one transaction, so a burst (an inspection, the state and the events it caused) costs one
fsync. After a commit that a report waits for (LayerGuard paused a print, a print ended), the
picture is drawn by a worker process and handed to the stream as `on_report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.history.evidence import Evidence
from agent.history.recorder import Recorder
from agent.history.store import EVIDENCE_DIR, HistoryWriter, db_path
from agent.history.worker import render_in_worker
from agent.outputs import Sink
from agent.settings import HistorySection

log = logging.getLogger(__name__)

# Inspections come every ~20 s: this many items is minutes of a stalled card, a few MB of frames.
QUEUE_MAX = 200
STOP_TIMEOUT_S = 5.0
MB = 1024 * 1024
_STOP = object()

ReportHandler = Callable[[bytes, str | None], None]


class HistorySink(Sink):
    name = "history"

    def __init__(
        self,
        settings: HistorySection,
        state_dir: Path,
        on_report: ReportHandler | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.db_path = db_path(state_dir)
        self.folder = self.db_path.parent
        self.on_report_ready = on_report
        self.clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_calls: int | None = None
        self._dropped = 0
        self._failing = False
        self._pending_report: int | None = None
        self._render_task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._write_loop, name="history-writer", daemon=True)
        self._thread.start()

    # -- the stream (on the loop: queue and return) -------------------------------------------

    def on_state(self, state: Mapping[str, Any]) -> None:
        calls = state.get("api_calls_month")
        if isinstance(calls, int) and calls != self._last_calls:
            self._last_calls = calls
            self._put(("calls", calls))

    def on_event(self, event: Mapping[str, Any]) -> None:
        self._put(("event", dict(event)))

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        self._put(("inspection", jpeg, dict(inspection)))

    def _put(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if not self._dropped:
                log.warning("History: the writer is %d items behind; dropping new ones", QUEUE_MAX)
            self._dropped += 1
        else:
            if self._dropped:
                log.warning("History: writing again; %d items were dropped", self._dropped)
                self._dropped = 0

    async def flushed(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Wait until everything queued so far is committed (the demo and tests read it then)."""
        done = threading.Event()
        self._put(("barrier", done))
        return await asyncio.to_thread(done.wait, timeout_s)

    async def stop(self) -> None:
        if self._render_task is not None:
            self._render_task.cancel()
            await asyncio.gather(self._render_task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._finish)

    def _finish(self) -> None:
        assert self._thread is not None
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=STOP_TIMEOUT_S)
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("History: the writer did not finish within %.0f s", STOP_TIMEOUT_S)

    # -- the writer thread --------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            db = HistoryWriter(self.db_path)
        except (sqlite3.Error, OSError) as exc:
            log.error("History: cannot open %s: %s; no history is kept in this run", self.db_path, exc)
            self._drain_forever()
            return
        s = self.settings
        evidence = Evidence(
            self.folder / EVIDENCE_DIR, db, s.frames_before, s.frames_after, int(s.max_evidence_mb * MB)
        )
        try:
            recorder = self._recorder(db, evidence)
            while self._commit_next(db, recorder):
                pass
        finally:
            db.close()

    def _recorder(self, db: HistoryWriter, evidence: Evidence) -> Recorder:
        recorder = Recorder(
            db, evidence, self.settings.keep_days, int(self.settings.max_db_mb * MB), self.clock
        )
        with db.transaction():
            recorder.prune()
        evidence.remove_strays(db.print_ids())
        return recorder

    def _commit_next(self, db: HistoryWriter, recorder: Recorder) -> bool:
        batch = [self._queue.get()]
        with contextlib.suppress(queue.Empty):
            while len(batch) < QUEUE_MAX:
                batch.append(self._queue.get_nowait())
        stopping = any(item is _STOP for item in batch)
        barriers = [item[1] for item in batch if item is not _STOP and item[0] == "barrier"]
        try:
            with db.transaction():
                for item in batch:
                    if item is not _STOP and item[0] != "barrier":
                        getattr(recorder, item[0])(*item[1:])
                recorder.flush()
        except (sqlite3.Error, OSError) as exc:
            recorder.resync()
            if not self._failing:
                log.error("History: cannot write %s: %s; retrying with the next items", self.db_path, exc)
            self._failing = True
            return not stopping
        if self._failing:
            log.info("History: writing %s again", self.db_path)
            self._failing = False
        for barrier in barriers:
            barrier.set()
        for print_id in recorder.reports:
            self._to_loop(self._want_report, print_id)
        recorder.reports.clear()
        return not stopping

    def _drain_forever(self) -> None:
        while self._queue.get() is not _STOP:
            pass

    def _to_loop(self, handler: Callable[..., None], *args: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we committed
                self._loop.call_soon_threadsafe(handler, *args)

    # -- reports (on the loop) ----------------------------------------------------------------

    def _want_report(self, print_id: int) -> None:
        """One worker at a time; a request made while one draws replaces any older waiting one."""
        if self.on_report_ready is None:
            return
        self._pending_report = print_id
        if self._render_task is None or self._render_task.done():
            self._render_task = asyncio.get_running_loop().create_task(self._render_pending(), name="report")

    async def _render_pending(self) -> None:
        while self._pending_report is not None:
            print_id, self._pending_report = self._pending_report, None
            png = await render_in_worker(self.db_path, print_id, self.settings.report_timeout_s)
            if png is not None and self.on_report_ready is not None:
                self.on_report_ready(png, str(print_id))
