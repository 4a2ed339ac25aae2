"""Figure 2, schedule slack, as the service sees it: how much later than the interval it asked
for each Process call arrived, per context, from the stand-in's call records (`Call.at` is when
the request arrived). The agent's capture time is inside each gap, as the goal asks."""

from __future__ import annotations

from collections.abc import Iterable

from sim.gadget_service import Call


def slack_by_context(calls: Iterable[Call]) -> dict[str, list[float]]:
    """Seconds each answered Process call came after the previous answer's interval had passed."""
    previous: dict[str, Call] = {}
    slack: dict[str, list[float]] = {}
    for call in sorted(calls, key=lambda c: c.at):
        if call.endpoint != "process" or call.status != 200 or call.context_id is None:
            continue
        before = previous.get(call.context_id)
        if before is not None:
            gap = call.at - before.at - allowed_interval_s(before.answer)
            slack.setdefault(call.context_id, []).append(gap)
        previous[call.context_id] = call
    return slack


def allowed_interval_s(answer: object) -> float:
    """NextProcessIntervalSec in either documented shape (seconds, or Minimum/Recommended)."""
    if not isinstance(answer, dict):
        raise ValueError("a Process call without an answer")
    value = answer["NextProcessIntervalSec"]
    if isinstance(value, dict):
        return float(max(value.get("Recommended", 0), value.get("Minimum", 0)))
    return float(value)
