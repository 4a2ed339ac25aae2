"""The page's TCP listener, bounded: at most `MAX_CONNECTIONS` open at once, and a connection that
has not finished sending a request's headers within `HEADERS_DEADLINE_S` of opening is cut off (a
slow or idle client holds nothing for long). Idle keep-alive connections close after
`KEEPALIVE_S`. aiohttp's own parser caps the header lines and fields.

aiohttp (~9 MB: its package loads its client too) is loaded when the first connection arrives,
not at start: an agent whose page nobody opened does not carry it. That connection's bytes wait
(capped) until it is loaded, then go to aiohttp as if they had just arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hardware.quiet_log import BurstLog

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
HEADERS_DEADLINE_S = 10.0
KEEPALIVE_S = 15.0
EARLY_BYTES = 64 * 1024  # what a connection may send before the server is loaded

ProtocolFactory = Callable[[], Any]  # aiohttp's web.Server


class BoundedListener:
    """Wraps aiohttp's protocol factory (made by `load` on first use) with the bounds above."""

    def __init__(
        self,
        load: Callable[[], Awaitable[ProtocolFactory]],
        max_connections: int = MAX_CONNECTIONS,
        headers_deadline_s: float = HEADERS_DEADLINE_S,
    ) -> None:
        self._load = load
        self.server: ProtocolFactory | None = None
        self.max_connections = max_connections
        self.headers_deadline_s = headers_deadline_s
        self.open = 0
        self._seen: set[int] = set()  # ids of the protocols that got a whole request
        self._waiting: list[_Bounded] = []
        self._loading: asyncio.Task[None] | None = None
        self._refused = BurstLog(log)

    def started_request(self, protocol: Any) -> None:
        """Called by the guard for every request that got this far (headers complete)."""
        self._seen.add(id(protocol))

    def __call__(self) -> asyncio.Protocol:
        return _Bounded(self)

    async def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)

    def _connected(self, bounded: _Bounded, transport: asyncio.BaseTransport) -> bool:
        self.open += 1
        if self.open > self.max_connections:
            self._refused.log_line(logging.WARNING, "Page: %d open; refusing more", self.open - 1)
            transport.abort()  # type: ignore[attr-defined]
            return False
        asyncio.get_running_loop().call_later(self.headers_deadline_s, self._deadline, bounded, transport)
        if self.server is not None:
            bounded.attach(self.server)
        else:
            self._waiting.append(bounded)
            if self._loading is None:
                self._loading = asyncio.get_running_loop().create_task(self._load_server(), name="web-load")
        return True

    def _gone(self, bounded: _Bounded) -> None:
        self.open -= 1
        if bounded.inner is not None:
            self._seen.discard(id(bounded.inner))
        if bounded in self._waiting:
            self._waiting.remove(bounded)

    async def _load_server(self) -> None:
        try:
            self.server = await self._load()
        except Exception:
            log.exception("Page: the web server could not be loaded")
            for bounded in self._waiting:
                bounded.transport.abort()  # type: ignore[union-attr]
            self._waiting.clear()
            self._loading = None  # the next connection tries again
            return
        waiting, self._waiting = self._waiting, []
        for bounded in waiting:
            bounded.attach(self.server)

    def _deadline(self, bounded: _Bounded, transport: asyncio.BaseTransport) -> None:
        request_seen = bounded.inner is not None and id(bounded.inner) in self._seen
        if not request_seen and not transport.is_closing():
            transport.abort()  # type: ignore[attr-defined]


class _Bounded(asyncio.Protocol):
    """One connection: aiohttp's protocol (it has __slots__: wrapped, not patched), once loaded."""

    def __init__(self, listener: BoundedListener) -> None:
        self.listener = listener
        self.inner: Any = None
        self.transport: asyncio.BaseTransport | None = None
        self._early = bytearray()

    def attach(self, server: ProtocolFactory) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        self.inner = server()
        self.inner.connection_made(self.transport)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.inner.data_received(early)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.listener._connected(self, transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.listener._gone(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        self._early += data
        if len(self._early) > EARLY_BYTES and self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        return None  # gone before the server was loaded: close

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


async def listen(listener: BoundedListener, host: str, port: int) -> asyncio.Server:
    """The listening socket: accepting at once, aiohttp loaded at the first connection."""
    return await asyncio.get_running_loop().create_server(listener, host or None, port, reuse_address=True)
