"""Firmware dialects: which commands pause and resume, and how to tell firmwares apart from `M115`.

The pause command differs by firmware in ways that matter: Klipper's `M25` only stops the file
reader and confuses its pause module, Prusa's `M601` also parks the head and cools the nozzle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    pause: str
    resume: str
    # Marlin says `Not SD printing` both when paused and when stopped; only `M27 C` (is a file
    # still open?) tells them apart. Prusa reports `SD print paused`, Klipper keeps the file open.
    not_printing_may_be_paused: bool = False
    # Klipper's `PAUSE` prints nothing: a paused print shows as an SD position that stops moving.
    frozen_position_is_pause: bool = False
    # The pause leaves the hotend heating (Marlin's M25, Klipper's usual PAUSE macro); Prusa's
    # M601 switches it off by itself and M602 heats it again.
    pause_keeps_hotend_hot: bool = True


MARLIN = Dialect("marlin", pause="M25", resume="M24", not_printing_may_be_paused=True)
PRUSA = Dialect("prusa", pause="M601", resume="M602", pause_keeps_hotend_hot=False)
KLIPPER = Dialect("klipper", pause="PAUSE", resume="RESUME", frozen_position_is_pause=True)
DIALECTS = {d.name: d for d in (MARLIN, PRUSA, KLIPPER)}

_FIELD = re.compile(r"([A-Z_]+):(.*?)(?=\s+[A-Z_]+:|$)")
_CAP = re.compile(r"^Cap:([A-Za-z0-9_]+):([01])\s*$")


@dataclass(frozen=True, slots=True)
class FirmwareInfo:
    """What `M115` says: the firmware name line and the capabilities it reports."""

    name: str = ""
    capabilities: dict[str, bool] = field(default_factory=dict)

    def has(self, capability: str) -> bool:
        return self.capabilities.get(capability, False)


def parse_capability(line: str) -> tuple[str, bool] | None:
    """`Cap:AUTOREPORT_TEMP:1` → ("AUTOREPORT_TEMP", True)."""
    match = _CAP.match(line.strip())
    return (match.group(1), match.group(2) == "1") if match else None


def parse_firmware_info(lines: Iterable[str]) -> FirmwareInfo:
    """Read the `M115` reply: `FIRMWARE_NAME:...` (values may contain spaces) and `Cap:` lines."""
    name = ""
    capabilities: dict[str, bool] = {}
    for line in lines:
        if cap := parse_capability(line):
            capabilities[cap[0]] = cap[1]
            continue
        fields = dict(_FIELD.findall(line.strip()))
        if "FIRMWARE_NAME" in fields:
            name = fields["FIRMWARE_NAME"].strip()
    return FirmwareInfo(name, capabilities)


def detect_dialect(firmware_name: str) -> Dialect:
    """Prusa before Marlin: Prusa's name says "based on Marlin". Unknown firmware talks Marlin."""
    lowered = firmware_name.lower()
    if "prusa" in lowered:
        return PRUSA
    if "klipper" in lowered:
        return KLIPPER
    return MARLIN


def choose_dialect(setting: str, firmware_name: str) -> Dialect:
    """The `printer.dialect` setting wins; `auto` detects it from the firmware name."""
    if setting == "auto":
        return detect_dialect(firmware_name)
    try:
        return DIALECTS[setting]
    except KeyError:
        raise ValueError(
            f"unknown printer dialect {setting!r}; expected auto, {', '.join(DIALECTS)}"
        ) from None
