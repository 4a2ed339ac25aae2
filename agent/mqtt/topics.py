"""The MQTT topic names of one printer: the contract in design.md, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from agent.commands import COMMANDS as _DESK

# The commands the agent accepts on `<p>/command/<name>`: every command of the agent's one path.
COMMANDS = tuple(_DESK)


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic under `<topic_prefix>/<printer_id>`."""

    base: str

    @classmethod
    def for_printer(cls, topic_prefix: str, printer_id: str) -> Topics:
        return cls(f"{topic_prefix.rstrip('/')}/{printer_id}")

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def inspection(self) -> str:
        """The last inspection's verdict (retained JSON): only ever sent with a real inspection."""
        return f"{self.base}/inspection"

    @property
    def report(self) -> str:
        return f"{self.base}/report"

    def command(self, name: str) -> str:
        """The topic of one of `COMMANDS`."""
        return f"{self.base}/command/{name}"

    def command_name(self, topic: str) -> str | None:
        """Which command an incoming topic carries, or None if it is not a command topic."""
        name = topic.removeprefix(f"{self.base}/command/")
        return name if name != topic and name in COMMANDS else None
