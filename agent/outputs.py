"""The agent's one output stream and the sinks that consume it (MQTT, notifications, history).

The agent says what happened once, in order, to `Outputs`; each sink takes what it cares about.
Adding an output touches neither the inspection loop nor the other sinks. Every call arrives on
the event loop and must return at once: a sink that does I/O queues the work for itself, so a
slow or dead output never delays a pause. A sink that raises is logged and skipped, never
allowed to break the stream for the others.

The order is part of the contract: an inspection's frame (`on_inspection`) comes before the
state and the events it causes, so a sink that wants "the frame that explains this warning"
keeps the last one it saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)


class Sink:
    """One consumer of the stream; override what you need, the rest does nothing."""

    name = "sink"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called once, on the agent's loop, before anything else arrives."""

    def on_state(self, state: Mapping[str, Any]) -> None:
        """The whole published state (`<p>/state`), each time it changed."""

    def on_event(self, event: Mapping[str, Any]) -> None:
        """One event payload: `type`, `at` (ISO 8601) and the type's fields."""

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        """An inspected frame and its verdict (`at`, `file`, `progress`, `score`, `print_quality`,
        `warning`, `pause_suggested`, `next_inspection`)."""

    def on_report(self, png: bytes, print_id: str | None = None) -> None:
        """A rendered timeline picture of a print (made by the history sink)."""

    async def stop(self) -> None:
        """Flush what is cheap to flush and let go; bounded in time."""


class Outputs(Sink):
    """Fans the stream out to every sink, in the order they were added."""

    name = "outputs"

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def find(self, kind: type[Sink]) -> Sink | None:
        """The first sink of this class, if configured (tests and diagnostics reach in with it)."""
        return next((s for s in self.sinks if isinstance(s, kind)), None)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._each("start", loop)

    def on_state(self, state: Mapping[str, Any]) -> None:
        self._each("on_state", state)

    def on_event(self, event: Mapping[str, Any]) -> None:
        self._each("on_event", event)

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        self._each("on_inspection", jpeg, inspection)

    def on_report(self, png: bytes, print_id: str | None = None) -> None:
        self._each("on_report", png, print_id)

    async def stop(self) -> None:
        results = await asyncio.gather(*(s.stop() for s in self.sinks), return_exceptions=True)
        for sink, result in zip(self.sinks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("output %s failed to stop: %s", sink.name, result)

    def _each(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception:  # one broken output must not silence the others or the agent
                log.exception("output %s failed in %s", sink.name, method)
