"""The Gadget protocol's time constants, in one value so the demo and tests can scale them down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DetectionTiming:
    # The deadline of a whole call, connect + send + the complete answer: a server that answers
    # slowly, or drips its answer, costs at most this (then the call fails as TIMEOUT).
    request_timeout_s: float = 30.0
    # The documented wait between attempts until a context has produced its first verdict.
    first_success_retry_s: float = 20.0
    # Bounds for NextProcessIntervalSec: the newest docs allow 5 s; above 30 min a print goes unwatched.
    interval_floor_s: float = 5.0
    interval_ceiling_s: float = 1800.0
    # When the protocol names no delay: a failed Create Context, or a Process answer without an interval.
    default_retry_s: float = 30.0
    # Failures in a row double the wait before the next attempt, up to this.
    backoff_ceiling_s: float = 600.0
    # The service forgets a context after 14 days; a kept one older than this is not continued.
    context_max_age_s: float = 14 * 24 * 3600.0


DEFAULT_TIMING = DetectionTiming()
