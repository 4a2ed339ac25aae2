"""The inspection session over real loopback HTTP: pacing under faults, recapture, stops.

The camera is a real `dir:` camera over a folder of rendered frames; the service is the stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.detection.client import GadgetClient
from agent.detection.context import PrintKey
from agent.detection.timing import DetectionTiming
from agent.detection.usage import FREE_USAGE_ERROR, ROLLOVER_MARGIN_S, UsageMeter
from agent.detection.verdict import DetectionError, Verdict
from agent.monitor import InspectionSession
from hardware.camera.base import Camera, CameraError
from hardware.camera.factory import FittedCamera
from hardware.camera.folder import FolderCamera
from hardware.camera.http_snapshot import HttpSnapshotCamera
from sim.frames import render_frame
from sim.gadget_service import Call, GadgetStandIn, Interval, Reply
from sim.snapshot_server import SnapshotServer

KEY = "lg-test-key-monitor-5"
TIMING = DetectionTiming(
    # Above any loopback answer on a loaded 2-core machine (a served call must not time out), and
    # the only stall in the scripts below outlasts it: it costs 3 s once.
    request_timeout_s=3.0,
    first_success_retry_s=0.3,
    interval_floor_s=0.2,
    interval_ceiling_s=5.0,
    default_retry_s=0.35,
    backoff_ceiling_s=1.0,
)
# Arrival times at the stand-in trail the client's call starts by the upload of a small JPEG and
# the stand-in's thread waking, tens of ms on a loaded machine, more for one call than the next.
# 0.1 s covers that and still catches every early call the pacing could make here: an ignored
# interval, floor, backoff or Retry-After brings a call 0.2 s early or more.
UPLOAD_SLACK_S = 0.1


@pytest.fixture
def service() -> Iterator[GadgetStandIn]:
    with GadgetStandIn(api_key=KEY, interval=0.3) as running:
        yield running


@pytest.fixture
def camera(tmp_path: Path) -> FolderCamera:
    for i in range(4):
        (tmp_path / f"frame{i}.jpg").write_bytes(render_frame(0.2 + i / 10, None, 320, 240, seed=i))
    return FolderCamera(tmp_path)


class Recorder:
    """The session's callbacks, and an event for each attempt, so tests await instead of sleeping."""

    def __init__(self) -> None:
        self.verdicts: list[Verdict] = []
        self.failures: list[tuple[DetectionError | CameraError, float | None]] = []
        self.attempt = asyncio.Event()

    @property
    def attempts(self) -> int:
        return len(self.verdicts) + len(self.failures)

    @property
    def camera_errors(self) -> int:
        return sum(isinstance(error, CameraError) for error, _ in self.failures)

    async def on_verdict(self, verdict: Verdict, jpeg: bytes, next_at: float) -> None:
        self.verdicts.append(verdict)
        self.after_attempt()

    def on_failure(self, exc: DetectionError | CameraError, next_at: float | None) -> None:
        self.failures.append((exc, next_at))
        self.after_attempt()

    def after_attempt(self) -> None:
        self.attempt.set()

    async def wait_attempts(self, count: int, within: float = 30.0) -> None:
        await self.wait_until(lambda: self.attempts >= count, within)

    async def wait_until(self, done: Callable[[], bool], within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while not done():
                self.attempt.clear()
                await self.attempt.wait()


@contextlib.asynccontextmanager
async def session_of(
    camera: Camera, client: GadgetClient, recorder: Recorder, active: bool = True, camera_retry_s: float = 5.0
) -> AsyncIterator[tuple[InspectionSession, asyncio.Task[None]]]:
    session = InspectionSession(
        camera, client, PrintKey("benchy.gcode"), recorder.on_verdict, recorder.on_failure, camera_retry_s
    )
    session.set_active(active)
    task = asyncio.create_task(session.run())
    try:
        yield session, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


def process_calls(service: GadgetStandIn) -> list[Call]:
    return [call for call in service.calls if call.endpoint == "process"]


# -- pacing


# Per Process call: the fault it meets (None: served) and the interval the service asks from then on.
MIXED: list[tuple[Reply | str | None, Interval | None]] = [
    ("OE_INTERNAL_ERROR", 0.3),  # before the first success: the 20 s rule (scaled)
    (Reply.raw(503), 0.3),  # the primary dies: the fallback from now on, backing off
    (None, {"Minimum": 0.2, "Recommended": 0.4}),
    (None, 0.25),
    (Reply.api_error("OE_CONTEXT_RATE_LIMITED", retry_after="0.8"), 0.25),
    (None, 0.25),
    ("OE_IMAGE_DECODE_FAILED", 0.25),
    (Reply.malformed_json(), 0.25),
    (Reply.slow(0.2), None),  # a slow answer, and one without an interval
    (None, 0),  # an absurd interval: clamped to the floor
    ("OE_BACKEND_THROTTLED", 0.3),
    ("OE_INTERNAL_ERROR", 0.3),  # twice in a row: backing off
    (Reply.stall(10), 0.3),  # no answer: the client times out
    (None, 0.3),
]


def allowed_gaps(calls: list[Call]) -> list[float]:
    """The shortest gap the protocol allows after each call, worked out from what the stand-in
    answered, independently of the client: the service's interval (clamped) after an answer; after
    a failure 20 s (scaled) before the first answer, the last interval after it, doubled per failure
    in a row up to the ceiling, and never before a Retry-After."""
    gaps: list[float] = []
    interval: float | None = None
    failures = 0
    for call in calls:
        if call.answer is not None:
            asked = call.answer.get("NextProcessIntervalSec", TIMING.default_retry_s)
            if isinstance(asked, dict):
                asked = max(asked["Recommended"], asked["Minimum"])
            interval = min(max(asked, TIMING.interval_floor_s), TIMING.interval_ceiling_s)
            gaps.append(interval)
            failures = 0
            continue
        base = TIMING.first_success_retry_s if interval is None else interval
        gap = max(base, min(base * 2**failures, TIMING.backoff_ceiling_s))
        retry_after = dict(call.reply_headers).get("Retry-After")
        gaps.append(max(gap, float(retry_after or 0)))
        failures += 1
    return gaps


async def test_mixed_faults_never_bring_a_process_call_early(
    service: GadgetStandIn, camera: FolderCamera
) -> None:
    recorder = Recorder()
    script = iter(MIXED)

    def next_fault() -> None:
        step = next(script, None)
        if step is not None:
            fault, service.interval = step
            if fault is not None:
                service.inject(fault)

    recorder.after_attempt = lambda: (next_fault(), recorder.attempt.set())  # type: ignore[method-assign]
    next_fault()
    client = GadgetClient(service.base_url, KEY, timing=TIMING)
    async with session_of(camera, client, recorder):
        await recorder.wait_attempts(len(MIXED), within=60)
    calls = process_calls(service)[: len(MIXED)]
    statuses = [500, 503, 200, 200, 429, 200, 400, 200, 200, 200, 503, 500, None, 200]
    assert [c.status for c in calls] == statuses
    assert [c.region for c in calls] == ["primary"] * 2 + ["fallback"] * 12
    allowed = allowed_gaps(calls)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]
    early = [(i, round(g, 3), allowed[i]) for i, g in enumerate(gaps) if g < allowed[i] - UPLOAD_SLACK_S]
    assert not early, f"Process calls earlier than allowed (index, gap, allowed): {early}"
    assert allowed[4] == 0.8  # Retry-After
    assert allowed[8] == TIMING.default_retry_s  # an answer without an interval
    assert allowed[10:13] == [0.2, 0.4, 0.8]  # failures in a row back off


# -- what each kind of failure does to the session


async def test_an_image_the_service_cannot_decode_is_followed_by_a_fresh_capture(
    service: GadgetStandIn, camera: FolderCamera
) -> None:
    (camera.path / "frame1.jpg").write_bytes(render_frame(0.3, None, 320, 240)[:2000])  # cut short
    recorder = Recorder()
    async with session_of(camera, GadgetClient(service.base_url, KEY, timing=TIMING), recorder):
        await recorder.wait_attempts(3)
    first, broken, after = process_calls(service)[:3]
    assert (first.status, broken.error_type, after.status) == (200, "OE_IMAGE_DECODE_FAILED", 200)
    assert len({first.files[0].sha256, broken.files[0].sha256, after.files[0].sha256}) == 3


@pytest.mark.parametrize("where", ["http", "folder"])
async def test_a_frame_that_does_not_decode_costs_no_process_call(
    service: GadgetStandIn, camera: FolderCamera, where: str
) -> None:
    """Truncated behind a valid header (from a streamer), or other bytes behind a .jpg name: a camera
    error, found by the check in front of the service, not a Process call that is billed."""
    with SnapshotServer(lambda: 0.5, None, 320, 240) as streamer:
        if where == "http":
            streamer.fault = "truncated"
            source: Camera = HttpSnapshotCamera(streamer.url)
        else:
            for frame in camera.path.iterdir():
                frame.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64)
            source = camera
        recorder = Recorder()
        client = GadgetClient(service.base_url, KEY, timing=TIMING)
        async with session_of(FittedCamera(source), client, recorder, camera_retry_s=0.05):
            # Counted by camera errors: on a loaded machine the context's creation may also time out
            # (a DetectionError, and free), which says nothing about the frames.
            await recorder.wait_until(lambda: recorder.camera_errors >= 3)
            assert process_calls(service) == []
            if where == "http":  # the streamer recovers: inspections go on
                streamer.fault = None
                await recorder.wait_attempts(len(recorder.failures) + 1)
                assert len(recorder.verdicts) == 1 and len(process_calls(service)) == 1
        await asyncio.to_thread(source.close)  # blocking, like capture(): off the loop


async def test_a_key_error_ends_the_session_without_hammering(
    service: GadgetStandIn, camera: FolderCamera
) -> None:
    recorder = Recorder()
    client = GadgetClient(service.base_url, "a-revoked-key", timing=TIMING)
    async with session_of(camera, client, recorder) as (_, task):
        async with asyncio.timeout(30):
            await asyncio.shield(task)  # the session ends by itself
    [(error, next_at)] = recorder.failures
    assert isinstance(error, DetectionError) and error.error_type == "OE_INVALID_API_KEY" and error.stopped
    assert next_at is None  # nothing planned
    assert len(service.calls) == 1


async def test_a_used_up_allowance_waits_for_the_next_month_and_goes_on(
    service: GadgetStandIn, camera: FolderCamera
) -> None:
    month_end = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    # The month ends lead_s into the test: the first call must come before that, even on a loaded machine.
    lead_s = 3.0
    offset = month_end - lead_s - time.time()

    def clock() -> float:
        return time.time() + offset

    recorder = Recorder()
    client = GadgetClient(service.base_url, KEY, timing=TIMING, usage=UsageMeter(clock=clock), clock=clock)
    service.inject(FREE_USAGE_ERROR)
    async with session_of(camera, client, recorder):
        await recorder.wait_attempts(2)
    [(error, next_at)] = recorder.failures
    assert isinstance(error, DetectionError) and error.stopped and error.error_type == FREE_USAGE_ERROR
    assert next_at is not None and 0 < error.retry_after_s <= lead_s + ROLLOVER_MARGIN_S
    assert len(recorder.verdicts) == 1 and client.usage.calls == 1  # counted in the new month
    refused, served = process_calls(service)
    assert served.at - refused.at >= error.retry_after_s - UPLOAD_SLACK_S


async def test_an_inactive_session_makes_no_process_call(
    service: GadgetStandIn, camera: FolderCamera
) -> None:
    recorder = Recorder()
    client = GadgetClient(service.base_url, KEY, timing=TIMING)
    async with session_of(camera, client, recorder, active=False) as (session, _):
        await asyncio.to_thread(service.wait_for_calls, 1)  # the context is created (free)
        await asyncio.sleep(2 * TIMING.first_success_retry_s)  # waiting for something that must NOT happen
        assert process_calls(service) == []
        session.set_active(True)
        await recorder.wait_attempts(1)
    assert len(process_calls(service)) == 1
