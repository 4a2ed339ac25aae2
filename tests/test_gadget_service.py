"""The Gadget stand-in itself: it must reject what the real service rejects, or client tests prove little."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from sim.frames import render_frame
from sim.gadget_service import GadgetStandIn, Reply

KEY = "sim-key"
JPEG = render_frame(0.5, None, width=320, height=240)


@pytest.fixture
def service() -> Iterator[GadgetStandIn]:
    with GadgetStandIn(api_key=KEY) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"X-API-Key": KEY}, timeout=5) as client:
        yield client


def process_url(service: GadgetStandIn, http: httpx.Client) -> str:
    response = http.post(service.base_url + "/api/gadget/v1/createcontext", json={})
    assert response.status_code == 200
    return response.json()["ProcessRequestUrl"]


def error_type(response: httpx.Response) -> str:
    return response.json()["ErrorType"]


def test_create_context_returns_two_regions(service: GadgetStandIn, http: httpx.Client) -> None:
    answer = http.post(service.base_url + "/api/gadget/v1/createcontext", json={}).json()
    assert answer["ProcessRequestUrl"].startswith(service.base_url + "/primary/")
    assert answer["FallbackProcessRequestUrl"].startswith(service.base_url + "/fallback/")
    assert answer["ContextId"] in answer["ProcessRequestUrl"]


def test_create_context_rejects_bad_levels_and_keys(service: GadgetStandIn, http: httpx.Client) -> None:
    url = service.base_url + "/api/gadget/v1/createcontext"
    assert error_type(http.post(url, json={"WarningConfidenceLevel": 7})) == "OE_BAD_ARGS"
    assert error_type(http.post(url, content=b"{not json")) == "OE_ARGS_PARSE_FAILED"
    response = http.post(url, json={}, headers={"X-API-Key": "wrong"})
    assert (response.status_code, error_type(response)) == (401, "OE_INVALID_API_KEY")
    assert service.contexts_created == 0


def test_process_wants_exactly_one_file_part(service: GadgetStandIn, http: httpx.Client) -> None:
    url = process_url(service, http)
    two = [("a", ("a.jpg", JPEG, "image/jpeg")), ("b", ("b.jpg", JPEG, "image/jpeg"))]
    assert error_type(http.post(url, files=two)) == "OE_BAD_ARGS"
    assert error_type(http.post(url, data={"field": "no file"}, files={})) == "OE_BAD_ARGS"
    assert http.post(url, files={"any": ("x.jpg", JPEG, "image/jpeg")}).status_code == 200


def test_process_decodes_the_jpeg(service: GadgetStandIn, http: httpx.Client) -> None:
    url = process_url(service, http)
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    for data in (png.getvalue(), JPEG[: len(JPEG) // 2], b"not an image"):
        response = http.post(url, files={"f": ("x.jpg", data, "image/jpeg")})
        assert (response.status_code, error_type(response)) == (400, "OE_IMAGE_DECODE_FAILED")


def test_process_needs_a_known_context(service: GadgetStandIn, http: httpx.Client) -> None:
    response = http.post(
        service.base_url + "/primary/api/gadget/v1/process?ctx=nope", files={"f": ("x.jpg", JPEG)}
    )
    assert error_type(response) == "OE_BAD_ARGS"


def test_injected_slowness_still_serves_and_a_forgotten_context_is_unknown(
    service: GadgetStandIn, http: httpx.Client
) -> None:
    url = process_url(service, http)
    service.inject(Reply.slow(0.2))
    response = http.post(url, files={"f": ("x.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 200 and "Score" in response.json()
    assert response.elapsed.total_seconds() >= 0.2
    service.forget_contexts()
    response = http.post(url, files={"f": ("x.jpg", JPEG, "image/jpeg")})
    assert (response.status_code, error_type(response)) == (400, "OE_BAD_ARGS")
    assert "unknown context" in response.json()["ErrorDetails"]


def test_a_dead_fallback_fails_only_the_fallback(service: GadgetStandIn, http: httpx.Client) -> None:
    service.fail_fallback = Reply.raw(502)
    primary = process_url(service, http)
    fallback = primary.replace("/primary/", "/fallback/")
    assert http.post(fallback, files={"f": ("x.jpg", JPEG)}).status_code == 502
    assert http.post(primary, files={"f": ("x.jpg", JPEG)}).status_code == 200


def test_wait_for_calls_times_out_instead_of_hanging(service: GadgetStandIn) -> None:
    with pytest.raises(TimeoutError):
        service.wait_for_calls(1, timeout=0.01)
