"""The G-code line protocol: numbered, checksummed lines out; `ok`, `Resend`, busy and errors in.

Firmware checks every numbered line (`N<n> <cmd>*<xor>`) and asks for it again when a byte was
garbled on the wire, so the host frames each line and remembers the one in flight.
"""

from __future__ import annotations

import re
from collections import deque
from enum import Enum

HELLO = "M110 N0"  # resets the firmware's line counter to 0; the next numbered line is N1
# Lines kept for a `Resend:` of an earlier line (one swallowed on the wire): as many as Marlin
# buffers (BUFSIZE 4); asked for anything older, the firmware lost track and is renumbered.
RESEND_HISTORY = 4

_RESEND = re.compile(r"^(?:Resend|rs)[:\s]\s*N?(\d+)", re.IGNORECASE)
# Errors about the line itself: the firmware follows them with `Resend:`, they are not faults.
_LINE_ERRORS = ("checksum mismatch", "line number", "no checksum", "no line number", "format error")


class CommandFailed(Exception):
    """A command got no `ok`: timed out, or the firmware lost track of line numbers."""


class LineKind(Enum):
    OK = "ok"
    RESEND = "resend"
    BUSY = "busy"
    LINE_ERROR = "line_error"  # a garbled line; a Resend follows
    ERROR = "error"  # anything else starting with Error: or !!
    OTHER = "other"


def checksum(payload: str) -> int:
    """XOR of every byte before the `*`, as Marlin, Prusa and Klipper compute it."""
    value = 0
    for byte in payload.encode("ascii", errors="replace"):
        value ^= byte
    return value


def frame(number: int, command: str) -> str:
    """`N<number> <command>*<checksum>` without the line ending."""
    payload = f"N{number} {command}"
    return f"{payload}*{checksum(payload)}"


class LineNumbers:
    """Numbers outgoing lines and remembers the last few, which a Resend may ask for again.

    A Resend for the line in flight is a garbled line; for a recent earlier one, a line swallowed
    on the wire (the firmware then wants it and every line after it, in order). Anything else means
    the firmware lost track (it restarted) and the cure is a fresh `M110 N0`, not a replay.
    """

    def __init__(self) -> None:
        self._next = 0
        self._sent: deque[tuple[int, str]] = deque(maxlen=RESEND_HISTORY)

    def reset(self) -> None:
        """Number the next line 0: it must be the `M110 N0` that resets the firmware too."""
        self._next = 0
        self._sent.clear()

    def frame(self, command: str) -> str:
        number = self._next
        line = frame(number, command)
        self._sent.append((number, line))
        self._next = number + 1
        return line

    def resend(self, number: int) -> list[str] | None:
        """The framed lines from `number` on that the firmware asks for again, or None if gone."""
        numbers = [n for n, _ in self._sent]
        if number not in numbers:
            return None
        return [line for _, line in list(self._sent)[numbers.index(number) :]]


def classify(line: str) -> LineKind:
    """What a firmware line means for the command in flight."""
    lowered = line.lower()
    if lowered == "ok" or lowered.startswith("ok "):
        return LineKind.OK
    if _RESEND.match(line):
        return LineKind.RESEND
    if lowered.startswith("echo:busy:"):
        return LineKind.BUSY
    if lowered.startswith("error:"):
        if any(marker in lowered for marker in _LINE_ERRORS):
            return LineKind.LINE_ERROR
        return LineKind.ERROR
    if line.startswith("!!"):
        return LineKind.ERROR
    return LineKind.OTHER


def resend_number(line: str) -> int | None:
    """The line number in `Resend: N` / `rs N`, or None for any other line."""
    match = _RESEND.match(line)
    return int(match.group(1)) if match else None
