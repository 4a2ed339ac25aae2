"""Figure 2, schedule slack, as the service sees it: how much later than the interval it asked
for each Process call arrived, per context.

`Call.at` is stamped once the stand-in has decoded and scored the frame, which adds a few
milliseconds of its own jitter to every gap; `ArrivalStampedStandIn` also notes when each
request had been read, before any of that work, and slack is measured between those moments.
The agent's capture time is inside the gap, as the goal asks.
"""

from __future__ import annotations

import time
from collections import defaultdict

from sim.gadget_service import GadgetStandIn, Reply, _Request


class ArrivalStampedStandIn(GadgetStandIn):
    """The stand-in, recording per context when each Process request arrived (time.monotonic())."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.arrivals: dict[str, list[float]] = defaultdict(list)

    def _serve(self, request: _Request) -> Reply:
        if request.endpoint == "process" and request.context_id is not None:
            # One context's calls never overlap, so its arrivals and its call records pair up in order.
            self.arrivals[request.context_id].append(time.monotonic())
        return super()._serve(request)

    def slack_by_context(self) -> dict[str, list[float]]:
        """Seconds each Process call arrived after the previous answer's interval had passed."""
        answers: dict[str, list[object]] = defaultdict(list)
        for call in self.calls:
            if call.endpoint == "process" and call.context_id is not None:
                answers[call.context_id].append(call.answer)
        slack: dict[str, list[float]] = {}
        for context, arrived in self.arrivals.items():
            pairs = zip(arrived, answers[context], strict=False)
            slack[context] = [
                later - earlier - allowed_interval_s(answer)
                for (earlier, answer), later in zip(pairs, arrived[1:], strict=False)
                if answer is not None
            ]
        return slack


def allowed_interval_s(answer: object) -> float:
    """NextProcessIntervalSec in either documented shape (seconds, or Minimum/Recommended)."""
    if not isinstance(answer, dict):
        raise ValueError("a Process call without an answer")
    value = answer["NextProcessIntervalSec"]
    if isinstance(value, dict):
        return float(max(value.get("Recommended", 0), value.get("Minimum", 0)))
    return float(value)
