"""The inspection loop: one session per print, frames sent at the pace the service allows."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from agent.detection.base import Detector
from agent.detection.context import PrintKey
from agent.detection.verdict import DetectionError, Verdict
from hardware.camera.base import Camera, CameraError

log = logging.getLogger(__name__)

# A camera that once took long must not make the next frame old by the time it is sent.
MAX_CAPTURE_LEAD_S = 2.0

VerdictHandler = Callable[[Verdict, bytes, float], Awaitable[None]]
# The failure and when the next attempt is due (wall time), or None when none is planned.
FailureHandler = Callable[[DetectionError | CameraError, float | None], None]


class InspectionSession:
    """One print's detection context and its inspections.

    The session only inspects while `active` (printing, monitoring on, not heating); the agent
    flips that as the print moves. The next Process call never starts before the interval the
    service gave, counted from the previous answer, however the session is toggled. The frame is
    captured just ahead of that deadline, and each attempt captures a fresh one, so an image the
    service could not decode is never resent.
    """

    def __init__(
        self,
        camera: Camera,
        detector: Detector,
        print_key: PrintKey,
        on_verdict: VerdictHandler,
        on_failure: FailureHandler,
        camera_retry_s: float = 5.0,
    ) -> None:
        self.camera = camera
        self.detector = detector
        self.print_key = print_key
        self.on_verdict = on_verdict
        self.on_failure = on_failure
        self.camera_retry_s = camera_retry_s
        self._active = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.inspections = 0

    def set_active(self, active: bool) -> None:
        if active:
            self._active.set()
        else:
            self._active.clear()

    @property
    def active(self) -> bool:
        return self._active.is_set()

    def wall_time(self, loop_time: float) -> float:
        return time.time() + (loop_time - self._loop.time())

    def _due(self, loop_time: float) -> float | None:
        """The wall time of a planned attempt; None for an infinite wait (nothing is planned)."""
        return self.wall_time(loop_time) if math.isfinite(loop_time) else None

    async def run(self) -> None:
        """Inspect until cancelled, or until an error says only a person can help (a bad key).

        A stop for the month (allowance, budget) waits for the next month and goes on."""
        wait_s = await self._open_context()
        if wait_s is None:
            return
        next_at = self._loop.time() + wait_s
        capture_s = 0.0  # the last capture's duration: the next one starts that much early
        while True:
            await self._active.wait()
            await asyncio.sleep(max(0.0, next_at - capture_s - self._loop.time()))
            if not self._active.is_set():
                continue
            capture_started = self._loop.time()
            try:
                jpeg = await asyncio.to_thread(self.camera.capture)
            except CameraError as exc:
                next_at = self._loop.time() + self.camera_retry_s
                self.on_failure(exc, self.wall_time(next_at))
                continue
            capture_s = min(self._loop.time() - capture_started, MAX_CAPTURE_LEAD_S)
            # A capture quicker than the last leaves time before the deadline: the call never goes early.
            await asyncio.sleep(max(0.0, next_at - self._loop.time()))
            if not self._active.is_set():  # paused while the camera was busy: the frame is stale
                continue
            try:
                verdict = await self.detector.process(jpeg)
            except DetectionError as exc:
                next_at = self._loop.time() + exc.retry_after_s
                self.on_failure(exc, self._due(next_at))
                if not math.isfinite(next_at):
                    return
                continue
            self.inspections += 1
            # Counted from the answer, not the request: the service sees our calls arrive, and a
            # request that happens to travel faster than the last must still not arrive early.
            next_at = self._loop.time() + verdict.next_interval_s
            await self.on_verdict(verdict, jpeg, self.wall_time(next_at))

    async def _open_context(self) -> float | None:
        """The wait before the first Process call, or None when the service refused for good."""
        while True:
            try:
                return await self.detector.open_context(self.print_key)
            except DetectionError as exc:
                retry_at = self._loop.time() + exc.retry_after_s
                self.on_failure(exc, self._due(retry_at))
                if not math.isfinite(retry_at):
                    return None
                await asyncio.sleep(exc.retry_after_s)
