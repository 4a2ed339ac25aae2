"""The USB serial adapters plugged into this machine, read from sysfs and /dev/serial, and the
udev rule that gives one of them a stable /dev/layerguard-<name>.

With several printers on one Pi, /dev/ttyUSB0 and /dev/ttyUSB1 swap places across reboots, so
each printer's config must name its adapter by something that stays: the serial number (the
/dev/serial/by-id/ link), or, for identical boards that have none (the common CH340), the USB
port they are plugged into. The /sys and /dev roots are parameters, so tests read a tree they made.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Rule names already used by the agent's printer rule (config/99-layerguard-printer.rules).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
RULES_FILE = "/etc/udev/rules.d/98-layerguard-printers.rules"


@dataclass(frozen=True)
class UsbSerialAdapter:
    device: str  # /dev/ttyUSB0
    vendor_id: str  # 1a86
    product_id: str  # 7523
    manufacturer: str | None
    product: str | None
    serial: str | None  # None: the chip has no serial number (CH340)
    usb_port: str  # the USB device's sysfs name: bus-port.port (1-1.3), stable per physical socket
    interface: str | None  # bInterfaceNumber (00): boards with two ports tell them apart by it
    by_id: str | None  # /dev/serial/by-id/... when udev made one
    by_path: str | None  # /dev/serial/by-path/...

    @property
    def name(self) -> str:
        return os.path.basename(self.device)

    @property
    def describe(self) -> str:
        words = " ".join(w for w in (self.manufacturer, self.product) if w) or "unnamed"
        return f"{self.vendor_id}:{self.product_id} {words}"


def list_adapters(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[UsbSerialAdapter]:
    """Every tty whose device is on USB, sorted by name. Serial ports of the SoC (ttyS0, ttyAMA0)
    and virtual terminals have no USB device above them and are left out."""
    class_dir = sys_root / "class" / "tty"
    if not class_dir.is_dir():
        return []
    by_id = _links(dev_root / "serial" / "by-id")
    by_path = _links(dev_root / "serial" / "by-path")
    found = []
    for tty in sorted(class_dir.iterdir(), key=lambda p: _natural(p.name)):
        device_link = tty / "device"
        if not device_link.exists():
            continue
        usb = _usb_device(device_link.resolve(), sys_root)
        if usb is None:
            continue
        usb_device, interface_dir = usb
        found.append(
            UsbSerialAdapter(
                device=str(dev_root / tty.name),
                vendor_id=_attr(usb_device, "idVendor") or "????",
                product_id=_attr(usb_device, "idProduct") or "????",
                manufacturer=_attr(usb_device, "manufacturer"),
                product=_attr(usb_device, "product"),
                serial=_attr(usb_device, "serial"),
                usb_port=usb_device.name,
                interface=_attr(interface_dir, "bInterfaceNumber") if interface_dir else None,
                by_id=by_id.get(tty.name),
                by_path=by_path.get(tty.name),
            )
        )
    return found


def config_port(adapter: UsbSerialAdapter, adapters: list[UsbSerialAdapter]) -> str:
    """What to put in printer.port: the by-id name, unless another adapter has the same vendor,
    product and (no) serial number, whose by-id names collide (udev keeps only one link): then the
    by-path name, which follows the USB socket."""
    if adapter.by_id and not _twins(adapter, adapters):
        return adapter.by_id
    return adapter.by_path or adapter.device


def udev_rule(name: str, adapter: UsbSerialAdapter, adapters: list[UsbSerialAdapter]) -> str:
    """One udev rule giving `adapter` the link /dev/layerguard-<name>: by serial number, or by
    the USB port (and interface) when it has none or shares it with an identical board."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r}: a printer's name has letters, digits, - and _ only")
    match = [f'ATTRS{{idVendor}}=="{adapter.vendor_id}"', f'ATTRS{{idProduct}}=="{adapter.product_id}"']
    if adapter.serial and not _twins(adapter, adapters):
        why = f"serial number {adapter.serial}: any USB socket"
        match.append(f'ATTRS{{serial}}=="{_escape(adapter.serial)}"')
    else:
        why = f"no serial number of its own: USB port {adapter.usb_port}, keep it in that socket"
        match.insert(0, f'KERNELS=="{adapter.usb_port}"')
    if adapter.interface is not None:
        match.append(f'ENV{{ID_USB_INTERFACE_NUM}}=="{adapter.interface}"')
    return (
        f"# {name}: {adapter.describe} ({why})\n"
        f'ACTION=="add|change", SUBSYSTEM=="tty", {", ".join(match)}, '
        f'SYMLINK+="layerguard-{name}", GROUP="dialout", MODE="0660", RUN+="/bin/stty -F /dev/%k -hupcl"\n'
    )


def _twins(adapter: UsbSerialAdapter, adapters: list[UsbSerialAdapter]) -> bool:
    """Another adapter that udev cannot tell from this one by id: same vendor, product, serial."""
    key = (adapter.vendor_id, adapter.product_id, adapter.serial, adapter.interface)
    return any(
        (a.vendor_id, a.product_id, a.serial, a.interface) == key and a.device != adapter.device
        for a in adapters
    )


def _usb_device(path: Path, sys_root: Path) -> tuple[Path, Path | None] | None:
    """The USB device above a tty's sysfs device (the first parent with idVendor), and the
    interface just below it; None when the tty is not on USB."""
    child: Path | None = None
    stop = sys_root.resolve()
    while path != stop and path != path.parent:
        if (path / "idVendor").is_file():
            return path, child
        child, path = path, path.parent
    return None


def _attr(directory: Path, name: str) -> str | None:
    try:
        value = (directory / name).read_text(errors="replace").strip()
    except OSError:
        return None
    return value or None


def _links(directory: Path) -> dict[str, str]:
    """tty name → the link in `directory` that points at it."""
    if not directory.is_dir():
        return {}
    return {os.path.basename(os.path.realpath(link)): str(link) for link in sorted(directory.iterdir())}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _natural(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(\D*)(\d*)", name)
    return (m.group(1), int(m.group(2) or -1)) if m else (name, -1)
