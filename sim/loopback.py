"""The HTTP server every loopback stand-in uses: a free port on 127.0.0.1, one thread per client."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

_CHUNK = 64 * 1024


def write_padding(out: BinaryIO, size: int, byte: bytes = b"x") -> None:
    """`size` copies of `byte`, written in chunks: a huge answer that the stand-in never holds."""
    while size > 0:
        out.write(byte * min(_CHUNK, size))
        size -= _CHUNK


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (an agent shutting down) is normal, not a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
