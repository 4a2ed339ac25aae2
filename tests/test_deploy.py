"""The deployment files checked by the tools that judge them: shellcheck, hadolint,
systemd-analyze, cloud-init's schema, netplan. No Pi and no Docker engine are needed.
scripts/setup.sh installs the tools."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloud_init_files import CLOUD_INIT, two_printer_example, two_printer_user_data, user_data

from agent.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "config" / "layerguard.service"
TEMPLATE = ROOT / "config" / "layerguard@.service"
CLOUD_CONFIG_SCHEMA = Path(
    "/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json"
)


def tool(name: str) -> str:
    """A program from the venv (hadolint, shellcheck) or the system; missing means setup was skipped."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}:/usr/bin:/usr/sbin:/bin")
    assert found, f"{name} is not installed: run scripts/setup.sh"
    return found


def run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=60)


def shell_scripts() -> list[Path]:
    candidates = [*ROOT.glob("scripts/*"), *ROOT.glob(".ci/*")]
    return sorted(p for p in candidates if p.is_file() and p.read_text().startswith("#!/usr/bin/env bash"))


def test_every_shell_script_passes_shellcheck() -> None:
    scripts = shell_scripts()
    assert ROOT / "scripts" / "install.sh" in scripts
    result = run(tool("shellcheck"), *scripts)
    assert result.returncode == 0, result.stdout


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "Dockerfile.arm64")
    assert result.returncode == 0, result.stdout


def test_dockerfile_runs_the_agent_as_the_issue_asks() -> None:
    text = (ROOT / "Dockerfile.arm64").read_text()
    assert re.search(r"^ARG RELEASE=trixie\nFROM debian:\$\{RELEASE\}-slim", text, re.M), (
        "the Debian release of Raspberry Pi OS"
    )
    assert "Suites: ${RELEASE}" in text, "Raspberry Pi's packages for the same release"
    assert "archive.raspberrypi.com/debian" in text and "python3-picamera2" in text
    assert "venv --system-site-packages" in text
    assert "--groups dialout,video" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0"), "a non-root user"
    assert 'VOLUME ["/etc/layerguard", "/var/lib/layerguard"]' in text
    assert re.search(r'^HEALTHCHECK .*CMD \["layerguard", "health"\]', text, re.M)


def test_compose_example_passes_devices_udev_cgroup_rules_and_volumes() -> None:
    service = yaml.safe_load((ROOT / "config" / "docker-compose.yml").read_text())["services"]["layerguard"]
    assert (ROOT / "config" / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert set(service["device_cgroup_rules"]) == {"c 166:* rmw", "c 188:* rmw"}
    assert "/run/udev:/run/udev:ro" in service["volumes"]
    mounted = {volume.split(":")[1] for volume in service["volumes"]}
    assert {"/etc/layerguard", "/var/lib/layerguard"} <= mounted
    assert any(device.startswith("/dev/serial/by-id/") for device in service["devices"])


def unit_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's agent instead of /opt.
    unit = tmp_path / "layerguard.service"
    unit.write_text(UNIT.read_text().replace("/opt/layerguard/venv/bin/layerguard", sys.executable))
    result = run(tool("systemd-analyze"), "verify", unit, cwd=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), "warnings are mistakes too"
    security = run(tool("systemd-analyze"), "security", "--offline=yes", "--threshold=30", unit, cwd=tmp_path)
    assert security.returncode == 0, security.stdout[-600:]


def test_printer_template_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    template = tmp_path / "layerguard@.service"
    template.write_text(TEMPLATE.read_text().replace("/opt/layerguard/venv/bin/layerguard", sys.executable))
    result = run(tool("systemd-analyze"), "verify", tmp_path / "layerguard@left-mk4.service", cwd=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), "warnings are mistakes too"
    instance = tmp_path / "layerguard@left-mk4.service"
    security = run(
        tool("systemd-analyze"), "security", "--offline=yes", "--threshold=30", instance, cwd=tmp_path
    )
    assert security.returncode == 0, security.stdout[-600:]


def test_printer_template_is_the_plain_unit_but_for_the_instance() -> None:
    """One agent per printer, hardened and supervised exactly as the one-printer service: only
    the lines that name the instance differ."""
    plain, template = unit_settings(), unit_settings(TEMPLATE)
    differing = {key for key in plain.keys() | template.keys() if plain.get(key) != template.get(key)}
    assert differing == {"Description", "ExecStart", "StateDirectory", "Environment"}
    assert template["ExecStart"] == [
        "/opt/layerguard/venv/bin/layerguard run --config /etc/layerguard/%i.toml"
    ]
    assert template["StateDirectory"] == ["layerguard layerguard/%i"]
    assert template["Environment"] == [
        "LAYERGUARD_CONFIG=/etc/layerguard/%i.toml LAYERGUARD_INSTANCE=%i PYTHONUNBUFFERED=1"
    ]


def test_unit_is_notify_with_watchdog_user_and_devices() -> None:
    unit = unit_settings()
    assert unit["Type"] == ["notify"] and unit["WatchdogSec"] and unit["Restart"] == ["on-failure"]
    assert unit["StartLimitBurst"] and unit["StartLimitIntervalSec"]
    assert unit["User"] == ["layerguard"] and set(unit["SupplementaryGroups"][0].split()) == {
        "dialout",
        "video",
    }
    assert unit["StateDirectory"] == ["layerguard"]
    assert "PrivateDevices" not in unit, "it would hide the printer and the camera"
    assert {"char-ttyACM rw", "char-ttyUSB rw", "char-video4linux rw"} <= set(unit["DeviceAllow"])
    assert unit["ExecStart"] == [
        "/opt/layerguard/venv/bin/layerguard run --config /etc/layerguard/layerguard.toml"
    ]
    # A missing LoadCredential= file fails the start on trixie, and every secret is optional.
    assert "LoadCredential" not in unit


def test_cloud_init_user_data_is_valid_cloud_config() -> None:
    result = run(tool("cloud-init"), "schema", "--config-file", CLOUD_INIT / "user-data")
    assert result.returncode == 0, result.stderr
    assert "deprecat" not in (result.stdout + result.stderr).lower()
    # cloud-init's schema lets unknown top-level keys through; a misspelt module would do nothing.
    known = set(_schema_properties(json.loads(CLOUD_CONFIG_SCHEMA.read_text())))
    assert set(user_data()) <= known


def test_cloud_init_installs_from_the_boot_partition_with_a_valid_config(tmp_path: Path) -> None:
    shipped = user_data()
    assert ["bash", "/boot/firmware/layerguard/scripts/install.sh"] in shipped["runcmd"]
    files = {entry["path"]: entry for entry in shipped["write_files"]}
    config = tmp_path / "layerguard.toml"
    config.write_text(files["/etc/layerguard/layerguard.toml"]["content"])
    settings = load_settings(config)
    assert settings.camera.source == "picamera2" and settings.mqtt.enabled
    assert {"/etc/layerguard/secrets/detection__api_key", "/etc/layerguard/secrets/mqtt__password"} < set(
        files
    )


def test_cloud_init_example_for_two_printers_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commented example in user-data, put in place of the one-printer parts, is valid
    cloud-config, installs an agent per printer, and each config reads as its instance's."""
    example = two_printer_example()
    assert example["runcmd"] == [
        ["bash", "/boot/firmware/layerguard/scripts/install.sh", "--printer", "left", "--printer", "right"]
    ]
    merged = tmp_path / "user-data"
    merged.write_text("#cloud-config\n" + yaml.safe_dump(two_printer_user_data()))
    result = run(tool("cloud-init"), "schema", "--config-file", merged)
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(tmp_path / "no-secrets"))
    ports, pages = set(), set()
    for entry in example["write_files"]:
        name = Path(entry["path"]).stem
        config = tmp_path / f"{name}.toml"
        config.write_text(entry["content"])
        monkeypatch.setenv("LAYERGUARD_INSTANCE", name)
        settings = load_settings(config)
        assert settings.agent.printer_id == name and settings.mqtt.enabled
        ports.add(settings.printer.port)
        pages.add(settings.web.address[1])
    assert len(ports) == 2 and pages == {80, 8081}


def test_network_config_is_valid_netplan(tmp_path: Path) -> None:
    netplan_dir = tmp_path / "etc" / "netplan"
    netplan_dir.mkdir(parents=True)
    (netplan_dir / "50-cloud-init.yaml").write_text((CLOUD_INIT / "network-config").read_text())
    (netplan_dir / "50-cloud-init.yaml").chmod(0o600)
    result = run(tool("netplan"), "generate", "--root-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "run").rglob("*wlan0*")), "a Wi-Fi connection was generated"


def test_meta_data_names_an_instance() -> None:
    assert yaml.safe_load((CLOUD_INIT / "meta-data").read_text())["instance-id"]


def _schema_properties(schema: Any) -> list[str]:
    """Every property name the cloud-config schema defines, at any depth of its $defs."""
    if isinstance(schema, dict):
        own = list(schema.get("properties", {}))
        return own + [name for value in schema.values() for name in _schema_properties(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in _schema_properties(value)]
    return []


@pytest.mark.parametrize("rule", ["c 166:* rmw", "c 188:* rmw"])
def test_readme_docker_run_line_has_the_cgroup_rules_and_udev(rule: str) -> None:
    readme = (ROOT / "README.md").read_text()
    run_line = readme[readme.index("docker run") :].split("\n\n")[0]
    assert f"--device-cgroup-rule='{rule}'" in run_line
    assert "-v /run/udev:/run/udev:ro" in run_line
