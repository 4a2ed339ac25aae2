"""`layerguard adapters`: USB serial adapters read from a sysfs and /dev tree built here as the
kernel and udev lay them out (a Prusa with a serial number, two identical CH340 boards without),
and once on this machine's real /sys and /dev."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.adapters import run_adapters
from hardware.printer.usb_adapters import config_port, list_adapters, udev_rule

HUB = "devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1"
BY_PATH = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.{port}:1.0"


def usb_device(sys_root: Path, port: str, **attrs: str) -> Path:
    device = sys_root / HUB / port
    device.mkdir(parents=True)
    for name, value in attrs.items():
        (device / name).write_text(value + "\n")
    return device


def tty(sys_root: Path, name: str, device: Path) -> None:
    link = sys_root / "class" / "tty" / name
    link.mkdir(parents=True)
    (link / "device").symlink_to(os.path.relpath(device, link))


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    # A Prusa MK4: native USB CDC-ACM, the tty's device is the interface.
    prusa = usb_device(
        sys_root, "1-1.4", idVendor="2c99", idProduct="000d", manufacturer="Prusa Research (prusa3d.com)",
        product="Original Prusa MK4", serial="CZPX4720X004XK12345",
    )  # fmt: skip
    (prusa / "1-1.4:1.0").mkdir()
    (prusa / "1-1.4:1.0" / "bInterfaceNumber").write_text("00\n")
    tty(sys_root, "ttyACM0", prusa / "1-1.4:1.0")
    # Two Creality boards with a CH340: a usb-serial port below the interface, no serial number.
    for number, port in ((0, "1-1.2"), (1, "1-1.3")):
        ch340 = usb_device(sys_root, port, idVendor="1a86", idProduct="7523", product="USB Serial")
        serial_port = ch340 / f"{port}:1.0" / f"ttyUSB{number}"
        serial_port.mkdir(parents=True)
        (ch340 / f"{port}:1.0" / "bInterfaceNumber").write_text("00\n")
        tty(sys_root, f"ttyUSB{number}", serial_port)
    # The SoC's UART and a virtual terminal: not USB.
    uart = sys_root / "devices/platform/soc/fe201000.serial"
    uart.mkdir(parents=True)
    tty(sys_root, "ttyAMA0", uart)
    (sys_root / "class" / "tty" / "tty1").mkdir()
    # udev's links: the two CH340s would both be usb-1a86_USB_Serial-if00-port0; the last one wins.
    by_id, by_path = dev_root / "serial" / "by-id", dev_root / "serial" / "by-path"
    by_id.mkdir(parents=True)
    by_path.mkdir(parents=True)
    (by_id / "usb-1a86_USB_Serial-if00-port0").symlink_to("../../ttyUSB1")
    (by_id / "usb-Prusa_Research__prusa3d.com__Original_Prusa_MK4_CZPX4720X004XK12345-if00").symlink_to(
        "../../ttyACM0"
    )
    for port, name in ((2, "ttyUSB0"), (3, "ttyUSB1")):
        (by_path / f"{BY_PATH.format(port=port)}-port0").symlink_to(f"../../{name}")
    (by_path / BY_PATH.format(port=4)).symlink_to("../../ttyACM0")
    return sys_root, dev_root


def test_usb_adapters_are_found_with_their_ids_and_links(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    adapters = list_adapters(sys_root, dev_root)
    assert [a.name for a in adapters] == ["ttyACM0", "ttyUSB0", "ttyUSB1"]
    prusa, first, second = adapters
    assert (prusa.vendor_id, prusa.product_id, prusa.serial) == ("2c99", "000d", "CZPX4720X004XK12345")
    assert (prusa.product, prusa.usb_port, prusa.interface) == ("Original Prusa MK4", "1-1.4", "00")
    assert prusa.device == str(dev_root / "ttyACM0")
    assert (first.serial, first.usb_port, first.by_id) == (None, "1-1.2", None)
    assert second.by_id == str(dev_root / "serial/by-id/usb-1a86_USB_Serial-if00-port0")
    # The Prusa by its serial number; the twins by USB socket, since their by-id name is shared.
    assert config_port(prusa, adapters) == prusa.by_id
    assert config_port(second, adapters) == str(
        dev_root / "serial/by-path" / f"{BY_PATH.format(port=3)}-port0"
    )
    assert config_port(second, [second]) == second.by_id, "alone, the by-id name is unambiguous"


def test_udev_rules_match_by_serial_number_or_by_usb_port(roots: tuple[Path, Path]) -> None:
    adapters = list_adapters(*roots)
    prusa, first, _ = adapters
    assert udev_rule("mk4", prusa, adapters).splitlines()[1] == (
        'ACTION=="add|change", SUBSYSTEM=="tty", ATTRS{idVendor}=="2c99", ATTRS{idProduct}=="000d", '
        'ATTRS{serial}=="CZPX4720X004XK12345", ENV{ID_USB_INTERFACE_NUM}=="00", '
        'SYMLINK+="layerguard-mk4", GROUP="dialout", MODE="0660", RUN+="/bin/stty -F /dev/%k -hupcl"'
    )
    rule = udev_rule("ender", first, adapters)
    assert "no serial number of its own: USB port 1-1.2" in rule
    assert 'KERNELS=="1-1.2", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", ' in rule
    assert "ATTRS{serial}" not in rule
    with pytest.raises(ValueError, match="letters, digits"):
        udev_rule("../evil", first, adapters)


def test_the_command_prints_the_line_to_paste_and_the_rules(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_adapters([], False, *roots) == 0
    out = capsys.readouterr().out
    assert out.count('[printer] port = "') == 3
    assert "an identical adapter without its own serial number is plugged in too" in out
    assert run_adapters([], True, *roots) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["serial"] for a in listed] == ["CZPX4720X004XK12345", None, None]
    assert run_adapters(["left=ttyUSB0", "right=ttyUSB1"], False, *roots) == 0
    rules = capsys.readouterr().out
    assert 'SYMLINK+="layerguard-left"' in rules and 'KERNELS=="1-1.3"' in rules
    _check_with_udevadm(rules, tmp_path)
    with pytest.raises(SystemExit, match=r"NAME=DEVICE \(adapters present: ttyACM0, ttyUSB0, ttyUSB1\)"):
        run_adapters(["left"], False, *roots)
    assert run_adapters([], False, tmp_path / "nosys", tmp_path / "nodev") == 0
    assert capsys.readouterr().out.startswith("No USB serial adapters found.")


def _check_with_udevadm(rules: str, tmp_path: Path) -> None:
    """`udevadm verify` (systemd 253 and later) judges the rules' syntax where it exists."""
    udevadm = shutil.which("udevadm")
    if udevadm is None or subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode:
        return
    path = tmp_path / "98-layerguard-printers.rules"
    path.write_text(rules)
    result = subprocess.run([udevadm, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_command_runs_on_this_machine() -> None:
    """Whatever is plugged in here (often nothing): a clean exit and either adapters or the hint."""
    result = subprocess.run(
        [sys.executable, "-m", "agent", "adapters"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert "No USB serial adapters found." in result.stdout or '[printer] port = "' in result.stdout
