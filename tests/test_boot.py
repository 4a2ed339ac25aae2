"""Flash and boot, proven under full-system emulation: a Debian trixie arm64 board (QEMU `virt`)
boots with our cloud-init files and an offline wheelhouse on its "boot partition", installs
LayerGuard on first boot, and guards a print on the host's virtual printer through an emulated
FTDI USB-serial adapter named by our udev rule; camera, detection stand-in and Mosquitto run on
the host's loopback. Then `systemctl stop` and a reboot.

Marked `boot` (and slow): the default run leaves it out; `scripts/test.sh -m boot` runs it, and
.ci/run does whenever config/, scripts/, the unit or the Dockerfile changed since it last passed
here (scripts/boot-changed.sh). Needs root (mmdebstrap for the cached base image). Times on
this 2-core machine: README, "Tests"."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from boot_vm import GUEST_HOST_ADDR, ROOT, Guest, base_image, make_seed, make_wheelhouse

from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe
from sim.world import SimWorld, sim_world

pytestmark = [
    pytest.mark.boot,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the base image needs root (mmdebstrap, chroot)"),
]

HOSTNAME = "prusa-mk3"  # our user-data's; the agent derives its printer_id from it
PREFIX = f"layerguard/{HOSTNAME}"
MQTT_PASSWORD = "boot-test-mqtt-secret"
FIRST_BOOT_S = 1800  # cloud-init's whole first boot, the offline install included, emulated
BOOT_S = 900
AGENT_S = 600


def seed_files(world: SimWorld, broker: MosquittoBroker, ssh_public_key: str) -> dict[str, str]:
    """Our cloud-init files with the CHANGE-MEs filled in for this world, nothing else changed."""
    user_data = yaml.safe_load((ROOT / "config" / "cloud-init" / "user-data").read_text())
    assert user_data["hostname"] == HOSTNAME
    user_data["users"][0]["ssh_authorized_keys"] = [ssh_public_key]
    snapshot_port = world.webcam.url.split(":")[2].split("/")[0]
    service_port = world.service.base_url.rsplit(":", 1)[1]
    contents = {
        "/etc/layerguard/layerguard.toml": (
            '[printer]\nport = "/dev/layerguard-printer"\n\n'
            f'[camera]\nsource = "http://{GUEST_HOST_ADDR}:{snapshot_port}/snapshot"\n\n'
            f'[detection]\napi_url = "http://{GUEST_HOST_ADDR}:{service_port}"\n\n'
            f'[mqtt]\nhost = "{GUEST_HOST_ADDR}"\nport = {broker.port}\nusername = "layerguard"\n'
        ),
        "/etc/layerguard/secrets/detection__api_key": world.api_key,
        "/etc/layerguard/secrets/mqtt__password": MQTT_PASSWORD,
    }
    for entry in user_data["write_files"]:
        assert entry["path"] in contents, f"user-data writes {entry['path']}: the boot test must fill it in"
        entry["content"] = contents[entry["path"]]
    cloud_init = ROOT / "config" / "cloud-init"
    return {
        "user-data": "#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False),
        "meta-data": (cloud_init / "meta-data").read_text(),
        "network-config": (cloud_init / "network-config").read_text(),
    }


@pytest.fixture(scope="module")
def image() -> Path:
    """The cached base image; building it also installs QEMU and the other host tools."""
    return base_image()


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(users={"layerguard": MQTT_PASSWORD, "probe": "probe"}) as running:
        yield running


def test_first_boot_installs_layerguard_and_it_pauses_a_failing_print(
    image: Path, broker: MosquittoBroker, tmp_path: Path
) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    wheelhouse = tmp_path / "wheelhouse"
    make_wheelhouse(wheelhouse)
    probe = MqttProbe(broker.host, broker.port, username="probe", password="probe")
    try:
        with sim_world(
            file="part.gcode",
            failure_at=0.05,
            print_duration_s=900,
            interval_s=5,
            broker=broker,
            heat_duration_s=5,
            pause_delay_s=1,
        ) as world:
            probe.subscribe(f"{PREFIX}/#")
            seed = tmp_path / "bootfs.img"
            make_seed(
                seed, seed_files(world, broker, key.with_suffix(".pub").read_text()), wheelhouse, tmp_path
            )
            forwards = [broker.port, int(world.webcam.url.split(":")[2].split("/")[0])]
            forwards.append(int(world.service.base_url.rsplit(":", 1)[1]))
            guest = Guest(
                image,
                seed,
                tmp_path / "console.log",
                serial_tty=os.path.realpath(world.printer.port),
                forwards=forwards,
                ssh_key=key,
            )
            with guest:
                check_first_boot(guest, world, probe)
    finally:
        probe.close()


def check_first_boot(guest: Guest, world: SimWorld, probe: MqttProbe) -> None:
    guest.wait_console(r"Cloud-init v\. \S+ finished", FIRST_BOOT_S)
    guest.wait_ssh(BOOT_S)
    assert "status: done" in guest.ssh("cloud-init status --long"), guest.ssh("cloud-init status --long")
    output = guest.ssh("cat /var/log/cloud-init-output.log")
    assert "from /boot/firmware/layerguard/wheelhouse (offline)" in output, output[-3000:]
    assert output.count("install: done") == 1, output[-3000:]

    # udev named the emulated FTDI adapter, for the service's group.
    assert guest.ssh("readlink -f /dev/layerguard-printer").strip().startswith("/dev/ttyUSB")
    assert "dialout" in guest.ssh("stat -L -c %G /dev/layerguard-printer")

    # systemd started the unit from our files and it sent READY=1 (Type=notify: active only then).
    try:
        probe.wait_for_blocking(f"{PREFIX}/availability", b"online", timeout_s=AGENT_S)
    except TimeoutError as exc:  # say why from inside the guest, not only that nothing came
        raise AssertionError(guest.ssh("journalctl -u layerguard --no-pager -n 60", check=False)) from exc
    state = guest.ssh(
        "systemctl show layerguard -p Type -p ActiveState -p SubState -p NRestarts -p StatusText"
    )
    assert "Type=notify" in state and "ActiveState=active" in state and "NRestarts=0" in state, state
    probe.wait_for_blocking(
        f"{PREFIX}/state", lambda p: json.loads(p)["print_state"] == "idle", timeout_s=AGENT_S
    )

    # A print on the virtual printer: inspected with the host's webcam, paused by the agent.
    world.printer.panel_start("part.gcode")
    probe.wait_for_blocking(
        f"{PREFIX}/state", lambda p: json.loads(p)["print_state"] == "printing", timeout_s=AGENT_S
    )
    paused = probe.wait_for_blocking(
        f"{PREFIX}/event", lambda p: json.loads(p)["type"] == "failure_paused", timeout_s=AGENT_S
    )
    assert world.printer.state == "paused", world.printer.state
    assert world.service.calls, "no inspection reached the detection stand-in"
    probe.wait_for_blocking(f"{PREFIX}/snapshot", timeout_s=60)
    probe.wait_for_blocking(
        f"{PREFIX}/state", lambda p: json.loads(p)["print_state"] == "paused", timeout_s=AGENT_S
    )
    assert json.loads(paused.payload)["type"] == "failure_paused"

    # A clean stop says offline itself.
    probe.clear()
    guest.ssh("sudo systemctl stop layerguard")
    probe.wait_for_blocking(f"{PREFIX}/availability", b"offline", timeout_s=120)

    # A reboot comes back guarding, and cloud-init's first-boot work is not done again.
    probe.clear()
    mark = guest.mark()
    guest.ssh("sudo systemctl reboot", check=False)
    guest.wait_console(r"Cloud-init v\. \S+ finished", BOOT_S, since=mark)
    probe.wait_for_blocking(f"{PREFIX}/availability", b"online", timeout_s=AGENT_S)
    # The paused print is found again on the printer (a fresh agent cannot tell a paused SD print
    # from a running one by M27 alone, so it says `unknown` until the printer reports more).
    state = probe.wait_for_blocking(
        f"{PREFIX}/state", lambda p: json.loads(p)["file"] == "part.gcode", timeout_s=AGENT_S
    )
    assert json.loads(state.payload)["monitoring"] is True
    guest.wait_ssh(BOOT_S)
    assert guest.ssh("systemctl is-active layerguard").strip() == "active"
    output = guest.ssh("cat /var/log/cloud-init-output.log")
    assert output.count("install: done") == 1, "install.sh ran again on the second boot"
