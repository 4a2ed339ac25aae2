"""What the printer link tells the agent: facts read from the printer, in the order they happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PrinterEventKind(StrEnum):
    CONNECTED = "connected"  # handshake done; `firmware` and `dialect` are set
    DISCONNECTED = "disconnected"  # the port went away; the link keeps trying to reopen it
    PRINT_STARTED = "print_started"  # an SD print began (or was found running); `file` is set
    PROGRESS = "progress"  # `progress` (0..100) of the running print
    PAUSED = "paused"
    RESUMED = "resumed"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ERROR = "error"  # fatal firmware error (kill, thermal runaway, ...); `message` says which
    TEMPERATURE = "temperature"  # `hotend`, `hotend_target`, `bed`, `bed_target`
    # The reports do not say whether a print is running or paused (`file` may be set, `message`
    # says why); the follower says so instead of guessing, until the printer reports more.
    UNKNOWN = "unknown"
    IDLE = "idle"  # the printer says no print is running (first learned this session, or after UNKNOWN)
    HEATERS_OFF = "heaters_off"  # the link switched heaters off during a long pause; `temperatures` saved


@dataclass(frozen=True, slots=True)
class PrinterEvent:
    kind: PrinterEventKind
    file: str | None = None
    progress: float | None = None
    message: str = ""
    firmware: str = ""
    dialect: str = ""
    temperatures: dict[str, float] = field(default_factory=dict)
