"""The agent's published state: the retained JSON on `<p>/state`, and the event payloads.

Field names are a contract with users and Home Assistant (see the README); extend, never rename.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


def iso_now() -> str:
    return to_iso(datetime.now(UTC).timestamp())


def to_iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class AgentState:
    print_state: str = "offline"
    file: str | None = None
    progress: float | None = None
    monitoring: bool = True
    score: int | None = None
    print_quality: int | None = None
    warning: bool = False
    pause_suggested: bool = False
    last_inspection: str | None = None
    next_inspection: str | None = None
    detection: str = "idle"  # idle, starting, ok, retrying: <why>, stopped: <why>
    camera: str = "idle"  # idle, ok, error: <why>
    paused_by: str | None = None  # agent, user, printer: who paused the current print
    pause_failed: bool = False  # LayerGuard's last pause was not confirmed (cleared by the next change)
    api_calls_month: int = 0  # Gadget Process calls this calendar month (UTC)
    api_calls_budget: int | None = None  # detection.monthly_budget, None when uncapped
    api_calls_month_pi: int = 0  # ... of every printer's agent on this Pi together
    api_calls_budget_scope: str = "pi"  # detection.budget_scope: whose calls the budget caps (pi, printer)
    print_still: bool = False  # the printer is out of reach and the picture still: no inspections
    alerts_muted: str | None = None  # for this print: snoozed, or false_alarm (until the score climbs)
    notify: str = "off"  # off (no notify.urls), ok, error: <service>: the last notification to it was lost

    def as_payload(self) -> dict[str, Any]:
        return asdict(self)

    def clear_inspection(self) -> None:
        """A new print: the last print's verdict says nothing about this one."""
        self.score = None
        self.print_quality = None
        self.warning = False
        self.pause_suggested = False
        self.last_inspection = None
        self.next_inspection = None


def event_payload(event_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": event_type, "at": iso_now(), **fields}
