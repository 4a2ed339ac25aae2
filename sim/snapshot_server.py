"""A webcam snapshot endpoint on loopback, like ustreamer's `/snapshot`, showing the virtual print.

The agent reads it with its real HTTP camera backend, so the demo exercises the same code as a
USB webcam behind ustreamer or mjpg-streamer on a Pi.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from types import TracebackType

from sim.frames import render_frame
from sim.loopback import LoopbackHTTPServer


class SnapshotServer:
    """Serves `GET /snapshot` as a JPEG of the print at `progress()` (0..1)."""

    def __init__(
        self, progress: Callable[[], float], failure_at: float | None, width: int = 640, height: int = 480
    ) -> None:
        self.progress = progress
        self.failure_at = failure_at
        self.size = (width, height)
        self.frames_served = 0
        self._server = LoopbackHTTPServer(self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-snapshot", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/snapshot"

    def start(self) -> SnapshotServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SnapshotServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _frame(self) -> bytes:
        self.frames_served += 1
        width, height = self.size
        return render_frame(self.progress(), self.failure_at, width, height, seed=self.frames_served)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/snapshot":
                    self.send_error(404)
                    return
                body = owner._frame()
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo's timeline is the agent's story, not the webcam's."""

        return Handler
