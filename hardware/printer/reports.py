"""Firmware lines turned into facts about the print (no state here: see follower.py for that).

Marlin, Prusa and Klipper report the same few facts with small differences in spacing and case,
and they interleave them with replies and auto-reports, so every line goes through `parse_report`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileOpened:
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class CurrentFile:
    """`M27 C`: the open file, or None when none is open (the print was stopped)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class SdProgress:
    position: int
    total: int


@dataclass(frozen=True, slots=True)
class PercentDone:
    """Prusa's answer to the slicer's `M73`: progress by print time, better than by bytes."""

    percent: float


@dataclass(frozen=True, slots=True)
class NotSdPrinting:
    """Marlin says this both when paused (file still open) and when stopped (file closed)."""


@dataclass(frozen=True, slots=True)
class SdPaused:
    """Prusa's unambiguous paused report."""


@dataclass(frozen=True, slots=True)
class PausedForUser:
    """`echo:busy: paused for user` (or `for input`): the firmware waits for the user, the print
    stands still (a parked `M25` with a display, `M600`, a runout, `M0`)."""


@dataclass(frozen=True, slots=True)
class Busy:
    """`echo:busy: processing`: the firmware is executing something (heating, a move, homing),
    so a byte that stands still meanwhile is no pause."""


@dataclass(frozen=True, slots=True)
class JobTime:
    """`M31` → `echo:Print time: 1h 2m 3s`: Marlin's job timer, which `M25` stops and nothing
    else does; seconds resolution."""

    seconds: int


@dataclass(frozen=True, slots=True)
class DonePrinting:
    pass


@dataclass(frozen=True, slots=True)
class HostAction:
    action: str  # pause, paused, resume, resumed, cancel, start, ...


@dataclass(frozen=True, slots=True)
class PrinterReset:
    """`start` (Klipper: `// Klipper state: Ready`): the firmware restarted; any print is gone."""


@dataclass(frozen=True, slots=True)
class FatalError:
    message: str


HEATING_MARGIN_C = 3.0  # a target this far above the reading means the printer is heating


@dataclass(frozen=True, slots=True)
class Temperatures:
    hotend: float
    hotend_target: float
    bed: float | None = None
    bed_target: float | None = None

    @property
    def heating(self) -> bool:
        """Still heating (an M109/M190): the print stands still on purpose, and is not inspected."""
        pairs = ((self.hotend, self.hotend_target), (self.bed, self.bed_target))
        return any(
            target is not None and actual is not None and target > 0 and actual < target - HEATING_MARGIN_C
            for actual, target in pairs
        )

    def as_dict(self) -> dict[str, float]:
        values = {"hotend": self.hotend, "hotend_target": self.hotend_target}
        if self.bed is not None and self.bed_target is not None:
            values |= {"bed": self.bed, "bed_target": self.bed_target}
        return values


Report = (
    FileOpened
    | CurrentFile
    | SdProgress
    | PercentDone
    | NotSdPrinting
    | SdPaused
    | PausedForUser
    | Busy
    | JobTime
    | DonePrinting
    | HostAction
    | PrinterReset
    | FatalError
    | Temperatures
)

_FILE_OPENED = re.compile(r"^File opened:\s*(.+?)\s+Size:\s*(\d+)", re.IGNORECASE)
_CURRENT_FILE = re.compile(r"^Current file:\s*(.*?)\s*$", re.IGNORECASE)
_SD_PROGRESS = re.compile(r"SD printing byte\s+(\d+)\s*/\s*(\d+)", re.IGNORECASE)
_PERCENT_DONE = re.compile(r"^(?:NORMAL|SILENT) MODE: Percent done:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_KLIPPER_RESTART = re.compile(r"^//\s*Klipper state:\s*(?:Ready|Disconnect)", re.IGNORECASE)
_HOST_ACTION = re.compile(r"^//\s*action:\s*(\w+)", re.IGNORECASE)
_TEMPERATURE = re.compile(r"(?<![\w@])(T\d?|B):\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)")
_FATAL = re.compile(r"kill\(\) called|halted|thermal runaway|maxtemp|mintemp|heating failed|stopped", re.I)
_NO_FILE = ("", "(no file)", "no file", "none")
_BUSY = re.compile(r"^echo:\s*busy:\s*(.*)$", re.IGNORECASE)
_PRINT_TIME = re.compile(
    r"^echo:\s*Print time:\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$", re.IGNORECASE
)


def parse_report(line: str) -> Report | None:
    """The fact a firmware line states, or None when it states none we follow."""
    text = line.strip()
    for parse in _PARSERS:
        if (report := parse(text)) is not None:
            return report
    return None


def _file_opened(text: str) -> Report | None:
    match = _FILE_OPENED.match(text)
    return FileOpened(match.group(1), int(match.group(2))) if match else None


def _current_file(text: str) -> Report | None:
    match = _CURRENT_FILE.match(text)
    if not match:
        return None
    name = match.group(1)
    return CurrentFile(None if name.lower() in _NO_FILE else name)


def _sd_status(text: str) -> Report | None:
    if match := _SD_PROGRESS.search(text):
        return SdProgress(int(match.group(1)), int(match.group(2)))
    if match := _PERCENT_DONE.match(text):
        return PercentDone(float(match.group(1)))
    lowered = text.lower()
    if lowered.startswith("not sd printing"):
        return NotSdPrinting()
    if lowered.startswith("sd print paused"):
        return SdPaused()
    if lowered.startswith("done printing file"):
        return DonePrinting()
    return None


def _busy(text: str) -> Report | None:
    if match := _BUSY.match(text):
        return PausedForUser() if match.group(1).lower().startswith("paused for") else Busy()
    if match := _PRINT_TIME.match(text):
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return JobTime(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    return None


def _host_action(text: str) -> Report | None:
    match = _HOST_ACTION.match(text)
    return HostAction(match.group(1).lower()) if match else None


def _reset(text: str) -> Report | None:
    return PrinterReset() if text == "start" or _KLIPPER_RESTART.match(text) else None


def _fatal(text: str) -> Report | None:
    if text.startswith("!!"):
        return FatalError(text.lstrip("! ").strip() or "Klipper reported an error")
    lowered = text.lower()
    is_error = lowered.startswith("error:") or (lowered.startswith("echo:") and "thermal runaway" in lowered)
    if is_error and _FATAL.search(text):
        return FatalError(text.split(":", 1)[1].strip())
    return None


def _temperatures(text: str) -> Report | None:
    found: dict[str, tuple[float, float]] = {}
    for sensor, actual, target in _TEMPERATURE.findall(text):
        found.setdefault(sensor, (float(actual), float(target)))
    hotend = found.get("T") or found.get("T0")
    if hotend is None:
        return None
    bed = found.get("B")
    return Temperatures(hotend[0], hotend[1], bed[0] if bed else None, bed[1] if bed else None)


_PARSERS = (_file_opened, _current_file, _sd_status, _busy, _host_action, _reset, _fatal, _temperatures)
