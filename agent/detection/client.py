"""GadgetClient: the Detector that asks OctoEverywhere's Gadget API whether a print has failed.

It fixes the official SDK's known weaknesses (see the Gadget reference): it switches to the fallback
URL only for connection- or server-level failures, accepts both shapes of NextProcessIntervalSec,
tells apart errors a retry can fix from errors that need a person (`DetectionError.stopped`),
backs off when failures repeat, counts what it spends, keeps the print's context across restarts,
sends a User-Agent, and never sleeps itself: the caller waits `next_interval_s` / `retry_after_s`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from agent import __version__
from agent.detection.base import MAX_IMAGE_BYTES
from agent.detection.context import GadgetContext, PrintKey
from agent.detection.timing import DEFAULT_TIMING, DetectionTiming
from agent.detection.usage import FREE_USAGE_ERROR, UsageMeter
from agent.detection.verdict import DetectionError, Verdict
from agent.store import JsonRecord
from hardware.bounded_http import IDENTITY, AnswerTooLarge, bounded_request
from hardware.quiet_log import LastingCondition

log = logging.getLogger(__name__)

CREATE_CONTEXT_PATH = "/api/gadget/v1/createcontext"
# Every documented answer is a small flat JSON object; anything larger is refused unread.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = f"LayerGuard/{__version__}"
# No retry, new context or other URL fixes these: a person has to act (key, payment, network).
KEY_ERRORS = frozenset(
    {
        "OE_INVALID_API_KEY",
        "OE_API_KEY_DISABLED",
        "OE_API_KEY_BLOCKED_PAYMENT_FAILED",
        "OE_API_KEY_IP_RESTRICTED",
    }
)
# Errors that stop inspecting: the key errors until a restart or the next print, the free
# allowance until the next calendar month.
STOPPING_ERRORS = KEY_ERRORS | {FREE_USAGE_ERROR}
# The service says our request was malformed: a bug in LayerGuard, worth a loud log line.
REQUEST_BUG_ERRORS = frozenset({"OE_BAD_ARGS", "OE_ARGS_PARSE_FAILED"})


class _RoutingError(DetectionError):
    """A failure of the URL or the region behind it (network, timeout, 5xx, a malformed body),
    as opposed to a well-formed API error: only this kind moves a context to its fallback URL."""


class GadgetClient:
    """One Gadget context at a time (one per print), over a shared connection pool.

    `usage` counts the calls (and may cap them); `context_record` keeps the current print's
    context so that a restarted agent continues it. Both are optional, for `layerguard doctor`.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        warning_confidence: int = 3,
        pause_confidence: int = 3,
        min_interval_s: float = 0.0,
        timing: DetectionTiming = DEFAULT_TIMING,
        usage: UsageMeter | None = None,
        context_record: JsonRecord | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._create_url = api_url.rstrip("/") + CREATE_CONTEXT_PATH
        self._api_key = api_key
        self._confidence = {
            "WarningConfidenceLevel": warning_confidence,
            "PauseConfidenceLevel": pause_confidence,
        }
        self._min_interval_s = min_interval_s
        self._timing = timing
        self.usage = usage or UsageMeter(clock=clock)
        self._record = context_record
        self._clock = clock
        self._http = httpx.AsyncClient(
            headers={"X-API-Key": api_key, "User-Agent": USER_AGENT, **IDENTITY},
            timeout=timing.request_timeout_s,
            transport=transport,
        )
        self._context: GadgetContext | None = None
        self._print = PrintKey()
        # Set by a key error; repeated locally so the service is not hammered.
        self._stopped: DetectionError | None = None
        self._failures = 0  # attempts in a row without an answer we could use
        self._last_odd: tuple[float | None] | None = None  # the odd interval logged last
        # A server answering with megabytes does so on every call: logged when it starts and ends.
        self._oversized = LastingCondition(log, "Gadget answers")

    async def open_context(self, print_key: PrintKey) -> float:
        """A print began, or was found running after a restart: continue the context kept for it,
        else create one. Returns the seconds the first Process call must still wait: the kept
        schedule holds even for a new context, so a print wrongly taken for a new one after a
        restart is at worst in a new context, never asked about early."""
        self._print = print_key
        now = self._clock()
        kept = GadgetContext.from_record(self._record.load()) if self._record else None
        if kept is not None and kept.continues(print_key, now, self._timing.context_max_age_s):
            self._context, self._stopped, self._failures = kept, None, 0
            log.info(
                "Gadget context %s continued for %s", self._redact(kept.context_id), _describe(print_key)
            )
            return max(0.0, kept.next_call_at - now)
        await self.start_context()
        if kept is None or not 0 <= now - kept.created_at < self._timing.context_max_age_s:
            return 0.0
        return max(0.0, kept.next_call_at - now)

    def note_position(self, sd_position: int | None) -> None:
        """The print read on to `sd_position`; kept with the context at the next Process call."""
        if self._context is not None and sd_position is not None:
            self._context.sd_position = sd_position

    async def start_context(self) -> None:
        """Create a fresh context: new temporal history, primary URL again, the stop latch cleared."""
        self._context = None
        self._stopped = None
        retry_s = self._backoff(self._timing.default_retry_s)
        try:
            body = await self._post(self._create_url, retry_s, json=self._confidence)
            context = GadgetContext(
                context_id=_text(body, "ContextId"),
                primary_url=_url(body, "ProcessRequestUrl"),
                fallback_url=_url(body, "FallbackProcessRequestUrl"),
                file=self._print.file,
                created_at=self._clock(),
                sd_size=self._print.sd_size,
                sd_position=self._print.sd_position,
            )
        except ValueError as exc:
            self._failures += 1
            raise self._error("BAD_RESPONSE", f"Create Context: {exc}", retry_s) from None
        except DetectionError:
            self._failures += 1
            raise
        self._context, self._failures = context, 0
        self._save(context)
        log.info("Gadget context %s created", self._redact(context.context_id))

    def end_context(self) -> None:
        """The print is over: forget its context, so that the next print gets a new one."""
        self._context = None
        self._print = PrintKey()
        if self._record:
            self._record.delete()

    async def process(self, jpeg: bytes) -> Verdict:
        """Send one frame to the context's current URL and turn the answer into a Verdict.

        Creates the context first when there is none (the last attempt failed, or the service
        forgot it)."""
        if self._stopped is not None:
            raise self._stopped
        self.usage.check()
        if self._context is None:
            await self.start_context()
        context = self._context
        assert context is not None  # start_context() raises otherwise
        self._check_size(jpeg)
        retry_s = self._retry_s()
        region = "fallback" if context.on_fallback else "primary"
        log.debug("Gadget Process: %d bytes to the %s URL", len(jpeg), region)
        files = {"attachment": ("snapshot.jpg", jpeg, "image/jpeg")}
        started = self._clock()
        # Kept before the call goes out: an agent stopped while the answer is on its way (a
        # restart, a crash) must not ask again sooner than it would have after that answer.
        context.next_call_at = started + retry_s
        self._save(context)
        self.usage.count_call()
        try:
            verdict = self._verdict(await self._post(context.process_url, retry_s, files=files))
        except DetectionError as exc:
            self._failures += 1
            self._after_failure(context, exc)
            context.next_call_at = started + exc.retry_after_s
            self._save(context)
            raise
        self._failures = 0
        context.interval_s, context.confirmed = verdict.next_interval_s, True
        verdict = replace(verdict, next_interval_s=self._delay(verdict.next_interval_s))
        context.next_call_at = started + verdict.next_interval_s
        self._save(context)
        return verdict

    async def aclose(self) -> None:
        await self._http.aclose()

    def _after_failure(self, context: GadgetContext, exc: DetectionError) -> None:
        """Routing: a dead URL moves the context to its fallback; a forgotten context is dropped."""
        if isinstance(exc, _RoutingError) and not context.on_fallback:
            context.on_fallback = True
            log.warning(
                "Gadget primary URL failed (%s); context %s uses the fallback URL from now on",
                exc.error_type,
                self._redact(context.context_id),
            )
        elif exc.error_type in REQUEST_BUG_ERRORS and _unknown_context(context, exc):
            log.warning(
                "Gadget no longer knows context %s (%s); the next attempt creates a new one",
                self._redact(context.context_id),
                exc.message,
            )
            self._context = None
        elif exc.error_type in REQUEST_BUG_ERRORS:
            log.error("Gadget rejected LayerGuard's request as malformed (a bug): %s", exc)

    def _check_size(self, jpeg: bytes) -> None:
        """A frame over the service's limit is refused before it is paid for. The capture path fits
        frames (agent/camera.py); one over the limit here is a bug of whoever passed it."""
        if len(jpeg) > MAX_IMAGE_BYTES:
            message = f"the frame is {len(jpeg)} bytes, over the service's {MAX_IMAGE_BYTES}"
            raise self._error("IMAGE_TOO_LARGE", message, self._retry_s())

    def _save(self, context: GadgetContext) -> None:
        if self._record and context is self._context:
            self._record.save(context.to_record())

    async def _post(self, url: str, retry_s: float, **request: Any) -> dict[str, Any]:
        """POST and return the JSON object of a 200 answer; every other outcome is a DetectionError.

        The whole call (connect, send, answer) ends at `request_timeout_s`, and an answer over
        MAX_ANSWER_BYTES is refused unread: both count as failures of the URL (routing)."""
        deadline_s = self._timing.request_timeout_s
        try:
            answer = await bounded_request(
                self._http, "POST", url, deadline_s=deadline_s, max_bytes=MAX_ANSWER_BYTES, **request
            )
        except (TimeoutError, httpx.TimeoutException) as exc:
            message = f"no whole answer within {deadline_s:g} s"
            raise self._error("TIMEOUT", message, retry_s, routing=True) from exc
        except AnswerTooLarge as exc:
            self._oversized.failed(f"refused unread: {exc}")
            raise self._error("TOO_LARGE", str(exc), retry_s, routing=True) from None
        except httpx.HTTPError as exc:
            raise self._error("NETWORK", f"{type(exc).__name__}: {exc}", retry_s, routing=True) from exc
        self._oversized.recovered()
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = None
        status = answer.status
        if status == 200:
            if isinstance(body, dict):
                return body
            raise self._error("BAD_RESPONSE", "HTTP 200 without a JSON object", retry_s, routing=True)
        retry_s = max(retry_s, _retry_after_s(status, answer.headers))
        if isinstance(body, dict) and isinstance(body.get("ErrorType"), str):
            raise self._api_error(status, body["ErrorType"], str(body.get("ErrorDetails") or ""), retry_s)
        kind = "SERVER_ERROR" if status >= 500 else "BAD_RESPONSE"
        raise self._error(kind, f"HTTP {status} without the documented error body", retry_s, routing=True)

    def _api_error(self, status: int, error_type: str, details: str, retry_s: float) -> DetectionError:
        message = f"HTTP {status}: {details}"
        if error_type == FREE_USAGE_ERROR:
            self.usage.note_allowance_used()
            return self.usage.month_stop(error_type, self._redact(message))
        if error_type in KEY_ERRORS:
            self._stopped = self._error(error_type, message, math.inf, stopped=True)
            return self._stopped
        return self._error(error_type, message, retry_s)

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
        except ValueError as exc:
            raise self._error("BAD_RESPONSE", f"Process: {exc}", self._retry_s(), routing=True) from None
        interval_s = self._clamp_interval(_service_interval(body.get("NextProcessIntervalSec")))
        if body.get("FasterInspectionSuggested") is True:
            # Informational: we always follow Recommended, which is what this flag asks for.
            log.debug("Gadget suggests faster inspection")
        return Verdict(score, quality, warning, pause, interval_s)

    def _clamp_interval(self, interval_s: float | None) -> float:
        """The service's interval within sane bounds; a missing one is the default retry delay."""
        low, high = self._timing.interval_floor_s, self._timing.interval_ceiling_s
        wanted = self._timing.default_retry_s if interval_s is None else interval_s
        clamped = min(max(wanted, low), high)
        odd = interval_s is None or clamped != interval_s
        if odd and self._last_odd != (interval_s,):  # once per odd value, not on every inspection
            self._last_odd = (interval_s,)
            if interval_s is None:
                what = "no usable NextProcessIntervalSec"
            else:
                what = f"interval {interval_s:g} s is outside {low:g}..{high:g} s"
            log.info("Gadget answer has %s; using %g s", what, clamped)
        return clamped

    def _retry_s(self) -> float:
        """When to try Process again if this attempt fails: 20 s (scaled) until the context's first
        success, the service's last interval after it, doubled for each failure in a row."""
        context = self._context
        if context is None or context.interval_s is None:
            return self._backoff(self._timing.first_success_retry_s)
        return self._backoff(context.interval_s)

    def _backoff(self, base_s: float) -> float:
        wait = min(base_s * 2 ** min(self._failures, 20), self._timing.backoff_ceiling_s)
        return self._delay(max(base_s, wait))

    def _delay(self, seconds: float) -> float:
        """Never sooner than the user's minimum, nor than the budget's spread allows."""
        return max(seconds, self._min_interval_s, self.usage.spread_interval_s())

    def _error(
        self, error_type: str, message: str, retry_s: float, *, stopped: bool = False, routing: bool = False
    ) -> DetectionError:
        """Every error leaves through here, so no message can carry the API key."""
        cls = _RoutingError if routing else DetectionError
        return cls(error_type, self._redact(message), retry_s, stopped)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _describe(key: PrintKey) -> str:
    if key.file is not None:
        return key.file
    return "an unnamed print" + (f" of {key.sd_size} bytes" if key.sd_size is not None else "")


def _unknown_context(context: GadgetContext, error: DetectionError) -> bool:
    """Whether a request error means the service forgot the context: it says so, or the context
    was continued from before a restart and has not worked since."""
    return not context.confirmed or "context" in error.message.lower()


def _retry_after_s(status: int, headers: httpx.Headers) -> float:
    """A 429's Retry-After (seconds or an HTTP date) as seconds from now; 0 when absent or unreadable."""
    value = headers.get("Retry-After")
    if status != 429 or not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return 0.0


def _service_interval(value: Any) -> float | None:
    """NextProcessIntervalSec in either documented shape: seconds, or {"Minimum", "Recommended"}
    (follow Recommended, never sooner than Minimum); None when missing or not a number."""
    try:
        if isinstance(value, dict):
            recommended = _number(value.get("Recommended"), "NextProcessIntervalSec.Recommended")
            if "Minimum" in value:
                return max(recommended, _number(value["Minimum"], "NextProcessIntervalSec.Minimum"))
            return recommended
        return _number(value, "NextProcessIntervalSec")
    except ValueError:
        return None


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
