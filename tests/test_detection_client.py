"""GadgetClient against the Gadget stand-in over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from agent import __version__
from agent.detection.client import KEY_ERRORS, MAX_ANSWER_BYTES, MAX_IMAGE_BYTES, GadgetClient
from agent.detection.timing import DetectionTiming
from agent.detection.verdict import DetectionError
from sim.frames import render_frame
from sim.gadget_service import GadgetStandIn, Interval, Reply

KEY = "lg-test-key-7d3f9a2b6c1e"
# Short retry delays keep the tests quick; the whole-call deadline stays long, because no test
# here wants FAST to time out and a loaded machine (two emulated guests beside the suite) can hold
# a loopback answer for seconds: at 5 s an injected API error turned into a timeout there.
FAST = DetectionTiming(
    request_timeout_s=30.0,
    first_success_retry_s=0.25,
    interval_floor_s=0.5,
    interval_ceiling_s=120.0,
    default_retry_s=0.75,
    backoff_ceiling_s=3.0,
)
CLEAN = render_frame(0.5, None)
SPAGHETTI = [render_frame(0.45 + i * 0.02, 0.3, seed=i) for i in range(8)]


@pytest.fixture
def service() -> Iterator[GadgetStandIn]:
    with GadgetStandIn(api_key=KEY, interval=2) as running:
        yield running


@pytest.fixture
async def client(service: GadgetStandIn) -> AsyncIterator[GadgetClient]:
    gadget = GadgetClient(service.base_url, KEY, timing=FAST)
    yield gadget
    await gadget.aclose()


@pytest.fixture
async def started(client: GadgetClient) -> GadgetClient:
    await client.start_context()
    return client


async def make_client(
    service: GadgetStandIn, *, timing: DetectionTiming = FAST, **options: Any
) -> GadgetClient:
    """A client with a context, for tests that need options other than the `started` fixture's."""
    gadget = GadgetClient(service.base_url, KEY, timing=timing, **options)
    await gadget.start_context()
    return gadget


async def fails(call: Awaitable[object]) -> DetectionError:
    with pytest.raises(DetectionError) as caught:
        await call
    return caught.value


# -- Create Context


async def test_start_context_sends_key_and_confidence_levels(service: GadgetStandIn) -> None:
    gadget = await make_client(service, warning_confidence=2, pause_confidence=5)
    await gadget.aclose()
    [model] = service.contexts.values()
    assert (model.warning_confidence, model.pause_confidence) == (2, 5)
    [call] = service.calls
    assert call.endpoint == "createcontext"
    assert call.headers["x-api-key"] == KEY


@pytest.mark.parametrize("missing", ["ContextId", "ProcessRequestUrl", "FallbackProcessRequestUrl"])
async def test_create_context_answer_missing_a_field_is_an_error(
    service: GadgetStandIn, client: GadgetClient, missing: str
) -> None:
    answer = {"ContextId": "c1", "ProcessRequestUrl": "http://a/p", "FallbackProcessRequestUrl": "http://b/p"}
    del answer[missing]
    service.inject(Reply.json(answer), endpoint="createcontext")
    error = await fails(client.start_context())
    assert error.error_type == "BAD_RESPONSE" and missing in error.message
    assert not error.stopped
    await client.process(CLEAN)  # the next attempt creates the context first
    assert [call.endpoint for call in service.calls] == ["createcontext", "createcontext", "process"]


async def test_wrong_key_stops_at_create_context(service: GadgetStandIn) -> None:
    gadget = GadgetClient(service.base_url, "not-the-key", timing=FAST)
    error = await fails(gadget.start_context())
    await gadget.aclose()
    assert error.error_type == "OE_INVALID_API_KEY" and error.stopped


# -- Process: request and verdict


async def test_process_posts_one_jpeg_part_to_the_url_as_returned(
    service: GadgetStandIn, started: GadgetClient
) -> None:
    await started.process(CLEAN)
    create, process = service.calls
    assert create.answer is not None
    assert service.base_url + process.path == create.answer["ProcessRequestUrl"]
    assert process.headers["x-api-key"] == KEY
    assert process.headers["user-agent"] == f"LayerGuard/{__version__}"
    assert process.headers["content-type"].startswith("multipart/form-data")
    [upload] = process.files
    assert (upload.field, upload.filename, upload.content_type, upload.size) == (
        "attachment",
        "snapshot.jpg",
        "image/jpeg",
        len(CLEAN),
    )


async def test_process_returns_the_parsed_verdict(service: GadgetStandIn, started: GadgetClient) -> None:
    verdict = await started.process(CLEAN)
    answer = service.calls[-1].answer
    assert answer is not None
    assert (verdict.score, verdict.print_quality) == (answer["Score"], answer["PrintQuality"])
    assert verdict.score < 20 and not verdict.warning and not verdict.pause
    assert verdict.next_interval_s == 2.0


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (2, 2.0),
        ({"Minimum": 1, "Recommended": 3}, 3.0),
        ({"Minimum": 4, "Recommended": 3}, 4.0),  # never sooner than Minimum
        ({"Recommended": 7}, 7.0),
    ],
)
async def test_both_interval_shapes(
    service: GadgetStandIn, started: GadgetClient, interval: Interval, expected: float
) -> None:
    service.interval = interval
    assert (await started.process(CLEAN)).next_interval_s == expected


@pytest.mark.parametrize(
    ("interval", "expected", "logged"),
    [
        (0, FAST.interval_floor_s, "outside"),
        (-5, FAST.interval_floor_s, "outside"),
        (99999, FAST.interval_ceiling_s, "outside"),  # about a day
        ({"Minimum": 1, "Recommended": 86400 * 3}, FAST.interval_ceiling_s, "outside"),
        (None, FAST.default_retry_s, "no usable NextProcessIntervalSec"),
        ({"Minimum": 1}, FAST.default_retry_s, "no usable NextProcessIntervalSec"),
    ],
)
async def test_missing_or_absurd_interval_is_clamped_and_logged(
    service: GadgetStandIn,
    started: GadgetClient,
    caplog: pytest.LogCaptureFixture,
    interval: Interval | None,
    expected: float,
    logged: str,
) -> None:
    service.interval = interval
    with caplog.at_level(logging.INFO, logger="agent.detection.client"):
        verdict = await started.process(CLEAN)
        await started.process(CLEAN)
    assert verdict.next_interval_s == expected
    assert len([r for r in caplog.records if logged in r.getMessage()]) == 1  # not on every inspection


@pytest.mark.parametrize(("minimum", "expected"), [(10.0, 10.0), (1.0, 2.0)])
async def test_user_minimum_lengthens_the_interval_never_shortens_it(
    service: GadgetStandIn, minimum: float, expected: float
) -> None:
    gadget = await make_client(service, min_interval_s=minimum)
    verdict = await gadget.process(CLEAN)
    await gadget.aclose()
    assert verdict.next_interval_s == expected


async def test_spaghetti_frames_warn_first_then_pause(started: GadgetClient) -> None:
    for _ in range(3):
        verdict = await started.process(CLEAN)
        assert not verdict.warning and not verdict.pause
    verdicts = [await started.process(frame) for frame in SPAGHETTI]
    assert all(v.score > 70 for v in verdicts)
    first_warning = next(i for i, v in enumerate(verdicts) if v.warning)
    first_pause = next(i for i, v in enumerate(verdicts) if v.pause)
    assert 0 < first_warning < first_pause


def padded_jpeg(frame: bytes, size: int) -> bytes:
    """`frame` grown past `size` bytes with JPEG comment segments: big, yet quick to re-encode."""
    comment = b"\xff\xfe" + (65535).to_bytes(2, "big") + b"x" * 65533
    return frame[:2] + comment * (size // len(comment) + 1) + frame[2:]


@pytest.mark.parametrize("frame", [padded_jpeg(CLEAN, MAX_IMAGE_BYTES), b"\xff" * (MAX_IMAGE_BYTES + 1)])
async def test_an_image_over_the_limit_is_refused_without_a_call(
    service: GadgetStandIn, started: GadgetClient, frame: bytes
) -> None:
    # The capture path fits frames (agent/camera.py); the client only refuses what would be rejected.
    assert len(frame) > MAX_IMAGE_BYTES
    error = await fails(started.process(frame))
    assert error.error_type == "IMAGE_TOO_LARGE" and not error.stopped
    assert len(service.calls) == 1  # only Create Context


async def test_process_without_a_context_creates_one(service: GadgetStandIn, client: GadgetClient) -> None:
    await client.process(CLEAN)
    assert [call.endpoint for call in service.calls] == ["createcontext", "process"]


# -- Routing


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Reply.raw(503), "SERVER_ERROR"),
        (Reply.drop(), "NETWORK"),
        (Reply.raw(200, b"<html>captive portal</html>"), "BAD_RESPONSE"),
        (Reply.malformed_json(), "BAD_RESPONSE"),
        (Reply.json({"Score": 3}), "BAD_RESPONSE"),
        (Reply.raw(404, b"no such route", "text/plain"), "BAD_RESPONSE"),
    ],
)
async def test_dead_primary_moves_the_context_to_the_fallback_for_good(
    service: GadgetStandIn, started: GadgetClient, fault: Reply, error_type: str
) -> None:
    service.fail_primary = fault
    error = await fails(started.process(CLEAN))
    assert error.error_type == error_type and not error.stopped
    service.fail_primary = None  # the primary recovers, but the context stays on the fallback
    await started.process(CLEAN)
    await started.process(CLEAN)
    assert [call.region for call in service.calls[1:]] == ["primary", "fallback", "fallback"]

    await started.start_context()  # a new print starts on its primary again
    await started.process(CLEAN)
    assert service.calls[-1].region == "primary"


async def test_timeout_moves_to_the_fallback(service: GadgetStandIn) -> None:
    # The deadline must cut the 30 s stall, yet let the fallback's loopback answer (milliseconds
    # quiet, over a second seen on a loaded 2-core machine) arrive: 3 s is both, for 3 s of test.
    gadget = await make_client(
        service, timing=DetectionTiming(request_timeout_s=3.0, first_success_retry_s=0.25)
    )
    service.inject(Reply.stall(30), region="primary")
    error = await fails(gadget.process(CLEAN))
    await gadget.process(CLEAN)
    await gadget.aclose()
    assert error.error_type == "TIMEOUT"
    assert service.calls[-1].region == "fallback"


async def test_a_dripping_answer_is_cut_at_the_whole_call_deadline(service: GadgetStandIn) -> None:
    """One byte every 0.5 s: no read ever waits long, yet the call as a whole ends at the deadline."""
    # 3 s: room for the fallback's loopback answer on a loaded machine, as above.
    deadline_s = 3.0
    gadget = await make_client(service, timing=replace(FAST, request_timeout_s=deadline_s))
    service.inject(Reply.drip(0.5), region="primary")
    loop = asyncio.get_running_loop()
    started = loop.time()
    error = await fails(gadget.process(CLEAN))
    elapsed = loop.time() - started
    await gadget.process(CLEAN)
    await gadget.aclose()
    assert error.error_type == "TIMEOUT"
    # What this protects: the call ends at the deadline, not when the answer is in. Dripped whole,
    # the answer (its status line and headers alone are over 100 bytes) takes over 50 s; 10 s past
    # the deadline is far below that and above any scheduling delay seen under load.
    assert deadline_s <= elapsed < deadline_s + 10
    assert service.calls[-1].region == "fallback"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-content-length"])
async def test_an_oversized_answer_is_refused_and_the_fallback_used(
    service: GadgetStandIn, started: GadgetClient, caplog: pytest.LogCaptureFixture, declared: bool
) -> None:
    caplog.set_level(logging.INFO, logger="agent.detection.client")
    huge = Reply.huge(32 * 1024 * 1024, declare_length=declared)
    service.fail_primary = service.fail_fallback = huge
    errors = [await fails(started.process(CLEAN)) for _ in range(3)]
    service.fail_fallback = None
    await started.process(CLEAN)

    assert [e.error_type for e in errors] == ["TOO_LARGE"] * 3
    assert f"{MAX_ANSWER_BYTES}-byte cap" in errors[0].message
    assert [c.region for c in service.calls[1:]] == ["primary", "fallback", "fallback", "fallback"]
    refused = [r for r in caplog.records if "refused unread" in r.getMessage()]
    assert len(refused) == 1, "a lasting condition is logged once, not per call"
    ended = caplog.records[-1].getMessage()
    assert ended.startswith("Gadget answers: working again after ") and ended.endswith("(3 failed attempts)")


async def test_dead_primary_and_dead_fallback_keep_failing_calmly(
    service: GadgetStandIn, started: GadgetClient
) -> None:
    service.fail_primary, service.fail_fallback = Reply.drop(), Reply.raw(502)
    errors = [await fails(started.process(CLEAN)) for _ in range(5)]
    assert [e.error_type for e in errors] == ["NETWORK"] + ["SERVER_ERROR"] * 4
    assert [c.region for c in service.calls[1:]] == ["primary"] + ["fallback"] * 4
    assert [e.retry_after_s for e in errors] == [0.25, 0.5, 1.0, 2.0, FAST.backoff_ceiling_s]
    service.fail_fallback = None
    await started.process(CLEAN)  # the fallback is back
    assert service.calls[-1].region == "fallback"


async def test_slow_answer_within_the_timeout_is_no_failure(
    service: GadgetStandIn, started: GadgetClient
) -> None:
    service.inject(Reply.slow(0.3))
    await started.process(CLEAN)
    await started.process(CLEAN)
    assert [c.region for c in service.calls[1:]] == ["primary", "primary"]


async def test_a_context_the_service_forgot_is_replaced(
    service: GadgetStandIn, started: GadgetClient
) -> None:
    await started.process(CLEAN)
    service.forget_contexts()
    error = await fails(started.process(CLEAN))
    assert error.error_type == "OE_BAD_ARGS" and not error.stopped
    await started.process(CLEAN)
    create_1, _, unknown, create_2, served = service.calls
    assert (create_2.endpoint, served.status) == ("createcontext", 200)
    assert served.context_id != unknown.context_id == create_1.context_id


@pytest.mark.parametrize(
    "error_type", ["OE_BACKEND_THROTTLED", "OE_INTERNAL_ERROR", "OE_IMAGE_DECODE_FAILED", "OE_BAD_ARGS"]
)
async def test_json_api_error_does_not_switch(
    service: GadgetStandIn, started: GadgetClient, error_type: str
) -> None:
    service.inject(error_type)
    error = await fails(started.process(CLEAN))
    assert error.error_type == error_type and not error.stopped
    await started.process(CLEAN)
    assert [call.region for call in service.calls[1:]] == ["primary", "primary"]


# -- Errors and retry delays


@pytest.mark.parametrize("error_type", sorted(KEY_ERRORS))
async def test_key_and_account_errors_stop_without_hammering(
    service: GadgetStandIn, started: GadgetClient, error_type: str
) -> None:
    service.inject(error_type)
    error = await fails(started.process(CLEAN))
    assert error.error_type == error_type and error.stopped
    assert error.retry_after_s == math.inf  # nothing retries by itself
    again = await fails(started.process(CLEAN))
    assert again.error_type == error_type and again.stopped
    assert len(service.calls) == 2  # the repeat never reached the service
    assert service.calls[-1].region == "primary"

    await started.start_context()  # a new print tries again
    await started.process(CLEAN)


async def retry_delays(client: GadgetClient, count: int) -> list[float]:
    return [(await fails(client.process(CLEAN))).retry_after_s for _ in range(count)]


async def test_retry_waits_first_success_delay_then_the_service_interval_backing_off(
    service: GadgetStandIn, started: GadgetClient
) -> None:
    first = FAST.first_success_retry_s
    service.inject("OE_INTERNAL_ERROR", times=3)
    assert await retry_delays(started, 3) == [first, 2 * first, 4 * first]
    await started.process(CLEAN)
    service.inject("OE_BACKEND_THROTTLED", times=3)
    # The service's 2 s, doubled per failure in a row, up to the ceiling.
    assert await retry_delays(started, 3) == [2.0, FAST.backoff_ceiling_s, FAST.backoff_ceiling_s]
    await started.process(CLEAN)  # a success ends the streak
    service.inject("OE_INTERNAL_ERROR")
    assert await retry_delays(started, 1) == [2.0]


async def test_failed_create_context_backs_off(service: GadgetStandIn, client: GadgetClient) -> None:
    service.inject(503, endpoint="createcontext", times=2)
    delays = [(await fails(client.start_context())).retry_after_s for _ in range(2)]
    assert delays == [FAST.default_retry_s, 2 * FAST.default_retry_s]


async def test_user_minimum_lengthens_retry_delays(service: GadgetStandIn) -> None:
    gadget = await make_client(service, min_interval_s=9.0)
    service.inject("OE_BACKEND_THROTTLED")
    error = await fails(gadget.process(CLEAN))
    await gadget.aclose()
    assert error.retry_after_s == 9.0


async def test_rate_limit_honours_retry_after(service: GadgetStandIn, started: GadgetClient) -> None:
    service.inject(Reply.api_error("OE_CONTEXT_RATE_LIMITED", retry_after="42"))
    error = await fails(started.process(CLEAN))
    assert error.error_type == "OE_CONTEXT_RATE_LIMITED" and error.retry_after_s == 42.0
    assert not error.stopped


# -- Secrecy


async def test_api_key_never_appears_in_logs_or_errors(
    service: GadgetStandIn, started: GadgetClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[DetectionError] = []
    await started.process(CLEAN)
    for fault in (
        Reply.drop(),  # switches to the fallback, so the rest are injected there
        Reply.raw(503),
        Reply.api_error("OE_BAD_ARGS"),
        Reply.api_error("OE_BACKEND_THROTTLED", details=f"throttled key {KEY}"),
        Reply.api_error("OE_INVALID_API_KEY", details=f"key {KEY} is not valid"),
    ):
        service.inject(fault)
        errors.append(await fails(started.process(CLEAN)))
    errors.append(await fails(started.process(CLEAN)))  # the stop latch
    assert "OE_BACKEND_THROTTLED: HTTP 503: throttled key ***" in [str(e) for e in errors]
    texts = [record.getMessage() for record in caplog.records] + [f"{e} {e!r} {e.message}" for e in errors]
    assert texts and not [text for text in texts if KEY in text]
