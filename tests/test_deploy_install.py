"""First boot for real, in a throw-away Debian root: debootstrap bookworm (the release of
Raspberry Pi OS), lay out the boot partition and the files cloud-init writes from our
user-data, run its runcmd (scripts/install.sh) in a chroot, then upgrade, uninstall and purge.

Needs root, debootstrap and the Debian mirror this machine's apt uses; pip inside the chroot
reaches PyPI with this machine's CA bundle. Slow: about a minute and a half."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULE = "99-layerguard-printer.rules"
CHECKOUT = ["pyproject.toml", "README.md", "agent", "hardware", "sim", "config", "scripts"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root"),
    pytest.mark.skipif(
        shutil.which("debootstrap") is None, reason="debootstrap missing: run scripts/setup.sh"
    ),
]


def debian_mirror() -> str:
    """The mirror this machine's apt uses for Debian itself (scripts/debian-mirror.sh)."""
    found = subprocess.run(
        [ROOT / "scripts" / "debian-mirror.sh"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "http://deb.debian.org/debian"


@pytest.fixture(scope="module")
def rootfs() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="layerguard-rootfs-") as tmp:
        root = Path(tmp) / "root"
        bootstrap = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=systemd,udev", "bookworm", root, debian_mirror()],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert bootstrap.returncode == 0, bootstrap.stdout[-2000:] + bootstrap.stderr[-2000:]
        # The chroot reaches the network as this machine does: its resolver and the CAs it trusts
        # (the bundle, and the local CAs that update-ca-certificates would add to it again).
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        for trusted in ("etc/ssl/certs/ca-certificates.crt", "usr/local/share/ca-certificates"):
            source = Path("/") / trusted
            if source.is_dir():
                shutil.copytree(source, root / trusted, dirs_exist_ok=True)
            elif source.is_file():
                (root / trusted).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, root / trusted)
        yield root


def in_chroot(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["chroot", str(root), *command], capture_output=True, text=True, timeout=600)
    return result


def first_boot(root: Path) -> tuple[dict[str, str], list[list[str]]]:
    """What cloud-init does with our files: the checkout on the boot partition, write_files
    applied; returns the written files and the runcmd to run."""
    boot = root / "boot" / "firmware" / "layerguard"
    for name in CHECKOUT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, boot / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            boot.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, boot / name)
    user_data = yaml.safe_load((ROOT / "config" / "cloud-init" / "user-data").read_text())
    written = {}
    for entry in user_data["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry["content"])
        path.chmod(int(entry["permissions"], 8))
        written[entry["path"]] = entry["content"]
    return written, user_data["runcmd"]


def test_first_boot_installs_then_upgrade_uninstall_and_purge(rootfs: Path) -> None:
    written, runcmd = first_boot(rootfs)
    for command in runcmd:
        result = in_chroot(rootfs, *command)
        assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout

    # The service: installed, enabled for the next boot, and valid for this system's systemd.
    unit = rootfs / "etc/systemd/system/layerguard.service"
    assert unit.read_text() == (ROOT / "config/layerguard.service").read_text()
    assert (rootfs / "etc/systemd/system/multi-user.target.wants/layerguard.service").is_symlink()
    verify = in_chroot(rootfs, "systemd-analyze", "verify", "/etc/systemd/system/layerguard.service")
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")

    # The user and its groups; the agent in its virtual environment.
    assert set(in_chroot(rootfs, "id", "-nG", "layerguard").stdout.split()) == {
        "layerguard",
        "dialout",
        "video",
    }
    version = in_chroot(rootfs, "/usr/local/bin/layerguard", "--version")
    assert version.stdout.startswith("layerguard "), version.stderr
    assert "include-system-site-packages = true" in (rootfs / "opt/layerguard/venv/pyvenv.cfg").read_text()
    # The print reports draw with apt's matplotlib and numpy: pip put no second numpy in front of
    # the one python3-picamera2 is built against.
    modules = in_chroot(
        rootfs,
        "/opt/layerguard/venv/bin/python",
        "-c",
        "import matplotlib, numpy; print(matplotlib.__file__, numpy.__file__)",
    )
    assert modules.stdout.count("/usr/lib/python3/dist-packages/") == 2, modules.stdout + modules.stderr

    # cloud-init's config is kept; secrets are readable by the agent's group only.
    config = rootfs / "etc/layerguard/layerguard.toml"
    assert config.read_text() == written["/etc/layerguard/layerguard.toml"]
    secret = rootfs / "etc/layerguard/secrets/detection__api_key"
    assert oct(secret.stat().st_mode & 0o777) == "0o640"
    assert (
        in_chroot(rootfs, "stat", "-c", "%G", str(secret.relative_to(rootfs))).stdout.strip() == "layerguard"
    )
    assert in_chroot(rootfs, "stat", "-c", "%U", "/var/lib/layerguard").stdout.strip() == "layerguard"

    # The udev rule, when the checkout has it (another change adds it).
    if (ROOT / "config" / RULE).is_file():
        assert (rootfs / "etc/udev/rules.d" / RULE).read_text() == (ROOT / "config" / RULE).read_text()
    else:
        assert f"no config/{RULE} in this checkout" in log

    # Again: an upgrade keeps the config.
    config.write_text(config.read_text() + "\n# edited on the Pi\n")
    again = in_chroot(rootfs, "bash", "/boot/firmware/layerguard/scripts/install.sh")
    assert again.returncode == 0, again.stderr
    assert "keeping your /etc/layerguard/layerguard.toml" in again.stdout
    assert config.read_text().endswith("# edited on the Pi\n")

    # Uninstall keeps config, secrets, state and user; purge removes them.
    removed = in_chroot(rootfs, "bash", "/boot/firmware/layerguard/scripts/install.sh", "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and not (rootfs / "opt/layerguard").exists()
    assert not (rootfs / "etc/systemd/system/multi-user.target.wants/layerguard.service").exists()
    assert not (rootfs / "etc/udev/rules.d" / RULE).exists()
    assert config.is_file() and secret.is_file()
    assert in_chroot(rootfs, "id", "layerguard").returncode == 0
    purged = in_chroot(
        rootfs, "bash", "/boot/firmware/layerguard/scripts/install.sh", "--uninstall", "--purge"
    )
    assert purged.returncode == 0, purged.stderr
    assert not (rootfs / "etc/layerguard").exists() and not (rootfs / "var/lib/layerguard").exists()
    assert in_chroot(rootfs, "id", "layerguard").returncode != 0


def test_several_printers_get_one_agent_each_and_leave_together(rootfs: Path) -> None:
    """`install.sh --printer left --printer right`: two instances of the template, each with its
    config, secrets directory and page port, the plain service not enabled; uninstall disables them."""
    if not (rootfs / "boot/firmware/layerguard").is_dir():
        first_boot(rootfs)
    etc = rootfs / "etc/layerguard"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "left.toml").write_text('[printer]\nport = "/dev/layerguard-left"\n')
    install = ["bash", "/boot/firmware/layerguard/scripts/install.sh"]
    result = in_chroot(rootfs, *install, "--printer", "left", "--printer", "right")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keeping your /etc/layerguard/left.toml" in result.stdout
    assert "installed the default /etc/layerguard/right.toml" in result.stdout
    # left's config leaves web.listen at port 80: right's page gets the next free port.
    assert "its page: port 8081" in result.stdout
    assert '\nlisten = "0.0.0.0:8081"\n' in (etc / "right.toml").read_text()
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    assert sorted(p.name for p in wants.glob("layerguard*")) == [
        "layerguard@left.service",
        "layerguard@right.service",
    ]
    template = rootfs / "etc/systemd/system/layerguard@.service"
    assert template.read_text() == (ROOT / "config/layerguard@.service").read_text()
    verify = in_chroot(rootfs, "systemd-analyze", "verify", "/etc/systemd/system/layerguard@left.service")
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    for name in ("left", "right"):
        assert in_chroot(rootfs, "stat", "-c", "%G %a", f"/etc/layerguard/{name}/secrets").stdout.split() == [
            "layerguard",
            "750",
        ]
    doctor = in_chroot(rootfs, "/usr/local/bin/layerguard", "doctor", "--all")
    assert "== layerguard@left: /etc/layerguard/left.toml" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "== layerguard@right: /etc/layerguard/right.toml" in doctor.stdout
    removed = in_chroot(rootfs, *install, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not list(wants.glob("layerguard*")) and not template.exists()
    assert (etc / "left.toml").is_file()
