"""Which events reach a person: once per thing that needs one, never a storm.

An episode is a stretch of one print between its start (or a resume) and the next resume: each
kind of notification is sent at most once in it, so a warning that persists, flickers, or is seen
again after a reconnect is one notification, and a new failure after a resume is a new one. A pause
the user asked for, a detection hiccup that retries by itself, and anything while monitoring is
switched off are not alerts. On top, no more than `max_sent` in any `window_s`, whatever happens.

Pure and synchronous over a plain dict: the sink persists `record` in the state directory, so a
restart or a reconnect finds the print it already told about and does not tell it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

RATE_MAX_SENT = 5
RATE_WINDOW_S = 600.0
PRINT_ENDS = ("print_finished", "print_cancelled", "print_lost", "printer_error")


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str | None  # the notify event to send, or None
    why: str = ""  # why not, when worth a log line (rate limit)


class EpisodeRules:
    def __init__(
        self,
        events: Collection[str],
        reminder_after_s: float,
        record: Mapping[str, Any] | None = None,
        max_sent: int = RATE_MAX_SENT,
        window_s: float = RATE_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events = frozenset(events)
        self.reminder_after_s = reminder_after_s
        self.max_sent, self.window_s = max_sent, window_s
        self.clock = clock
        # file, open (seen started, not ended), episode, sent (kinds this episode), paused_at, recent
        self.record: dict[str, Any] = {
            "file": None,
            "open": False,
            "episode": 0,
            "sent": [],
            "paused_at": None,
            "recent": [],
        }
        if record:
            self.record.update({k: v for k, v in record.items() if k in self.record})
        self.changed = False  # the record needs saving

    def on_event(self, event: Mapping[str, Any], state: Mapping[str, Any]) -> Decision:
        """Bookkeeping for every event, then whether it notifies."""
        kind = str(event.get("type"))
        self._follow(kind, event)
        if kind == "detection_error" and event.get("stopped") and "detection_stopped" in self.events:
            kind = "detection_stopped"
        if kind in ("pause_failed", "heaters_off") and event.get("by", "agent") != "agent":
            return Decision(None)  # the user asked for it and sees the outcome
        return self._allow(kind, state)

    def on_state(self, state: Mapping[str, Any]) -> None:
        """A print LayerGuard paused that prints again was resumed, even when the resume itself went
        unseen (made on the printer's panel while the agent restarted): a new episode."""
        if self.record["paused_at"] is not None and state.get("print_state") == "printing":
            self._new_episode()

    def reminder_at(self) -> float | None:
        """When the unattended-pause reminder is due (wall time), or None."""
        paused_at = self.record["paused_at"]
        if paused_at is None or not self.reminder_after_s or "pause_reminder" not in self.events:
            return None
        if "pause_reminder" in self.record["sent"]:
            return None
        return float(paused_at) + self.reminder_after_s

    def on_reminder(self, state: Mapping[str, Any]) -> Decision:
        """The reminder's time came: it notifies if LayerGuard's pause still holds."""
        due = self.reminder_at()
        if due is None or self.clock() < due or state.get("print_state") != "paused":
            return Decision(None)
        return self._allow("pause_reminder", state)

    def paused_for_s(self) -> float | None:
        paused_at = self.record["paused_at"]
        return None if paused_at is None else self.clock() - float(paused_at)

    def _follow(self, kind: str, event: Mapping[str, Any]) -> None:
        r = self.record
        if kind == "print_started":
            if r["open"] and event.get("file") == r["file"]:
                return  # the same print, found again after a reconnect or a restart
            self._update(file=event.get("file"), open=True)
            self._new_episode()
        elif kind == "print_resumed":
            self._new_episode()
        elif kind == "failure_paused":
            self._update(paused_at=self.clock())
        elif kind in PRINT_ENDS:
            self._update(open=False, paused_at=None)

    def _new_episode(self) -> None:
        self._update(episode=int(self.record["episode"]) + 1, sent=[], paused_at=None)

    def _allow(self, kind: str, state: Mapping[str, Any]) -> Decision:
        if kind not in self.events or kind in self.record["sent"]:
            return Decision(None)
        if state.get("monitoring") is False:
            return Decision(None)
        now = self.clock()
        recent = [t for t in self.record["recent"] if now - t < self.window_s]
        if len(recent) >= self.max_sent:
            return Decision(None, f"{self.max_sent} notifications in {self.window_s:g} s already")
        self._update(sent=[*self.record["sent"], kind], recent=[*recent, now])
        return Decision(kind)

    def _update(self, **values: Any) -> None:
        if any(self.record.get(k) != v for k, v in values.items()):
            self.record.update(values)
            self.changed = True
