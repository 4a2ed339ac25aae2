"""What the loopback stand-ins share: an HTTP server on a free 127.0.0.1 port (one thread per
client), a free port for servers that need one named, padding for huge answers, and an inbox a
test can wait on."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, Generic, TypeVar

T = TypeVar("T")
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


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, for servers that must be told theirs up front."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Inbox(Generic[T]):
    """What a stand-in received, filled by its server's threads and awaited by a test."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = threading.Condition()

    def add(self, item: T) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[T]:
        """Blocks until `count` items arrived; raises TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.items) >= count, timeout_s):
                raise TimeoutError(f"{len(self.items)} of {count} arrived")
            return list(self.items)
