"""Flash and boot, proven under full-system emulation: a Debian trixie arm64 board (QEMU `virt`)
boots with our cloud-init files and an offline wheelhouse on its "boot partition", installs
LayerGuard on first boot, and guards prints on the host's virtual printers through emulated FTDI
USB-serial adapters; cameras, detection stand-in and Mosquitto run on the host's loopback. Two
flashes: the shipped one-printer user-data (the plain unit, our udev rule's /dev/layerguard-printer,
`systemctl stop` and a reboot), and its two-printer example (an agent per printer, by-id names).

Marked `boot` (and slow): the default run leaves it out; `scripts/test.sh -m boot` runs it, and
.ci/run does whenever config/, scripts/, the unit or the Dockerfile changed since it last passed
here (scripts/boot-changed.sh). Needs root (mmdebstrap for the cached base image). Times on
this 2-core machine: README, "Tests"."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from boot_vm import GUEST_HOST_ADDR, Guest, base_image, make_seed, make_wheelhouse
from cloud_init_files import CLOUD_INIT, ONE_PRINTER_CONFIG, two_printer_user_data
from cloud_init_files import user_data as shipped_user_data

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
PAUSING = ("M25", "M24", "M601", "M602")  # pause and resume, Marlin's and Prusa's


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def by_id(serial: str) -> str:
    """udev's /dev/serial/by-id name of QEMU's usb-serial (manufacturer QEMU, product QEMU USB
    SERIAL) with this serial number."""
    return f"/dev/serial/by-id/usb-QEMU_QEMU_USB_SERIAL_{serial}-if00-port0"


def toml(config: dict[str, dict[str, object]]) -> str:
    """A config of sections of strings and numbers (JSON strings are TOML basic strings)."""
    return "\n".join(
        f"[{section}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
        for section, keys in config.items()
    )


def host_services(world: SimWorld, broker: MosquittoBroker) -> dict[str, dict[str, object]]:
    """The config sections that point an agent at this host's camera, stand-in and broker."""
    return {
        "camera": {"source": f"http://{GUEST_HOST_ADDR}:{port_of(world.webcam.url)}/snapshot"},
        "detection": {"api_url": f"http://{GUEST_HOST_ADDR}:{port_of(world.service.base_url)}"},
        "mqtt": {"host": GUEST_HOST_ADDR, "port": broker.port, "username": "layerguard"},
    }


def seed_files(
    user_data: dict[str, Any], configs: dict[str, str], world: SimWorld, ssh_public_key: str
) -> dict[str, str]:
    """Our cloud-init files with the CHANGE-MEs filled in for this world, nothing else changed:
    `configs` are the agents' config files by path, the secrets are the Pi's shared ones."""
    user_data["users"][0]["ssh_authorized_keys"] = [ssh_public_key]
    contents = configs | {
        "/etc/layerguard/secrets/detection__api_key": world.api_key,
        "/etc/layerguard/secrets/mqtt__password": MQTT_PASSWORD,
    }
    for entry in user_data["write_files"]:
        assert entry["path"] in contents, f"user-data writes {entry['path']}: the boot test must fill it in"
        entry["content"] = contents[entry["path"]]
    return {
        "user-data": "#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False),
        "meta-data": (CLOUD_INIT / "meta-data").read_text(),
        "network-config": (CLOUD_INIT / "network-config").read_text(),
    }


@pytest.fixture(scope="module")
def image() -> Path:
    """The cached base image; building it also installs QEMU and the other host tools."""
    return base_image()


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(users={"layerguard": MQTT_PASSWORD, "probe": "probe"}) as running:
        yield running


@pytest.fixture
def probe(broker: MosquittoBroker) -> Iterator[MqttProbe]:
    probe = MqttProbe(broker.host, broker.port, username="probe", password="probe")
    yield probe
    probe.close()


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    return key


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    out = tmp_path / "wheelhouse"
    make_wheelhouse(out)
    return out


def world(
    broker: MosquittoBroker, file: str, failure_at: float | None
) -> contextlib.AbstractContextManager[SimWorld]:
    return sim_world(
        file=file,
        failure_at=failure_at,
        print_duration_s=900,
        interval_s=5,
        broker=broker,
        heat_duration_s=5,
        pause_delay_s=1,
    )


def boot(
    image: Path, files: dict[str, str], wheelhouse: Path, tmp: Path, ssh_key: Path, **guest: Any
) -> Guest:
    seed = tmp / "bootfs.img"
    make_seed(seed, files, wheelhouse, tmp)
    return Guest(image, seed, tmp / "console.log", ssh_key=ssh_key, **guest)


def test_first_boot_installs_layerguard_and_it_pauses_a_failing_print(
    image: Path, broker: MosquittoBroker, probe: MqttProbe, ssh_key: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    user_data = shipped_user_data()
    assert user_data["hostname"] == HOSTNAME
    with world(broker, "part.gcode", 0.05) as part:
        probe.subscribe(f"{PREFIX}/#")
        config = {"printer": {"port": "/dev/layerguard-printer"}} | host_services(part, broker)
        files = seed_files(
            user_data, {ONE_PRINTER_CONFIG: toml(config)}, part, ssh_key.with_suffix(".pub").read_text()
        )
        forwards = [broker.port, port_of(part.webcam.url), port_of(part.service.base_url)]
        printers = [(os.path.realpath(part.printer.port), "LG0001")]
        with boot(image, files, wheelhouse, tmp_path, ssh_key, printers=printers, forwards=forwards) as guest:
            check_first_boot(guest, part, probe)


def test_first_boot_with_two_printers_guards_each_on_its_own(
    image: Path, broker: MosquittoBroker, probe: MqttProbe, ssh_key: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    """The two-printer example of our user-data, flashed: an agent per printer, each on its own
    adapter (by serial number), camera and page; a failing print on one paused while the other
    prints on untouched, commands for one never reach the other, one agent stopped and the other
    unaffected, and the Pi's month of Gadget calls the sum of both, as the one cloud counted them."""
    user_data = two_printer_user_data()
    serials = {"left": "LEFT0001", "right": "RIGHT0002"}
    with world(broker, "left.gcode", 0.05) as left, world(broker, "right.gcode", None) as right:
        probe.subscribe("layerguard/#")
        configs, pages = {}, {}
        for entry, (name, printer) in zip(
            user_data["write_files"][-2:], (("left", left), ("right", right)), strict=True
        ):
            assert entry["path"] == f"/etc/layerguard/{name}.toml"
            example = tomllib.loads(entry["content"])
            # The one cloud (left's stand-in) for both: the key and its allowance are the Pi's.
            config = example | {"printer": {"port": by_id(serials[name])}} | host_services(printer, broker)
            config["detection"] = host_services(left, broker)["detection"]
            configs[entry["path"]] = toml(config)
            pages[name] = int(example.get("web", {}).get("listen", ":80").rsplit(":", 1)[1])
        assert pages == {"left": 80, "right": 8081}
        files = seed_files(user_data, configs, left, ssh_key.with_suffix(".pub").read_text())
        forwards = [
            broker.port,
            port_of(left.webcam.url),
            port_of(right.webcam.url),
            port_of(left.service.base_url),
        ]
        printers = [
            (os.path.realpath(w.printer.port), serials[n]) for n, w in (("left", left), ("right", right))
        ]
        with boot(image, files, wheelhouse, tmp_path, ssh_key, printers=printers, forwards=forwards) as guest:
            check_two_printers(guest, left, right, probe, serials, pages)


def check_installed(guest: Guest) -> None:
    """cloud-init's first boot ran install.sh once, from the boot partition's wheelhouse."""
    guest.wait_console(r"Cloud-init v\. \S+ finished", FIRST_BOOT_S)
    guest.wait_ssh(BOOT_S)
    status = guest.ssh("cloud-init status --long")
    output = guest.ssh("cat /var/log/cloud-init-output.log")
    assert "status: done" in status, status + output[-3000:]
    assert "from /boot/firmware/layerguard/wheelhouse (offline)" in output, output[-3000:]
    assert output.count("install: done") == 1, output[-3000:]


def wait_online(guest: Guest, probe: MqttProbe, prefix: str, unit: str) -> None:
    """systemd started the unit from our files and it sent READY=1 (Type=notify: active only then)."""
    try:
        probe.wait_for_blocking(f"{prefix}/availability", b"online", timeout_s=AGENT_S)
    except TimeoutError as exc:  # say why from inside the guest, not only that nothing came
        raise AssertionError(guest.ssh(f"journalctl -u {unit} --no-pager -n 60", check=False)) from exc
    state = guest.ssh(f"systemctl show {unit} -p Type -p ActiveState -p SubState -p NRestarts -p StatusText")
    assert "Type=notify" in state and "ActiveState=active" in state and "NRestarts=0" in state, state


def print_state(probe: MqttProbe, prefix: str, wanted: str, since: int = 0) -> dict[str, Any]:
    message = probe.wait_for_blocking(
        f"{prefix}/state", lambda p: json.loads(p)["print_state"] == wanted, timeout_s=AGENT_S, since=since
    )
    return json.loads(message.payload)


def event(probe: MqttProbe, prefix: str, kind: str, since: int = 0) -> dict[str, Any]:
    message = probe.wait_for_blocking(
        f"{prefix}/event", lambda p: json.loads(p)["type"] == kind, timeout_s=AGENT_S, since=since
    )
    return json.loads(message.payload)


def inspected_after(probe: MqttProbe, prefix: str) -> None:
    """A new inspection of this printer from now on."""
    probe.wait_for_blocking(f"{prefix}/inspection", timeout_s=AGENT_S, since=probe.mark())


def check_first_boot(guest: Guest, world: SimWorld, probe: MqttProbe) -> None:
    check_installed(guest)

    # udev named the emulated FTDI adapter, for the service's group.
    assert guest.ssh("readlink -f /dev/layerguard-printer").strip().startswith("/dev/ttyUSB")
    assert "dialout" in guest.ssh("stat -L -c %G /dev/layerguard-printer")

    wait_online(guest, probe, PREFIX, "layerguard")
    print_state(probe, PREFIX, "idle")

    # A print on the virtual printer: inspected with the host's webcam, paused by the agent.
    world.printer.panel_start("part.gcode")
    print_state(probe, PREFIX, "printing")
    event(probe, PREFIX, "failure_paused")
    assert world.printer.state == "paused", world.printer.state
    assert world.service.calls, "no inspection reached the detection stand-in"
    probe.wait_for_blocking(f"{PREFIX}/snapshot", timeout_s=60)
    print_state(probe, PREFIX, "paused")

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


def check_two_printers(
    guest: Guest,
    left: SimWorld,
    right: SimWorld,
    probe: MqttProbe,
    serials: dict[str, str],
    pages: dict[str, int],
) -> None:
    check_installed(guest)
    # Each adapter by its serial number, as `layerguard adapters` tells the user to name it.
    adapters = {a["serial"]: a for a in json.loads(guest.ssh("layerguard adapters --json"))}
    assert set(adapters) == set(serials.values()), adapters
    for serial in serials.values():
        assert adapters[serial]["by_id"] == adapters[serial]["config_port"] == by_id(serial), adapters
        assert (adapters[serial]["vendor_id"], adapters[serial]["product_id"]) == ("0403", "6001")
    assert guest.ssh("systemctl is-enabled layerguard", check=False).strip() != "enabled"
    for name in serials:
        wait_online(guest, probe, f"layerguard/{name}", f"layerguard@{name}")
        print_state(probe, f"layerguard/{name}", "idle")
    # Each page on its own port (the login page answers without a session).
    for port in pages.values():
        status = guest.ssh(
            f"python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/login').status)\""
        )
        assert status.strip() == "200", (port, status)

    # Both print; left's fails and its agent pauses it, right's prints on and is inspected after.
    left.printer.panel_start("left.gcode")
    right.printer.panel_start("right.gcode")
    print_state(probe, "layerguard/right", "printing")
    event(probe, "layerguard/left", "failure_paused")
    assert left.printer.state == "paused", left.printer.state
    print_state(probe, "layerguard/left", "paused")
    inspected_after(probe, "layerguard/right")
    assert right.printer.state == "printing", right.printer.state

    # Commands over MQTT for left: resumed and paused again, right never hears of either.
    mark = probe.mark()
    probe.publish("layerguard/left/command/resume", "PRESS")
    print_state(probe, "layerguard/left", "printing", since=mark)
    mark = probe.mark()
    probe.publish("layerguard/left/command/pause", "PRESS")
    print_state(probe, "layerguard/left", "paused", since=mark)
    assert left.printer.state == "paused", left.printer.state
    inspected_after(probe, "layerguard/right")

    # Left's agent stopped: its will says offline, right's agent goes on inspecting.
    guest.ssh("sudo systemctl stop layerguard@left")
    probe.wait_for_blocking("layerguard/left/availability", b"offline", timeout_s=120)
    inspected_after(probe, "layerguard/right")
    state = guest.ssh("systemctl show layerguard@right -p ActiveState -p NRestarts")
    assert "ActiveState=active" in state and "NRestarts=0" in state, state
    assert right.printer.state == "printing", right.printer.state
    assert not [c for c in right.printer.received if c.split()[0] in PAUSING], right.printer.received
    assert not [m for m in probe.messages("layerguard/right/event") if b"paused" in m.payload]
    assert not {json.loads(m.payload)["print_state"] for m in probe.messages("layerguard/right/state")} & {
        "paused",
        "error",
    }

    # The Pi's month: both agents' calls, each counted once, as the one cloud saw them.
    guest.ssh("sudo systemctl stop layerguard@right")
    probe.wait_for_blocking("layerguard/right/availability", b"offline", timeout_s=120)
    pi = json.loads(guest.ssh("sudo cat /var/lib/layerguard/gadget-usage-pi.json"))
    assert pi["calls"] == pi["printers"]["left"] + pi["printers"]["right"], pi
    assert pi["printers"]["left"] > 0 and pi["printers"]["right"] > 0, pi
    # A call is counted just before it goes out: a stop in between (one per agent at most) is
    # counted without reaching the cloud, or its answer without reaching the agent's state.
    seen = len([c for c in left.service.calls if c.endpoint == "process"])
    assert seen <= pi["calls"] <= seen + 2, (pi, seen)
    for name in serials:
        last = json.loads(probe.messages(f"layerguard/{name}/state")[-1].payload)
        assert 0 <= pi["printers"][name] - last["api_calls_month"] <= 1, (name, last, pi)
