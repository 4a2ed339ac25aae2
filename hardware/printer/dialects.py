"""Firmware dialects: which commands pause and resume, what proves a pause, how to tell them apart.

The pause command differs by firmware in ways that matter: Klipper's `M25` only stops the file
reader and confuses its pause module, Prusa's `M601` also parks the head and cools the nozzle.
What proves a pause differs too (../shared/reference/serial.md, "How to confirm a pause"): each
dialect lists the evidence it accepts; evidence.py weighs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from hardware.printer.evidence import Proof

MARLIN_STEPPER_TIMEOUT_S = 120  # DEFAULT_STEPPER_DEACTIVE_TIME; Marlin cannot be asked for its own
KLIPPER_IDLE_TIMEOUT_S = 600  # idle_timeout's default
HOLD_TIMEOUT_S = 86400  # Klipper: a day is "never" for a pause


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    pause: str
    resume: str
    # After the pause command and `M400`: what proves the pause, and the queries that ask for it.
    pause_evidence: frozenset[Proof]
    pause_queries: tuple[str, ...]
    # Without a pause command of ours (the panel, Mainsail, a runout): what proves a pause. A
    # frozen byte alone never does on Marlin (slow moves, heating), the job timer does.
    passive_evidence: frozenset[Proof]
    # Marlin (2.1.1 and older, Creality forks) says `Not SD printing` while paused with the file
    # still open; `M27 C` tells paused (a file open) from stopped (none).
    not_printing_may_be_paused: bool = False
    # The print's SD byte stands still while paused (Marlin 2.1.2+, Klipper): a print found at
    # connect is printing only once its byte moves.
    byte_freezes_when_paused: bool = False
    # The pause leaves the hotend heating (Marlin's M25, Klipper's usual PAUSE macro); Prusa's
    # M601 switches it off by itself and M602 heats it again.
    pause_keeps_hotend_hot: bool = True
    # Marlin and Prusa say `echo:busy: processing` while a command waits (M400 on a long move);
    # Klipper says nothing, so only a long deadline tells a slow M400 from a lost one.
    busy_lines: bool = True
    # During a pause LayerGuard made: keep the motors on (an unpowered unparked head can be pushed,
    # and the resume then shifts the layers), and what restores the firmware's default after it.
    hold_motors: str | None = None
    release_motors: str | None = None


MARLIN = Dialect(
    "marlin",
    pause="M25",
    resume="M24",
    pause_evidence=frozenset(
        {Proof.PAUSED_FOR_USER, Proof.PAUSED_ACTION, Proof.FROZEN_BYTE, Proof.JOB_TIMER, Proof.FILE_OPEN}
    ),
    pause_queries=("M27", "M31"),
    passive_evidence=frozenset(
        {Proof.PAUSED_FOR_USER, Proof.PAUSED_ACTION, Proof.JOB_TIMER, Proof.FILE_OPEN}
    ),
    not_printing_may_be_paused=True,
    byte_freezes_when_paused=True,
    hold_motors="M84 S0",
    release_motors=f"M84 S{MARLIN_STEPPER_TIMEOUT_S}",
)
PRUSA = Dialect(
    "prusa",
    pause="M601",
    resume="M602",
    pause_evidence=frozenset({Proof.PAUSED_FOR_USER, Proof.PAUSED_ACTION, Proof.SD_PAUSED}),
    pause_queries=("M27",),
    passive_evidence=frozenset({Proof.PAUSED_FOR_USER, Proof.PAUSED_ACTION, Proof.SD_PAUSED}),
    pause_keeps_hotend_hot=False,
)
KLIPPER = Dialect(
    "klipper",
    pause="PAUSE",
    resume="RESUME",
    pause_evidence=frozenset({Proof.PAUSED_ACTION, Proof.FROZEN_BYTE}),
    pause_queries=("M27",),
    # A pause from Mainsail/Fluidd prints nothing: the byte frozen for `stall_s` while not
    # heating, then checked like our own (M400, frozen over the window).
    passive_evidence=frozenset({Proof.PAUSED_ACTION, Proof.FROZEN_BYTE}),
    byte_freezes_when_paused=True,
    busy_lines=False,
    hold_motors=f"SET_IDLE_TIMEOUT TIMEOUT={HOLD_TIMEOUT_S}",
    release_motors=f"SET_IDLE_TIMEOUT TIMEOUT={KLIPPER_IDLE_TIMEOUT_S}",
)
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
