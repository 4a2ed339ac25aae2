"""The agent's own health: whether its loops make progress, told to systemd (READY, WATCHDOG,
STATUS) and written to a small file in the state dir that `layerguard health` reads (Docker's
HEALTHCHECK). "The process exists" says nothing; a camera capture hung in its thread does."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from agent.settings import Settings
from agent.state import AgentState
from agent.systemd import SystemdNotifier
from hardware.quiet_log import LastingCondition

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
TICK_S = 15.0  # health file refresh (and watchdog ping) without a systemd watchdog
# A capture plus one Process call (30 s timeout) and a retry fit well inside this.
INSPECTION_GRACE_S = 120.0
# multi-user.target waits for a Type=notify unit: a printer that is switched off must not hold
# up the boot, so READY=1 comes after this long even without it (STATUS says what is missing).
READY_WAIT_S = 30.0


class Heartbeat:
    """Whether the inspection loop keeps its own schedule while it is meant to be inspecting.

    The agent tells it when the next inspection is due and whether the session is active; an
    active session past its due time by more than the grace is stalled.
    """

    def __init__(self, grace_s: float = INSPECTION_GRACE_S, clock: Callable[[], float] = time.time) -> None:
        self._grace_s = grace_s
        self._clock = clock
        self._expecting = False
        self._next_at = 0.0
        self._active_since: float | None = None

    def begin(self) -> None:
        """A new print's session: its first attempt is due now."""
        self._expecting, self._next_at = True, self._clock()

    def scheduled(self, next_at: float) -> None:
        """The session finished an attempt (verdict or error) and plans the next at `next_at`."""
        self._expecting, self._next_at = True, next_at

    def finished(self) -> None:
        """The session ended (print over, or the service stopped inspections): nothing is due."""
        self._expecting = False

    def set_active(self, active: bool) -> None:
        if not active:
            self._active_since = None
        elif self._active_since is None:
            self._active_since = self._clock()

    def stalled(self) -> str | None:
        """Why the agent is not making progress, or None when it is."""
        if not self._expecting or self._active_since is None:
            return None
        late = self._clock() - (max(self._next_at, self._active_since) + self._grace_s)
        if late <= 0:
            return None
        return f"inspection overdue by {late + self._grace_s:.0f} s (camera or detection hung?)"


class Supervised(Protocol):
    """What supervise() reads of the agent (agent.app.Agent, which holds a Heartbeat): a protocol,
    so that this module and agent.app do not import each other."""

    settings: Settings
    state: AgentState
    heartbeat: Heartbeat

    async def wait_for(self, predicate: Callable[[AgentState], bool]) -> None: ...


@dataclass(frozen=True)
class Health:
    """What the health file holds."""

    at: float
    interval_s: float
    pid: int
    print_state: str
    stalled: str | None

    def problem(self, now: float) -> str | None:
        """Why this record says the agent is unhealthy, or None."""
        age = now - self.at
        if age > 3 * self.interval_s + 5:
            return f"the agent last reported {age:.0f} s ago (pid {self.pid}): is it running?"
        return f"the agent is stalled: {self.stalled}" if self.stalled else None


def health_path(state_dir: Path) -> Path:
    return state_dir / HEALTH_FILE


def write_health(path: Path, health: Health) -> None:
    """Atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(health)))
    os.replace(partial, path)


def read_health(path: Path) -> Health:
    """Raises OSError when missing or unreadable, ValueError when malformed."""
    try:
        return Health(**json.loads(path.read_text()))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a health record: {exc}") from None


def check_health(state_dir: Path, now: float | None = None) -> str | None:
    """`layerguard health`: the problem, or None when the running agent is healthy."""
    path = health_path(state_dir)
    try:
        health = read_health(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}: the agent has not started (or agent.state_dir differs)"
    except ValueError as exc:
        return str(exc)
    return health.problem(time.time() if now is None else now)


async def supervise(
    agent: Supervised,
    notifier: SystemdNotifier,
    interval_s: float | None = None,
    ready_wait_s: float = READY_WAIT_S,
) -> None:
    """Tell systemd when the agent is up, and keep pinging its watchdog and refreshing the health
    file for as long as the loops make progress. Runs until cancelled, next to `agent.run()`."""
    tick = interval_s or notifier.watchdog_interval_s or TICK_S
    async with asyncio.TaskGroup() as group:
        group.create_task(_announce_ready(agent, notifier, ready_wait_s))
        group.create_task(_keep_alive(agent, notifier, tick))


async def _announce_ready(agent: Supervised, notifier: SystemdNotifier, wait_s: float) -> None:
    try:
        async with asyncio.timeout(wait_s):
            await agent.wait_for(lambda s: s.print_state != "offline")
    except TimeoutError:
        log.warning("The printer on %s is not connected yet; still trying", agent.settings.printer.port)
    notifier.ready(_status(agent))


async def _keep_alive(agent: Supervised, notifier: SystemdNotifier, tick: float) -> None:
    path = health_path(agent.settings.agent.state_dir)
    reported: str | None = None
    status = ""
    unwritable = LastingCondition(log, f"Health file {path}")  # rewritten every tick while it fails
    while True:
        stalled = agent.heartbeat.stalled()
        if stalled is None:
            notifier.watchdog()
        elif stalled != reported:
            log.error("%s: no watchdog ping until it recovers", stalled)
        reported = stalled
        try:
            write_health(path, Health(time.time(), tick, os.getpid(), agent.state.print_state, stalled))
        except OSError as exc:
            unwritable.failed(exc.strerror or str(exc))
        else:
            unwritable.recovered()
        if (now_status := stalled or _status(agent)) != status:
            status = now_status
            notifier.status(status)
        await asyncio.sleep(tick)


def _status(agent: Supervised) -> str:
    """One line for `systemctl status`."""
    state = agent.state.print_state
    if state == "offline":
        return f"waiting for the printer on {agent.settings.printer.port}"
    return f"printer {state}" + (f": {agent.state.file}" if agent.state.file else "")
