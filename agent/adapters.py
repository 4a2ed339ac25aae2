"""`layerguard adapters`: the USB serial adapters present, with the printer.port line to paste,
and (`--udev NAME=DEVICE`) the udev rules that give them stable /dev/layerguard-<name> links."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from hardware.printer.usb_adapters import RULES_FILE, UsbSerialAdapter, config_port, list_adapters, udev_rule

NONE_FOUND = (
    "No USB serial adapters found. Is the printer on and its USB cable plugged in? "
    "(Some boards only show up while powered; `dmesg | tail` tells what the kernel saw.)"
)


def run_adapters(
    udev: list[str], as_json: bool, sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")
) -> int:
    adapters = list_adapters(sys_root, dev_root)
    if udev:
        return _print_rules(udev, adapters)
    if as_json:
        print(
            json.dumps([{**asdict(a), "config_port": config_port(a, adapters)} for a in adapters], indent=2)
        )
        return 0
    if not adapters:
        print(NONE_FOUND)
        return 0
    for adapter in adapters:
        print(_describe(adapter, adapters))
    print(
        f"With several printers: `layerguard adapters --udev NAME={adapters[0].name}` (one NAME=DEVICE per "
        f"printer) prints udev rules for {RULES_FILE}, giving each a /dev/layerguard-NAME."
    )
    return 0


def _describe(adapter: UsbSerialAdapter, adapters: list[UsbSerialAdapter]) -> str:
    lines = [
        f"{adapter.device}  {adapter.describe}",
        f"    serial number: {adapter.serial or 'none'}   USB port: {adapter.usb_port}"
        + (f" interface {adapter.interface}" if adapter.interface else ""),
    ]
    if adapter.by_id:
        lines.append(f"    by-id:   {adapter.by_id}")
    if adapter.by_path:
        lines.append(f"    by-path: {adapter.by_path}")
    port = config_port(adapter, adapters)
    if port == adapter.device:
        lines.append("    no stable link from udev: use --udev for a /dev/layerguard-NAME link")
    elif adapter.by_id != port:
        lines.append(
            "    an identical adapter without its own serial number is plugged in too: by USB socket"
        )
    lines.append(f'    [printer] port = "{port}"')
    return "\n".join(lines)


def _print_rules(udev: list[str], adapters: list[UsbSerialAdapter]) -> int:
    by_name = {a.name: a for a in adapters} | {a.device: a for a in adapters}
    rules = []
    for request in udev:
        name, _, device = request.partition("=")
        if not device and len(adapters) == 1:
            device = adapters[0].name
        adapter = by_name.get(device)
        if adapter is None:
            present = ", ".join(a.name for a in adapters) or "none"
            raise SystemExit(
                f"layerguard adapters: --udev {request}: say which adapter as NAME=DEVICE "
                f"(adapters present: {present})"
            )
        try:
            rules.append(udev_rule(name, adapter, adapters))
        except ValueError as exc:
            raise SystemExit(f"layerguard adapters: --udev {request}: {exc}") from None
    print(f"# LayerGuard: stable names for the printers' USB serial adapters. Save as {RULES_FILE},")
    print("# then: sudo udevadm control --reload && sudo udevadm trigger --subsystem-match=tty")
    print("# and set each printer's printer.port to its /dev/layerguard-NAME.")
    print("".join(rules), end="")
    return 0
