"""Timestamps taken inside the benchmark process at the two edges of the agent's reaction.

The agent's code is not touched: `httpx.AsyncClient.send` and `serial.Serial.write` are wrapped at
class level for the duration of a `with PauseClock():`, so the clock stops when the Process answer
has been read off the socket and when the pause command's bytes have gone into the serial port.
This is measuring equipment, not a test double: the real methods still do all the work.
"""

from __future__ import annotations

import re
import time
from types import TracebackType
from typing import Any

import httpx
import serial

PAUSE_SUGGESTED = re.compile(rb'"PauseSuggested"\s*:\s*true')


class PauseClock:
    """Records when pause-suggesting Process answers arrived and when `pause_command` was written."""

    def __init__(self, pause_command: bytes = b"M25") -> None:
        self.suggested_at: list[float] = []  # time.monotonic() when send() returned the answer
        self.written_at: list[float] = []  # time.monotonic() when write() returned
        self._command = re.compile(rb"(^|\s)" + re.escape(pause_command) + rb"(\*|\s|$)")
        self._originals: tuple[Any, Any] | None = None

    def __enter__(self) -> PauseClock:
        send, write = httpx.AsyncClient.send, serial.Serial.write
        self._originals = (send, write)
        clock = self

        async def timed_send(client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
            response = await send(client, request, **kwargs)
            arrived = time.monotonic()
            if request.url.path.endswith("/process") and PAUSE_SUGGESTED.search(response.content):
                clock.suggested_at.append(arrived)
            return response

        def timed_write(port: serial.Serial, data: bytes) -> int | None:
            written = write(port, data)
            if clock._command.search(bytes(data)):
                clock.written_at.append(time.monotonic())
            return written

        httpx.AsyncClient.send = timed_send  # type: ignore[method-assign]
        serial.Serial.write = timed_write  # type: ignore[method-assign]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._originals is not None
        httpx.AsyncClient.send, serial.Serial.write = self._originals  # type: ignore[method-assign]

    def reactions(self) -> list[float]:
        """Seconds from each pause command back to the latest suggestion that preceded it."""
        out = []
        for written in self.written_at:
            before = [t for t in self.suggested_at if t <= written]
            if before:
                out.append(written - before[-1])
        return out
