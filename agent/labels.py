"""The user's verdict on the last alert (false alarm / real failure), and the quiet it buys.

A label goes on the output stream as an `alert_labelled` event: the history writes it on the last
alert episode. A false alarm on the running print also mutes the guard (agent.guard: until the
score climbs clearly above the false alarm's), and a print LayerGuard paused for it is resumed
through the one command path (agent/commands.py), which heats back up after the cooldown. A
snooze mutes the guard for the rest of the print without a label.
"""

from __future__ import annotations

import logging

from agent.guard import Guard
from agent.history.labels import FALSE_ALARM
from agent.lifecycle import PrintState, PrintTracker
from agent.state import AgentState

log = logging.getLogger("agent")


def apply_label(guard: Guard, tracker: PrintTracker, state: AgentState, label: str) -> tuple[bool, bool]:
    """Takes the user's label of the last alert: (muted, resume). A false alarm on the running
    print mutes the guard; resume is True when LayerGuard's own pause was that false alarm."""
    muted = resume = False
    if label == FALSE_ALARM and tracker.in_print:
        muted = guard.note_false_alarm()
        resume = muted and tracker.state is PrintState.PAUSED and state.paused_by == "agent"
    if muted:
        log.warning(
            "Last alert labelled a false alarm: alerts muted for this print until the score reaches %d%s",
            guard.muted_below,
            "; resuming the print" if resume else "",
        )
    else:
        log.info("Last alert labelled %s", label.replace("_", " "))
    state.alerts_muted = guard.muted
    return muted, resume


def snooze(guard: Guard, state: AgentState) -> None:
    """Mutes warnings and pauses for the rest of the running print."""
    log.warning("Alerts snoozed for the rest of this print")
    guard.snooze()
    state.alerts_muted = guard.muted
