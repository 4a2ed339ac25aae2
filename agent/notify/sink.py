"""Notifications as a sink of the agent's output stream: the rules pick, the delivery sends.

Every call returns at once: the decision is a few dict look-ups, the delivery a task of its own
that runs each attempt in a child process, and the record of what was sent is written by a
thread, so neither a dead service nor a slow SD card can delay a pause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.notify.delivery import Delivery
from agent.notify.episodes import EpisodeRules
from agent.notify.message import Message, compose, redact
from agent.notify.services import REPORT, SNAPSHOT
from agent.outputs import Sink
from agent.settings import Settings
from agent.state import iso_now
from agent.store import JsonRecord

log = logging.getLogger(__name__)

RECORD_FILE = "notify-sent.json"  # in agent.state_dir: what was notified, and the last delivery status
STOP_GRACE_S = 2.0  # deliveries under way at shutdown get this long, then are dropped (and logged)
INSPECTION_FIELDS = ("file", "progress", "score")
# The print's timeline picture (from the history sink) goes with these, when there is one.
REPORT_KINDS = ("pause_reminder", "print_finished", "print_cancelled", "print_lost")


class NotifySink(Sink):
    name = "notify"

    def __init__(
        self,
        printer_id: str,
        rules: EpisodeRules,
        delivery: Delivery,
        record: JsonRecord,
        attach_snapshot: bool = True,
        secrets: Iterable[str] = (),
        on_status: Callable[[str], None] = lambda status: None,
    ) -> None:
        self.printer_id = printer_id
        self.rules = rules
        self.delivery = delivery
        self.record = record
        self.attach_snapshot = attach_snapshot
        self.secrets = list(secrets)
        self.on_status = on_status
        delivery.on_status = self._status_changed
        self._state: dict[str, Any] = {}
        self._frame: tuple[bytes, Mapping[str, Any]] | None = None  # this print's last inspection
        self._report: bytes | None = None  # this print's timeline picture
        self._tasks: set[asyncio.Task[None]] = set()
        self._reminder: asyncio.TimerHandle | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-record")
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.on_status(self.delivery.status)
        self._track(loop.create_task(self.delivery.check(), name="notify-check"))

    def on_state(self, state: Mapping[str, Any]) -> None:
        self._state = dict(state)
        self.rules.on_state(state)
        self._plan_reminder()
        self._save_if_changed()

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        self._frame = (jpeg, inspection)

    def on_report(self, png: bytes, print_id: str | None = None) -> None:
        self._report = png

    def on_event(self, event: Mapping[str, Any]) -> None:
        if event.get("type") == "print_started":
            self._frame = self._report = None  # the last print's pictures say nothing about this one
        decision = self.rules.on_event(event, self._state)
        if decision.why:
            log.warning("Notification %s held back: %s", event.get("type"), decision.why)
        if decision.kind:
            self._send(decision.kind, event)
        self._plan_reminder()
        self._save_if_changed()

    async def stop(self) -> None:
        if self._reminder is not None:
            self._reminder.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("Stopping: %d notification(s) still being delivered were dropped", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        self._writer.shutdown(wait=True)  # the record's last write, a few milliseconds

    # -- internals -------------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        """The state, with the facts of the last inspection (newer than the state at event time)."""
        context = dict(self._state)
        if self._frame is not None:
            context.update({k: self._frame[1][k] for k in INSPECTION_FIELDS if k in self._frame[1]})
        return context

    def _send(self, kind: str, event: Mapping[str, Any]) -> None:
        message = redact(compose(kind, event, self._context(), self.printer_id), self.secrets)
        files: dict[str, bytes] = {}
        if self.attach_snapshot and self._frame is not None:
            files[SNAPSHOT] = self._frame[0]
        if kind in REPORT_KINDS and self._report is not None:
            files[REPORT] = self._report
        assert self._loop is not None, "start() comes first"
        self._track(self._loop.create_task(self._deliver(message, files), name=f"notify-{kind}"))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: Message, files: dict[str, bytes]) -> None:
        results = await self.delivery.send(message, files)
        delivered = [label for label, ok in results if ok]
        if delivered:
            log.info("Notified %s: %s", message.kind, ", ".join(delivered))

    def _plan_reminder(self) -> None:
        due = self.rules.reminder_at()
        if due is None or self._reminder is not None or self._loop is None:
            return
        delay = max(0.0, due - self.rules.clock())
        self._reminder = self._loop.call_later(delay, self._remind)

    def _remind(self) -> None:
        self._reminder = None
        paused_for_s = self.rules.paused_for_s()
        decision = self.rules.on_reminder(self._state)
        if decision.kind:
            self._send(decision.kind, {"type": decision.kind, "paused_for_s": paused_for_s})
        self._save_if_changed()

    def _status_changed(self, status: str) -> None:
        self.on_status(status)
        self._save()

    def _save_if_changed(self) -> None:
        if self.rules.changed:
            self._save()

    def _save(self) -> None:
        """What was sent, and the delivery status (`layerguard doctor` shows it)."""
        if self._loop is None:
            return
        self.rules.changed = False
        snapshot = {**self.rules.record, "status": self.delivery.status, "status_at": iso_now()}
        self._loop.run_in_executor(self._writer, self.record.save, snapshot)


def notify_sink(settings: Settings, secrets: Iterable[str], on_status: Callable[[str], None]) -> NotifySink:
    """The sink for `layerguard run`. An invalid URL does not stop the agent guarding the print:
    it is logged, shown in the state as `error: <label>`, and the other services still notify."""
    notify = settings.notify
    record = JsonRecord(settings.agent.state_dir / RECORD_FILE)
    delivery = Delivery([url.get_secret_value() for url in notify.urls])
    rules = EpisodeRules(notify.events, notify.reminder_after_s, record.load())
    printer_id = settings.agent.printer_id
    return NotifySink(printer_id, rules, delivery, record, notify.attach_snapshot, secrets, on_status)
