"""The boot test's machine: an emulated 64-bit Arm board (QEMU `virt`, software emulation) booting
the cached Debian image of scripts/boot-image.sh, with the SD card's boot partition as a NoCloud
seed disk, an emulated FTDI USB-serial adapter per printer wired to a host pty, and user-mode networking that
reaches only the host services the test names (`restrict=on`: nothing leaves the machine).

The guest sees the host's services at GUEST_HOST_ADDR through `guestfwd` rules: a restricted
network forwards nothing else, and `guestfwd` may not use the 10.0.2.2 gateway address itself."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUEST_HOST_ADDR = "10.0.2.100"
SEED_MB = 128
# The parts of a checkout a Pi needs on its boot partition (README: "Flash and boot").
CHECKOUT = ["pyproject.toml", "README.md", "agent", "hardware", "sim", "config", "scripts"]


def base_image() -> Path:
    """The cached base image's folder, built first if this machine has none (about 20 minutes)."""
    result = subprocess.run(
        [ROOT / "scripts" / "boot-image.sh"], capture_output=True, text=True, timeout=3600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def make_wheelhouse(out: Path) -> None:
    result = subprocess.run(
        [ROOT / "scripts" / "make-wheelhouse.sh", "--python-version", "3.13", "--out", out],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def make_seed(path: Path, files: Mapping[str, str], wheelhouse: Path | None, tmp: Path) -> None:
    """A FAT disk labelled CIDATA holding cloud-init's files, the checkout as `layerguard/` and
    the wheelhouse as `layerguard/wheelhouse/`: what the README puts on the SD card."""
    stage = tmp / "bootfs"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "layerguard").mkdir(parents=True)
    for name, text in files.items():
        (stage / name).write_text(text)
    for part in CHECKOUT:
        source = ROOT / part
        target = stage / "layerguard" / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, target)
    if wheelhouse is not None:
        shutil.copytree(wheelhouse, stage / "layerguard" / "wheelhouse")
    path.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-n", "CIDATA", str(path), str(SEED_MB * 1024)])
    run(["mcopy", "-s", "-i", str(path), *[str(p) for p in sorted(stage.iterdir())], "::/"])


def run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{command[0]}: {result.stdout[-1500:]}{result.stderr[-1500:]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Guest:
    """One QEMU process: boots, reboots in place (the disk's changes live as long as it does),
    and records its serial console so that waits can look for lines on it (and in console.log,
    each line after the seconds since QEMU started)."""

    def __init__(
        self,
        image: Path,
        seed: Path,
        console_log: Path,
        *,
        printers: Sequence[tuple[str, str]],
        forwards: Iterable[int],
        ssh_key: Path,
    ) -> None:
        self.ssh_port = free_port()
        self.ssh_key = ssh_key
        self.console_log = console_log
        self._lines: list[str] = []
        self._cond = threading.Condition()
        guestfwd = ",".join(
            f"guestfwd=tcp:{GUEST_HOST_ADDR}:{port}-cmd:socat STDIO TCP:127.0.0.1:{port}" for port in forwards
        )
        self.command = [
            "qemu-system-aarch64",
            "-machine", "virt",
            "-cpu", "cortex-a72",
            "-smp", "2",
            "-m", "1024",
            "-display", "none",
            "-monitor", "none",
            "-serial", "stdio",
            "-kernel", str(image / "vmlinuz"),
            "-initrd", str(image / "initrd.img"),
            # Raspberry Pi OS names its wired interface eth0, and so does this kernel line.
            "-append", "root=/dev/vda rw console=ttyAMA0 net.ifnames=0 systemd.show_status=1",
            "-drive", f"if=none,id=root,format=raw,snapshot=on,file={image / 'rootfs.ext4'}",
            "-device", "virtio-blk-pci,drive=root",
            "-drive", f"if=none,id=seed,format=raw,file={seed}",
            "-device", "virtio-blk-pci,drive=seed",
            "-netdev", f"user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,{guestfwd}",
            # romfile= (none): the kernel is booted directly (-kernel), so the card never
            # network-boots and its iPXE ROM (Debian's ipxe-qemu, not installed) is never needed.
            "-device", "virtio-net-pci,netdev=net,romfile=",
            "-device", "qemu-xhci,id=xhci",
        ]  # fmt: skip
        # One USB-serial adapter per printer: QEMU's usb-serial is an FTDI FT232 (0403:6001), the
        # guest's ftdi_sio makes a ttyUSB of it, and udev's by-id name carries its serial number.
        for index, (tty, serial) in enumerate(printers):
            self.command += ["-chardev", f"serial,id=printer{index},path={tty}"]
            self.command += ["-device", f"usb-serial,bus=xhci.0,chardev=printer{index},serial={serial}"]
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> Guest:
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read_console, name="guest-console", daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read_console(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        started = time.monotonic()
        with self.console_log.open("ab") as log:
            for raw in self._process.stdout:
                log.write(b"%7.1f " % (time.monotonic() - started) + raw)  # where a boot spends its time
                log.flush()
                with self._cond:
                    self._lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def mark(self) -> int:
        """A position in the console: `wait_console(..., since=mark)` looks only after it."""
        with self._cond:
            return len(self._lines)

    def wait_console(self, pattern: str, timeout_s: float, since: int = 0) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s

        def found() -> str | None:
            hit = next((line for line in self._lines[since:] if regex.search(line)), None)
            if hit is None and (self._process is None or self._process.poll() is not None):
                return f"<qemu exited: {self._process.returncode if self._process else None}>"
            return hit

        with self._cond:
            while (hit := found()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = "\n".join(self._lines[-40:])
                    raise TimeoutError(f"console never showed {pattern!r} in {timeout_s:.0f}s; last:\n{tail}")
                self._cond.wait(remaining)
        if hit.startswith("<qemu exited"):
            raise RuntimeError(f"{hit} before the console showed {pattern!r}; see {self.console_log}")
        return hit

    def ssh(self, command: str, timeout_s: float = 120, check: bool = True) -> str:
        """Run a shell command in the guest as the user our user-data creates (`maker`)."""
        options = ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
        options += ["LogLevel=ERROR", "ConnectTimeout=60"]
        result = subprocess.run(
            ["ssh", "-i", str(self.ssh_key), "-p", str(self.ssh_port)]
            + [arg for option in options for arg in ("-o", option)]
            + ["maker@127.0.0.1", command],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        if check:
            assert result.returncode == 0, f"guest: {command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        return result.stdout

    def wait_ssh(self, timeout_s: float) -> None:
        """Log in as soon as sshd answers: the host sees no other sign of it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.ssh("echo up", timeout_s=90, check=False).strip() == "up":
                    return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no SSH login into the guest within {timeout_s:.0f}s")
            time.sleep(5)  # a refused connection returns at once: ask again in a while
