"""The page's view of the output stream: a sink that keeps what a newly opened page needs (state,
the current print's score series, recent events, the last frame) and pushes every change to the
open pages (Server-Sent Events). Bounded: a page that does not keep up is cut off, never queued for.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from agent.outputs import Sink

SERIES_POINTS = 4000  # a 40-hour print inspected every 36 s
RECENT_EVENTS = 50
CLIENT_QUEUE = 64  # messages waiting for one page before it is cut off
MAX_CLIENTS = 8  # open pages (each is one long-lived connection)
MARKED = frozenset({"failure_warning", "failure_paused", "pause_failed", "print_paused", "print_resumed"})


class TooManyClients(Exception):
    pass


class PageStream(Sink):
    name = "web"

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.series: deque[dict[str, Any]] = deque(maxlen=SERIES_POINTS)
        self.marks: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self.events: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self.frame: bytes | None = None
        self.frame_seq = 0
        self._clients: set[asyncio.Queue[str | None]] = set()

    # -- the sink --------------------------------------------------------------------------------

    def on_state(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self._push("state", self.state)

    def on_event(self, event: Mapping[str, Any]) -> None:
        event = dict(event)
        if event.get("type") == "print_started":
            self.series.clear()
            self.marks.clear()
        self.events.append(event)
        if event.get("type") in MARKED:
            self.marks.append(event)
        self._push("event", event)

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        self.frame = jpeg
        self.frame_seq += 1
        point = {
            "at": inspection.get("at"),
            "score": inspection.get("score"),
            "warning": inspection.get("warning"),
            "pause_suggested": inspection.get("pause_suggested"),
            "frame": self.frame_seq,
        }
        self.series.append(point)
        self._push("inspection", point)

    async def stop(self) -> None:
        for queue in list(self._clients):
            self._close(queue)

    # -- the pages -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What a page that just opened draws."""
        return {
            "state": self.state,
            "series": list(self.series),
            "marks": list(self.marks),
            "events": list(self.events)[-10:],
            "frame": self.frame_seq if self.frame else None,
        }

    def subscribe(self) -> asyncio.Queue[str | None]:
        if len(self._clients) >= MAX_CLIENTS:
            raise TooManyClients(f"{MAX_CLIENTS} pages are open already")
        queue: asyncio.Queue[str | None] = asyncio.Queue(CLIENT_QUEUE)
        queue.put_nowait(_sse("hello", self.snapshot()))
        self._clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._clients.discard(queue)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def _push(self, kind: str, data: Any) -> None:
        message = _sse(kind, data)
        for queue in list(self._clients):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow: cut off (it reconnects and starts afresh)
                self._close(queue)

    def _close(self, queue: asyncio.Queue[str | None]) -> None:
        self._clients.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
