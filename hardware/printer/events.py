"""What the printer link tells the agent: facts read from the printer, in the order they happened.

Every event carries the print's state after it (`state`, `file`, `progress`, `heating`), decided in
one place (follower.py); a consumer mirrors it and never folds events into a state of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PrintState(StrEnum):
    OFFLINE = "offline"  # no port open
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"  # a fatal firmware error; left when a print starts
    UNKNOWN = "unknown"  # the reports do not say (ambiguous, or the printer went silent)


class PrinterEventKind(StrEnum):
    CONNECTED = "connected"  # handshake done; `firmware` and `dialect` are set
    DISCONNECTED = "disconnected"  # the port went away; the link keeps trying to reopen it
    SILENT = "silent"  # the open port stopped carrying anything, a probe got no answer either
    RESPONDING = "responding"  # the printer answers again after SILENT
    # Transitions of a print the link saw (each once, in order; the agent publishes them):
    PRINT_STARTED = "print_started"  # an SD print began, or was found running (`found`)
    PAUSED = "paused"
    RESUMED = "resumed"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    LOST = "lost"  # a print the link followed is gone and the printer never said how
    ERROR = "error"  # fatal firmware error (kill, thermal runaway, ...); `message` says which
    # State only, no transition:
    CONTINUED = "continued"  # the print followed before a disconnect/silence/ambiguity goes on
    PROGRESS = "progress"  # `progress` (0..100) of the running print
    TEMPERATURE = "temperature"  # `temperatures`: hotend, hotend_target, bed, bed_target
    UNKNOWN = "unknown"  # the reports stopped saying whether a print runs; `message` says why
    IDLE = "idle"  # the printer says no print is running (first learned, or after unknown)
    HEATERS_OFF = "heaters_off"  # the link switched heaters off during a long pause; `temperatures` saved
    BUSY = "busy"  # `echo:busy: processing` during a print: a long move, a dwell, homing; not stalled


@dataclass(frozen=True, slots=True)
class PrinterEvent:
    kind: PrinterEventKind
    state: PrintState = PrintState.UNKNOWN
    file: str | None = None
    progress: float | None = None
    heating: bool = False
    # A print that was printing when the link lost sight of it (silent or unplugged): an SD print
    # goes on without its host, so the agent may keep inspecting it.
    unseen_print: bool = False
    message: str = ""
    firmware: str = ""
    dialect: str = ""
    temperatures: dict[str, float] = field(default_factory=dict)
    # PRINT_STARTED: True if found already running (at connect, after an agent restart), not seen
    # starting. Every event: the SD file's size and read position, when the printer reported them.
    found: bool = False
    sd_size: int | None = None
    sd_position: int | None = None
