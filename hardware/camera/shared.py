"""One camera, several readers (the inspections, the page's live view): one capture at a time.

A caller that asks while a capture is in flight gets that capture's frame instead of starting
another: an inspection that arrives during a live-view capture waits no longer than its own
capture would have taken, and gets a frame just as fresh, through the same path (so what is sent
to the detection service never changes). The camera is never opened twice.
"""

from __future__ import annotations

import threading

from hardware.camera.base import Camera


class SharedCamera:
    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self.captures = 0  # frames actually taken (tests and the bench read it)

    def capture(self) -> bytes:
        with self._lock:
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if not leader:
            return flight.wait()
        try:
            frame = self.camera.capture()
        except BaseException as exc:
            flight.fail(exc)
            raise
        else:
            flight.deliver(frame)
            return frame
        finally:
            with self._lock:
                self._flight = None
                self.captures += 1

    def close(self) -> None:
        self.camera.close()


class _Flight:
    """One capture in progress and whoever waits for its result."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._frame: bytes | None = None
        self._error: BaseException | None = None

    def deliver(self, frame: bytes) -> None:
        self._frame = frame
        self._done.set()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._done.set()

    def wait(self) -> bytes:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._frame is not None
        return self._frame
