"""A webcam snapshot endpoint on loopback, like ustreamer's `/snapshot`, showing the virtual print.

The agent reads it with its real HTTP camera backend, so the demo exercises the same code as a
USB webcam behind ustreamer or mjpg-streamer on a Pi. `fault` makes it a hostile camera for the
tests and the benchmark: a huge frame (with or without its Content-Length), a frame dripped one
byte at a time, or a truncated one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Literal

from sim.frames import render_frame
from sim.loopback import LoopbackHTTPServer, write_padding

# "huge": the frame padded past its end to HUGE_FRAME_BYTES (decoders ignore what follows the end
# marker, so it is a valid JPEG that is only too big); "huge_undeclared": the same without a
# Content-Length; "drip": the frame one byte per `drip_s`; "truncated": its first half only.
Fault = Literal["huge", "huge_undeclared", "drip", "truncated"]
HUGE_FRAME_BYTES = 20_000_000


class SnapshotServer:
    """Serves `GET /snapshot` as a JPEG of the print at `progress()` (0..1)."""

    def __init__(
        self,
        progress: Callable[[], float],
        failure_at: float | None,
        width: int = 640,
        height: int = 480,
        clutter: bool = False,
    ) -> None:
        self.progress = progress
        self.failure_at = failure_at
        self.clutter = clutter  # a tangle of cable in view (sim.frames.CLUTTER_RECT)
        self.size = (width, height)
        self.frames_served = 0  # requests for /snapshot, whatever their fault
        self._served = threading.Condition()
        self.fault: Fault | None = None  # may be changed while running
        self.drip_s = 2.0
        self._stopping = threading.Event()
        self._server = LoopbackHTTPServer(self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-snapshot", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/snapshot"

    def start(self) -> SnapshotServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends a drip
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SnapshotServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for_frames(self, count: int, timeout: float) -> None:
        """Block until `count` snapshots have been asked for; TimeoutError if not within `timeout`."""
        with self._served:
            if not self._served.wait_for(lambda: self.frames_served >= count, timeout):
                raise TimeoutError(f"{self.frames_served} of {count} snapshots asked for within {timeout} s")

    def _frame(self) -> bytes:
        with self._served:
            self.frames_served += 1
            self._served.notify_all()
            seed = self.frames_served
        width, height = self.size
        return render_frame(self.progress(), self.failure_at, width, height, seed=seed, clutter=self.clutter)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/snapshot":
                    self.send_error(404)
                    return
                fault, body = owner.fault, owner._frame()
                if fault == "truncated":
                    body = body[: len(body) // 2]
                size = HUGE_FRAME_BYTES if fault in ("huge", "huge_undeclared") else len(body)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                if fault == "huge_undeclared":
                    self.close_connection = True  # the body ends when the connection does
                else:
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                if fault == "drip":
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        if owner._stopping.wait(owner.drip_s):
                            return
                    return
                self.wfile.write(body)
                write_padding(self.wfile, size - len(body), b"\0")

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo's timeline is the agent's story, not the webcam's."""

        return Handler
