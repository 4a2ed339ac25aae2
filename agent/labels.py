"""The `label` and `snooze` commands: the user's verdict on the last alert, and the quiet it buys.

A label (false_alarm / real_failure) goes on the output stream as an `alert_labelled` event: the
history writes it on the last alert episode. A false alarm on the running print also mutes the
guard (agent.guard: until the score climbs clearly above the false alarm's), and a print
LayerGuard paused for it is resumed through the agent's one resume path (which heats back up
after the cooldown). A snooze mutes the guard for the rest of the print without a label.
Kept apart from the agent's command dispatch, which calls these two functions.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agent.history.labels import FALSE_ALARM, parse_label
from agent.lifecycle import PrintState

if TYPE_CHECKING:
    from agent.app import Agent

log = logging.getLogger("agent")


def label_last_alert(agent: Agent, payload: str) -> None:
    label = parse_label(payload)
    if label is None:
        log.warning("Ignoring label command %r: expected false_alarm or real_failure", payload[:40])
        return
    muted = resume = False
    if label == FALSE_ALARM and agent.tracker.in_print:
        muted = agent.guard.note_false_alarm()
        resume = muted and agent.tracker.state is PrintState.PAUSED and agent.state.paused_by == "agent"
    if muted:
        log.warning(
            "Last alert labelled a false alarm: alerts muted for this print until the score reaches %d%s",
            agent.guard.muted_below,
            "; resuming the print" if resume else "",
        )
    else:
        log.info("Last alert labelled %s", label.replace("_", " "))
    agent.state.alerts_muted = agent.guard.muted
    agent._emit(
        "alert_labelled",
        label=label,
        file=agent.tracker.file,
        score=agent.guard.episode_peak if muted else None,
        muted=muted,
        resumed=resume,
    )
    agent._state_changed()
    if resume:
        agent._spawn(agent._resume())


def snooze(agent: Agent) -> None:
    if not agent.tracker.in_print:
        log.info(
            "Ignoring command snooze: no print is running (the printer is %s)", agent.tracker.state.value
        )
        return
    log.warning("Alerts snoozed for the rest of this print")
    agent.guard.snooze()
    agent.state.alerts_muted = agent.guard.muted
    agent._emit("alerts_snoozed", file=agent.tracker.file)
    agent._state_changed()
