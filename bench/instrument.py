"""Timestamps taken inside the benchmark process at the two edges of the agent's reaction.

The agent's code is not touched: `httpx.AsyncClient.send` and `serial.Serial.write` are wrapped at
class level for the duration of a `with PauseClock():`, so the clock stops when the Process answer
has been read off the socket (the client streams answers: the clock reads along) and when the pause
command's bytes have gone into the serial port.
This is measuring equipment, not a test double: the real methods still do all the work.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx
import serial

PAUSE_SUGGESTED = re.compile(rb'"PauseSuggested"\s*:\s*true')


class _ReadAlong(httpx.AsyncByteStream):
    """An answer's stream that notes when its last byte was read, if the answer suggests a pause."""

    def __init__(self, inner: Any, suggested_at: list[float]) -> None:
        self._inner = inner
        self._suggested_at = suggested_at

    async def __aiter__(self) -> AsyncIterator[bytes]:
        body = bytearray()
        async for chunk in self._inner:
            body += chunk
            yield chunk
        if PAUSE_SUGGESTED.search(body):
            self._suggested_at.append(time.monotonic())

    async def aclose(self) -> None:
        await self._inner.aclose()


class PauseClock:
    """Records when pause-suggesting Process answers arrived and when `pause_command` was written."""

    def __init__(self, pause_command: bytes = b"M25") -> None:
        self.suggested_at: list[float] = []  # time.monotonic() when the answer's last byte was read
        self.written_at: list[float] = []  # time.monotonic() when write() returned
        self._command = re.compile(rb"(^|\s)" + re.escape(pause_command) + rb"(\*|\s|$)")
        self._originals: tuple[Any, Any] | None = None

    def __enter__(self) -> PauseClock:
        send, write = httpx.AsyncClient.send, serial.Serial.write
        self._originals = (send, write)
        clock = self

        async def timed_send(client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
            response = await send(client, request, **kwargs)
            if request.url.path.endswith("/process"):
                response.stream = _ReadAlong(response.stream, clock.suggested_at)
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
