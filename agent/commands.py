"""Commands into the agent, from every interface (MQTT, the page): one path, every one answered.

A command is carried out, queued until the pause or resume under way ends, or refused with the
reason; each answer is published as a `command_answer` event (`command`, `result`, `reason`,
`source`, `id`), so Home Assistant and the page show what became of a button press. A command
that changes the printer is answered twice: `accepted` (or `queued`), then `done` once the
printer confirmed it, or `failed` / `refused` with the reason.

Adding a command is one entry in `COMMANDS`: when it may run (`ready`), what it does (`run`),
and whether it waits for the printer (`printer`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.history.labels import parse_label
from agent.lifecycle import PrintState
from hardware.quiet_log import BurstLog

log = logging.getLogger(__name__)


class CommandTarget(Protocol):
    """What commands act on: the agent."""

    @property
    def print_state(self) -> PrintState: ...

    @property
    def printer_busy(self) -> str | None:
        """`pause` or `resume` while the agent waits for the printer to confirm one, else None."""

    async def pause_print(self, by: str) -> str | None:
        """Pause and wait for the printer's confirmation; the reason it failed, or None."""

    async def resume_print(self) -> str | None:
        """Resume and wait for the printer's confirmation; the reason it failed, or None."""

    def set_monitoring(self, on: bool) -> None: ...

    @property
    def in_print(self) -> bool: ...

    def label_last_alert(self, label: str) -> bool:
        """Record the user's label of the last alert; True when the print should resume for it."""

    def snooze(self) -> None:
        """Mute warnings and pauses for the rest of the print."""

    def answer(self, payload: dict[str, Any]) -> None:
        """Publish a `command_answer` event."""


Run = Callable[[CommandTarget, str], Awaitable[str | None]]
Ready = Callable[[CommandTarget, str], str | None]


@dataclass(frozen=True, slots=True)
class Command:
    """One command. `ready` says why it cannot run now (None: it can); `run` carries it out and
    says why it failed (None: done). A `printer` command waits while a pause or resume is under way."""

    run: Run
    ready: Ready
    printer: bool = False


def _needs_state(state: PrintState) -> Ready:
    def ready(target: CommandTarget, payload: str) -> str | None:
        if target.print_state is state:
            return None
        return f"the printer is {target.print_state.value}, not {state.value}"

    return ready


def _on_or_off(target: CommandTarget, payload: str) -> str | None:
    return None if payload.upper() in ("ON", "OFF") else f"expected ON or OFF, got {payload[:20]!r}"


async def _pause(target: CommandTarget, payload: str) -> str | None:
    return await target.pause_print(by="user")


async def _resume(target: CommandTarget, payload: str) -> str | None:
    return await target.resume_print()


async def _monitoring(target: CommandTarget, payload: str) -> str | None:
    target.set_monitoring(payload.upper() == "ON")
    return None


def _label_ready(target: CommandTarget, payload: str) -> str | None:
    if parse_label(payload) is None:
        return f"expected false_alarm or real_failure, got {payload[:20]!r}"
    return None


async def _label(target: CommandTarget, payload: str) -> str | None:
    label = parse_label(payload)
    assert label is not None  # _label_ready said so
    if target.label_last_alert(label):
        return await target.resume_print()
    return None


def _in_print(target: CommandTarget, payload: str) -> str | None:
    return None if target.in_print else f"no print is running (the printer is {target.print_state.value})"


async def _snooze(target: CommandTarget, payload: str) -> str | None:
    target.snooze()
    return None


COMMANDS: dict[str, Command] = {
    "pause": Command(_pause, _needs_state(PrintState.PRINTING), printer=True),
    "resume": Command(_resume, _needs_state(PrintState.PAUSED), printer=True),
    "monitoring": Command(_monitoring, _on_or_off),
    # A false alarm on LayerGuard's pause resumes the print: it waits for a pause under way.
    "label": Command(_label, _label_ready, printer=True),
    "snooze": Command(_snooze, _in_print),
}


@dataclass(slots=True)
class _Request:
    id: int
    name: str
    payload: str
    source: str


class CommandDesk:
    """Takes every command, on the event loop; holds at most one waiting for the printer (the latest)."""

    def __init__(self, target: CommandTarget, commands: dict[str, Command] | None = None) -> None:
        self.target = target
        self.commands = COMMANDS if commands is None else commands
        self._ids = itertools.count(1)
        self._running: str | None = None  # the printer command this desk is carrying out
        self._queued: _Request | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = BurstLog(log)  # a burst of button presses is one line and a count

    def submit(self, name: str, payload: str = "", source: str = "mqtt") -> dict[str, Any]:
        """Take one command; returns its first answer (also published)."""
        request = _Request(next(self._ids), name, payload.strip(), source)
        command = self.commands.get(name)
        if command is None:
            return self._answer(request, "refused", f"unknown command {name[:40]!r}")
        busy = self._running or self.target.printer_busy
        if command.printer and busy:
            if busy == name:
                return self._answer(request, "refused", f"a {name} is already under way")
            if self._queued is not None:
                self._answer(self._queued, "refused", f"replaced by a later {name}")
            self._queued = request
            return self._answer(request, "queued", f"waits for the {busy} under way")
        return self._start(request, command)

    def printer_free(self) -> None:
        """A pause or resume ended (the agent's own too): carry out the command that waited for it."""
        if self._queued is None or self._running or self.target.printer_busy:
            return
        request, self._queued = self._queued, None
        self._start(request, self.commands[request.name])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, request: _Request, command: Command) -> dict[str, Any]:
        reason = command.ready(self.target, request.payload)
        if reason is not None:
            return self._answer(request, "refused", reason)
        if command.printer:
            self._running = request.name
        task = asyncio.get_running_loop().create_task(self._carry_out(request, command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._answer(request, "accepted", None) if command.printer else _answer_of(request, "done")

    async def _carry_out(self, request: _Request, command: Command) -> None:
        try:
            reason = await command.run(self.target, request.payload)
        finally:
            if command.printer:
                self._running = None
        self._answer(request, "done" if reason is None else "failed", reason)
        if command.printer:
            self.printer_free()

    def _answer(self, request: _Request, result: str, reason: str | None) -> dict[str, Any]:
        answer = _answer_of(request, result, reason)
        self._log.log_line(
            logging.INFO,
            "Command %s from %s: %s%s",
            request.name,
            request.source,
            result,
            f" ({reason})" if reason else "",
        )
        self.target.answer(answer)
        return answer


def _answer_of(request: _Request, result: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "command": request.name,
        "result": result,
        "reason": reason,
        "source": request.source,
        "id": request.id,
    }
