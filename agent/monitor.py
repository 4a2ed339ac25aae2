"""The inspection loop: one session per print, frames sent at the pace the service allows."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from agent.detection.base import Detector
from agent.detection.verdict import DetectionError, Verdict
from hardware.camera.base import Camera, CameraError

log = logging.getLogger(__name__)

VerdictHandler = Callable[[Verdict, bytes, float], Awaitable[None]]
FailureHandler = Callable[[DetectionError | CameraError, float], None]


class InspectionSession:
    """One print's detection context and its inspections.

    The session only inspects while `active` (printing, monitoring on, not heating); the agent
    flips that as the print moves. The next Process call never starts before the interval the
    service gave, counted from the start of the previous call, however the session is toggled.
    """

    def __init__(
        self,
        camera: Camera,
        detector: Detector,
        on_verdict: VerdictHandler,
        on_failure: FailureHandler,
        camera_retry_s: float = 5.0,
    ) -> None:
        self.camera = camera
        self.detector = detector
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

    async def run(self) -> None:
        """Inspect until cancelled, or until the service says inspecting must stop."""
        if not await self._start_context():
            return
        next_at = self._loop.time()
        while True:
            await self._active.wait()
            await asyncio.sleep(max(0.0, next_at - self._loop.time()))
            if not self._active.is_set():
                continue
            try:
                jpeg = await asyncio.to_thread(self.camera.capture)
            except CameraError as exc:
                next_at = self._loop.time() + self.camera_retry_s
                self.on_failure(exc, self.wall_time(next_at))
                continue
            if not self._active.is_set():  # paused while the camera was busy: the frame is stale
                continue
            started = self._loop.time()
            try:
                verdict = await self.detector.process(jpeg)
            except DetectionError as exc:
                next_at = started + exc.retry_after_s
                self.on_failure(exc, self.wall_time(next_at))
                if exc.stopped:
                    return
                continue
            self.inspections += 1
            next_at = started + verdict.next_interval_s
            await self.on_verdict(verdict, jpeg, self.wall_time(next_at))

    async def _start_context(self) -> bool:
        while True:
            try:
                await self.detector.start_context()
                return True
            except DetectionError as exc:
                retry_at = self._loop.time() + exc.retry_after_s
                self.on_failure(exc, self.wall_time(retry_at))
                if exc.stopped:
                    return False
                await asyncio.sleep(exc.retry_after_s)
