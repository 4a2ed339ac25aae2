"""The page's TCP listener, bounded: at most `MAX_CONNECTIONS` open at once, and a connection that
has not finished sending a request's headers within `HEADERS_DEADLINE_S` of opening is cut off (a
slow or idle client holds nothing for long). Idle keep-alive connections close after
`KEEPALIVE_S`. aiohttp's own parser caps the header lines and fields."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from hardware.quiet_log import BurstLog

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
HEADERS_DEADLINE_S = 10.0
KEEPALIVE_S = 15.0


class BoundedListener:
    """Wraps aiohttp's protocol factory with the connection limit and the first-request deadline."""

    def __init__(
        self, max_connections: int = MAX_CONNECTIONS, headers_deadline_s: float = HEADERS_DEADLINE_S
    ) -> None:
        self.server: web.Server | None = None  # set by serve()
        self.max_connections = max_connections
        self.headers_deadline_s = headers_deadline_s
        self.open = 0
        self._seen: set[int] = set()  # ids of the protocols that got a whole request
        self._refused = BurstLog(log)

    def started_request(self, protocol: Any) -> None:
        """Called by the guard for every request that got this far (headers complete)."""
        self._seen.add(id(protocol))

    def __call__(self) -> asyncio.Protocol:
        assert self.server is not None
        return _Bounded(self, self.server())

    def _deadline(self, protocol: Any, transport: asyncio.BaseTransport) -> None:
        if id(protocol) not in self._seen and not transport.is_closing():
            transport.abort()  # type: ignore[attr-defined]


class _Bounded(asyncio.Protocol):
    """aiohttp's protocol for one connection (it has __slots__: wrapped, not patched)."""

    def __init__(self, listener: BoundedListener, inner: Any) -> None:
        self.listener = listener
        self.inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self.listener
        listener.open += 1
        self.inner.connection_made(transport)
        if listener.open > listener.max_connections:
            listener._refused.log_line(logging.WARNING, "Page: %d open; refusing more", listener.open - 1)
            transport.abort()  # type: ignore[attr-defined]
            return
        asyncio.get_running_loop().call_later(
            listener.headers_deadline_s, listener._deadline, self.inner, transport
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        self.listener.open -= 1
        self.listener._seen.discard(id(self.inner))
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


async def serve(
    app: web.Application, listener: BoundedListener, host: str, port: int
) -> tuple[web.AppRunner, asyncio.Server]:
    """Start serving `app` on host:port through `listener`."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_S, handle_signals=False)
    await runner.setup()
    listener.server = runner.server
    server = await asyncio.get_running_loop().create_server(listener, host or None, port, reuse_address=True)
    return runner, server
