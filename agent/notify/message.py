"""What a notification says, from an event and what the agent knew when it happened.

Written for a phone's lock screen: the title names the printer and what needs a person, the
body's first line carries the facts (file, progress, score) and the second what LayerGuard did.
No settings and no I/O here, so every wording is tested as plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MASK = "********"


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # the notify event name (settings.NOTIFY_EVENTS)
    title: str
    body: str
    alert: bool = True  # Apprise's "failure"/"warning" look rather than "info"


def compose(kind: str, event: Mapping[str, Any], state: Mapping[str, Any], printer_id: str) -> Message:
    """`event` is the event payload (for pause_reminder: `paused_for_s`), `state` the last state."""
    file = event.get("file") or state.get("file")
    facts = _facts(file, state.get("progress"), event.get("score", state.get("score")))
    message = str(event.get("message") or "").strip()
    title, did, alert = _WORDING.get(kind, (kind.replace("_", " "), "", False))
    if kind == "failure_warning" and event.get("action") == "warn":
        did = "LayerGuard only warns (detection.action = warn): the print goes on."
    if kind == "pause_reminder":
        did = f"Paused by LayerGuard {_duration(event.get('paused_for_s'))} ago and not resumed or cancelled."
    if kind in ("detection_stopped", "detection_error"):
        error_type = event.get("error_type", "error")
        message = f"{error_type}: {message}" if message else str(error_type)
    lines = [facts, *(line for line in (message, did) if line)]
    return Message(kind, f"{printer_id}: {title}", "\n".join(lines), alert)


def trial_message(printer_id: str, camera_problem: str | None) -> Message:
    frame = (
        f"The camera failed ({camera_problem}); the picture is a placeholder."
        if camera_problem
        else "The picture is a frame just captured by the camera."
    )
    body = f"Notifications from LayerGuard reach you here.\n{frame}"
    return Message("test", f"{printer_id}: LayerGuard test notification", body, alert=False)


def redact(message: Message, secrets: Iterable[str]) -> Message:
    """The net under texts that come from elsewhere (a printer's or a service's error message)."""
    secrets = list(secrets)
    return Message(message.kind, mask(message.title, secrets), mask(message.body, secrets), message.alert)


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


# kind -> (title, what LayerGuard did, alert)
_WORDING: dict[str, tuple[str, str, bool]] = {
    "failure_warning": (
        "possible print failure",
        "LayerGuard warned; it pauses the print if the failure is confirmed.",
        True,
    ),
    "failure_paused": (
        "print PAUSED, failure detected",
        "LayerGuard paused the printer. Look at the print, then resume or cancel it.",
        True,
    ),
    "pause_failed": (
        "could NOT pause the print",
        "LayerGuard sent the pause twice and the printer did not confirm it. Go to the printer.",
        True,
    ),
    "printer_error": ("printer error", "The printer stopped with an error.", True),
    "heaters_off": ("heaters off during the pause", "", False),
    "detection_stopped": (
        "failure detection stopped",
        "Meanwhile the print goes on without being watched.",
        True,
    ),
    "detection_error": ("failure detection error", "", False),
    "pause_reminder": ("print still paused", "", True),
    "print_stalled": (
        "print STALLED",
        "The printer says it is printing, but neither its position nor the picture has moved. "
        "A jammed printer or a hung board? Go to the printer.",
        True,
    ),
    "print_still": (
        "print stopped moving, inspections paused",
        "The printer is out of reach and the picture has not changed: LayerGuard stopped paying "
        "for inspections until the printer answers or the picture moves.",
        False,
    ),
}


def _facts(file: str | None, progress: Any, score: Any) -> str:
    parts = [file or "unknown file"]
    if isinstance(progress, int | float):
        parts.append(f"{progress:.0f} % done")
    if isinstance(score, int | float):
        parts.append(f"failure score {score:.0f}/100")
    return ", ".join(parts)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "a while"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
