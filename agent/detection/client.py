"""GadgetClient: the Detector that asks OctoEverywhere's Gadget API whether a print has failed.

It fixes the official SDK's known weaknesses (see the Gadget reference): it switches to the fallback
URL only for connection- or server-level failures, accepts both shapes of NextProcessIntervalSec,
tells apart errors a retry can fix from errors that need a person (`DetectionError.stopped`),
sends a User-Agent, and never sleeps itself: the caller waits `next_interval_s` / `retry_after_s`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from agent import __version__
from agent.detection.timing import DEFAULT_TIMING, DetectionTiming
from agent.detection.verdict import DetectionError, Verdict

log = logging.getLogger(__name__)

CREATE_CONTEXT_PATH = "/api/gadget/v1/createcontext"
MAX_IMAGE_BYTES = 6 * 1024 * 1024
USER_AGENT = f"LayerGuard/{__version__}"
# No retry, new context or other URL fixes these: a person has to act (key, payment, network, month).
STOPPING_ERRORS = frozenset(
    {
        "OE_INVALID_API_KEY",
        "OE_API_KEY_DISABLED",
        "OE_API_KEY_BLOCKED_PAYMENT_FAILED",
        "OE_API_KEY_IP_RESTRICTED",
        "OE_FREE_USAGE_LIMIT_REACHED",
    }
)
# The service says our request was malformed: a bug in LayerGuard, worth a loud log line.
REQUEST_BUG_ERRORS = frozenset({"OE_BAD_ARGS", "OE_ARGS_PARSE_FAILED"})


class _RoutingError(DetectionError):
    """A failure of the URL or the region behind it (network, timeout, 5xx, a malformed body),
    as opposed to a well-formed API error: only this kind moves a context to its fallback URL."""


@dataclass(slots=True)
class _Context:
    context_id: str
    primary_url: str
    fallback_url: str
    on_fallback: bool = False
    # The service's last interval; None until the context's first successful Process.
    interval_s: float | None = None

    @property
    def process_url(self) -> str:
        return self.fallback_url if self.on_fallback else self.primary_url


class GadgetClient:
    """One Gadget context at a time (one per print), over a shared connection pool."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        warning_confidence: int = 3,
        pause_confidence: int = 3,
        min_interval_s: float = 0.0,
        timing: DetectionTiming = DEFAULT_TIMING,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._create_url = api_url.rstrip("/") + CREATE_CONTEXT_PATH
        self._api_key = api_key
        self._confidence = {
            "WarningConfidenceLevel": warning_confidence,
            "PauseConfidenceLevel": pause_confidence,
        }
        self._min_interval_s = min_interval_s
        self._timing = timing
        self._http = httpx.AsyncClient(
            headers={"X-API-Key": api_key, "User-Agent": USER_AGENT},
            timeout=timing.request_timeout_s,
            transport=transport,
        )
        self._context: _Context | None = None
        # Set by an error that needs a person; repeated locally so the service is not hammered.
        self._stopped: DetectionError | None = None
        self._last_clamped: float | None = None

    async def start_context(self) -> None:
        """Create a fresh context: new temporal history, primary URL again, the stop latch cleared."""
        self._context = None
        self._stopped = None
        retry_s = self._delay(self._timing.default_retry_s)
        body = await self._post(self._create_url, retry_s, json=self._confidence)
        try:
            context = _Context(
                context_id=_text(body, "ContextId"),
                primary_url=_url(body, "ProcessRequestUrl"),
                fallback_url=_url(body, "FallbackProcessRequestUrl"),
            )
        except ValueError as exc:
            raise self._error("BAD_RESPONSE", f"Create Context: {exc}", retry_s) from None
        self._context = context
        log.info("Gadget context %s created", self._redact(context.context_id))

    async def process(self, jpeg: bytes) -> Verdict:
        """Send one frame to the context's current URL and turn the answer into a Verdict."""
        if self._stopped is not None:
            raise self._stopped
        context = self._context
        if context is None:
            raise self._error("NO_CONTEXT", "no context: start_context() has not succeeded", self._retry_s())
        if len(jpeg) > MAX_IMAGE_BYTES:
            message = f"snapshot is {len(jpeg)} bytes; the service accepts at most {MAX_IMAGE_BYTES}"
            raise self._error("IMAGE_TOO_LARGE", message, self._retry_s())
        region = "fallback" if context.on_fallback else "primary"
        log.debug("Gadget Process: %d bytes to the %s URL", len(jpeg), region)
        files = {"attachment": ("snapshot.jpg", jpeg, "image/jpeg")}
        try:
            body = await self._post(context.process_url, self._retry_s(), files=files)
            verdict = self._verdict(body)
        except _RoutingError as exc:
            if not context.on_fallback:
                context.on_fallback = True
                log.warning(
                    "Gadget primary URL failed (%s); context %s uses the fallback URL from now on",
                    exc.error_type,
                    self._redact(context.context_id),
                )
            raise
        context.interval_s = verdict.next_interval_s
        return replace(verdict, next_interval_s=self._delay(verdict.next_interval_s))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, url: str, retry_s: float, **request: Any) -> dict[str, Any]:
        """POST and return the JSON object of a 200 answer; every other outcome is a DetectionError."""
        try:
            response = await self._http.post(url, **request)
        except httpx.TimeoutException as exc:
            message = f"no answer within {self._timing.request_timeout_s:g} s"
            raise self._error("TIMEOUT", message, retry_s, routing=True) from exc
        except httpx.HTTPError as exc:
            raise self._error("NETWORK", f"{type(exc).__name__}: {exc}", retry_s, routing=True) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status == 200:
            if isinstance(body, dict):
                return body
            raise self._error("BAD_RESPONSE", "HTTP 200 without a JSON object", retry_s, routing=True)
        retry_s = max(retry_s, _retry_after_s(response))
        if isinstance(body, dict) and isinstance(body.get("ErrorType"), str):
            raise self._api_error(status, body["ErrorType"], str(body.get("ErrorDetails") or ""), retry_s)
        kind = "SERVER_ERROR" if status >= 500 else "BAD_RESPONSE"
        raise self._error(kind, f"HTTP {status} without the documented error body", retry_s, routing=True)

    def _api_error(self, status: int, error_type: str, details: str, retry_s: float) -> DetectionError:
        stopped = error_type in STOPPING_ERRORS
        if stopped:
            retry_s = max(retry_s, self._delay(self._timing.default_retry_s))
        error = self._error(error_type, f"HTTP {status}: {details}", retry_s, stopped=stopped)
        if error_type in REQUEST_BUG_ERRORS:
            log.error("Gadget rejected LayerGuard's request as malformed (a bug): %s", error)
        if stopped:
            self._stopped = error
        return error

    def _verdict(self, body: dict[str, Any]) -> Verdict:
        """The Process answer as a Verdict whose interval is the service's, clamped (no user minimum)."""
        try:
            score = round(min(max(_number(body.get("Score"), "Score"), 0), 100))
            if "PrintQuality" in body:
                quality = round(min(max(_number(body["PrintQuality"], "PrintQuality"), 1), 10))
            else:  # the older docs have no PrintQuality: derive it from the score
                quality = 10 - round(score * 9 / 100)
            warning = _flag(body.get("WarningSuggested"), "WarningSuggested")
            pause = _flag(body.get("PauseSuggested"), "PauseSuggested")
            interval_s = self._clamp_interval(_service_interval(body.get("NextProcessIntervalSec")))
        except ValueError as exc:
            raise self._error("BAD_RESPONSE", f"Process: {exc}", self._retry_s(), routing=True) from None
        if body.get("FasterInspectionSuggested") is True:
            # Informational: we always follow Recommended, which is what this flag asks for.
            log.debug("Gadget suggests faster inspection")
        return Verdict(score, quality, warning, pause, interval_s)

    def _clamp_interval(self, interval_s: float) -> float:
        low, high = self._timing.interval_floor_s, self._timing.interval_ceiling_s
        clamped = min(max(interval_s, low), high)
        if clamped != interval_s and interval_s != self._last_clamped:
            self._last_clamped = interval_s  # once per odd value, not on every inspection
            log.info("Gadget interval %g s is outside %g..%g s; using %g s", interval_s, low, high, clamped)
        return clamped

    def _retry_s(self) -> float:
        """When to try Process again after a failure: 20 s (scaled) until the context's first
        success, the service's last interval after it; never sooner than the user's minimum."""
        context = self._context
        if context is None or context.interval_s is None:
            return self._delay(self._timing.first_success_retry_s)
        return self._delay(context.interval_s)

    def _delay(self, seconds: float) -> float:
        return max(seconds, self._min_interval_s)

    def _error(
        self, error_type: str, message: str, retry_s: float, *, stopped: bool = False, routing: bool = False
    ) -> DetectionError:
        """Every error leaves through here, so no message can carry the API key."""
        cls = _RoutingError if routing else DetectionError
        return cls(error_type, self._redact(message), retry_s, stopped)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _retry_after_s(response: httpx.Response) -> float:
    """A 429's Retry-After (seconds or an HTTP date) as seconds from now; 0 when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if response.status_code != 429 or not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return 0.0


def _service_interval(value: Any) -> float:
    """NextProcessIntervalSec in either documented shape: seconds, or {"Minimum", "Recommended"}
    (follow Recommended, never sooner than Minimum)."""
    if isinstance(value, dict):
        recommended = _number(value.get("Recommended"), "NextProcessIntervalSec.Recommended")
        if "Minimum" in value:
            return max(recommended, _number(value["Minimum"], "NextProcessIntervalSec.Minimum"))
        return recommended
    return _number(value, "NextProcessIntervalSec")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is missing or not a number")
    return float(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} is missing or not a boolean")
    return value


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is missing or not a string")
    return value


def _url(body: dict[str, Any], key: str) -> str:
    value = _text(body, key)
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{key} is not an http(s) URL")
    try:
        httpx.URL(value)
    except httpx.InvalidURL:
        raise ValueError(f"{key} is not a valid URL") from None
    return value
