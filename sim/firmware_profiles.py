"""Firmware versions the virtual printer emulates, not families: each behaviour cites its line.

References are to ../shared/reference/serial.md (section, then the words emulated). What a profile
changes is only what the reference says differs between versions; everything else (line
protocol, heating, SD printing) is common to all and described in virtual_printer.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PausedStatus(StrEnum):
    """What `M27` answers while the SD print is paused."""

    # "Marlin 2.1.1 and older, and the Creality 2.0.8.x forks on most Enders: `M27` → `Not SD
    # printing` while the file stays open (`M27 C` → `Current file: NAME`)"
    NOT_PRINTING = "not_printing"
    # "Marlin 2.1.2 and later ...: `M27` keeps answering `SD printing byte P/T` with the byte
    # frozen"; Klipper: "`M27` keeps reporting the same byte (frozen)"
    FROZEN = "frozen"
    # Prusa MK3: "`M27` → `SD print paused`"
    SD_PRINT_PAUSED = "sd_print_paused"


@dataclass(frozen=True, slots=True)
class FirmwareProfile:
    name: str
    dialect: str  # marlin, prusa or klipper: the command set
    firmware: str  # the M115 FIRMWARE_NAME line (Klipper: after `ok `)
    banner: str  # what follows `start` after a reset (Klipper: its state lines instead)
    paused_status: PausedStatus
    # "the quieter `M27 S<n>` auto-report of bugfix-2.1.x sends nothing while the byte does not move"
    quiet_autoreport: bool = False
    # "With `PARK_HEAD_ON_PAUSE` and a display, `M25` blocks: no `ok`, `echo:busy: paused for
    # user` every ~2 s, `//action:paused` printed before the head stops"
    parks_and_waits: bool = False
    # "`M25` prints only `ok`; with `HOST_ACTION_COMMANDS` (off by default, on in e.g. the Ender-3
    # S1 fork) it adds `//action:pause` (a request to the host, not a confirmation) and
    # host-prompt lines"
    host_actions: bool = False
    host_prompts: bool = False
    # Prusa: "`// action:paused` (3.13, with a space) or `//action:paused` (3.14)"
    action_prefix: str = "//action:"
    # "`M27 S<sec>` auto-reports if `AUTOREPORT_SD_STATUS`"; temperatures "(`M155 S<sec>`)"
    autoreport_sd: bool = True
    autoreport_temp: bool = True
    # "`M27 C` → `Current file: NAME`" (Marlin, Prusa); Klipper has no `M27 C`
    current_file: bool = True
    # "two `M31` answers (`echo:Print time: …`) ... (the job timer is paused by `M25`)"
    job_timer: bool = True


_MARLIN_TAIL = (
    "SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 "
    "MACHINE_TYPE:Virtual Printer EXTRUDER_COUNT:1 UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff"
)


def _marlin(name: str, version: str, paused: PausedStatus, **features: bool) -> FirmwareProfile:
    return FirmwareProfile(
        name,
        "marlin",
        f"FIRMWARE_NAME:Marlin {version} (LayerGuard virtual) {_MARLIN_TAIL}",
        f"echo:Marlin {version}",
        paused,
        **features,  # type: ignore[arg-type]
    )


def _prusa(name: str, version: str, prefix: str) -> FirmwareProfile:
    return FirmwareProfile(
        name,
        "prusa",
        f"FIRMWARE_NAME:Prusa-Firmware {version} based on Marlin "
        "FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0 "
        "MACHINE_TYPE:Prusa i3 MK3S EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-0000",
        f"echo: {version}",
        PausedStatus.SD_PRINT_PAUSED,
        action_prefix=prefix,
        # "Prusa MK3 ... `M601` ... prints `//action:paused`"; Prusa reports only temperatures
        # on its own (Prusa-Firmware has no AUTOREPORT_SD_STATUS)
        autoreport_sd=False,
        host_actions=True,
        job_timer=False,
    )


PROFILES: dict[str, FirmwareProfile] = {
    p.name: p
    for p in (
        _marlin("marlin-2.0.9", "2.0.9.3", PausedStatus.NOT_PRINTING),
        _marlin("marlin-2.1.1", "2.1.1", PausedStatus.NOT_PRINTING),
        _marlin("marlin-2.1.2", "2.1.2.1", PausedStatus.FROZEN),
        _marlin("marlin-bugfix", "bugfix-2.1.x", PausedStatus.FROZEN, quiet_autoreport=True),
        _marlin("marlin-park", "2.1.2.1", PausedStatus.FROZEN, parks_and_waits=True, host_actions=True),
        # The Creality fork's M115 name is not in the reference; it reports a 2.0.8 Marlin base.
        _marlin(
            "creality-s1",
            "2.0.8.3 Ender-3 S1",
            PausedStatus.NOT_PRINTING,
            host_actions=True,
            host_prompts=True,
        ),
        _prusa("prusa-3.13", "3.13.2", "// action:"),
        _prusa("prusa-3.14", "3.14.0", "//action:"),
        FirmwareProfile(
            "klipper",
            "klipper",
            "FIRMWARE_NAME:Klipper FIRMWARE_VERSION:v0.12.0-LayerGuard-virtual",
            "",
            PausedStatus.FROZEN,
            autoreport_sd=False,
            autoreport_temp=False,
            current_file=False,
            job_timer=False,
        ),
    )
}
# `dialect=` of older callers: the firmware each family stands for by default.
DEFAULT_PROFILE = {"marlin": "marlin-2.1.2", "prusa": "prusa-3.14", "klipper": "klipper"}
