"""`layerguard doctor` against the simulated world: all green, then each check failing (or
warning) for the right reason when its component is missing or misconfigured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import doctor
from agent.cli import main
from sim.broker import MosquittoBroker
from sim.gadget_service import Reply
from sim.snapshot_server import Fault
from sim.world import SimWorld, sim_world

Config = dict[str, dict[str, object]]
# Another program with the printer's port open (as the running service would have it).
HOLD_PORT = (
    "import serial, sys, time; port = serial.Serial(sys.argv[1], exclusive=True); "
    "print('holding', flush=True); time.sleep(60)"
)


@pytest.fixture
def world(broker: MosquittoBroker) -> Iterator[SimWorld]:
    with sim_world(
        file="part.gcode", failure_at=None, print_duration_s=60, interval_s=5, broker=broker
    ) as made:
        yield made


@pytest.fixture
def run_doctor(
    world: SimWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[Config], tuple[int, dict[str, str]]]:
    """Runs `layerguard doctor` on a config pointing at the world, with `changes` applied;
    returns the exit code and each check's (first) line by check name."""
    for name in [k for k in os.environ if k.startswith("LAYERGUARD_")]:
        monkeypatch.delenv(name)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "detection__api_key").write_text(world.api_key)
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(secrets))
    assert world.broker is not None

    def run(changes: Config) -> tuple[int, dict[str, str]]:
        config: Config = {
            "agent": {"printer_id": "doc", "state_dir": str(tmp_path / "state")},
            "printer": {"port": world.printer.port},
            "camera": {"source": world.webcam.url},
            "detection": {"api_url": world.service.base_url},
            "mqtt": {"host": world.broker.host, "port": world.broker.port},
        }
        for section, keys in changes.items():
            config[section] = {**config.get(section, {}), **keys}
        path = tmp_path / "layerguard.toml"
        path.write_text(
            "".join(
                f"[{s}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())
                for s, keys in config.items()
            )
        )
        code = main(["doctor", "--config", str(path)])
        by_check: dict[str, str] = {}
        for line in capsys.readouterr().out.splitlines():
            by_check.setdefault(line[5:17].strip(), line)
        return code, by_check

    return run


def test_framing_says_what_applies_and_from_where(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
) -> None:
    code, lines = run_doctor({"camera": {"masks": [[0.7, 0.0, 1.0, 0.4]], "crop": [0.1, 0.0, 0.9, 1.0]}})
    assert code == 0, lines
    assert "masked and cropped" in lines["camera"]
    assert lines["framing"].startswith(
        "ok   framing      1 mask(s) from the config, crop [0.1, 0.0, 0.9, 1.0]"
    )
    assert lines["framing"].endswith("a crop changes what the model sees")


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower()


def test_all_green_in_the_simulated_world(run_doctor: Callable[[Config], tuple[int, dict[str, str]]]) -> None:
    code, lines = run_doctor({})
    assert code == 0, lines
    assert list(lines) == [
        "config",
        "state dir",
        "camera",
        "framing",
        "serial port",
        "mqtt broker",
        "api key",
        "notify urls",
        "page",
    ]
    assert all(line.startswith("ok ") for line in lines.values()), lines
    assert "no masks, no crop (config keys win over the no " in lines["framing"]
    assert "Marlin 2.1.2.1" in lines["serial port"]
    assert "published and received layerguard/doc/doctor" in lines["mqtt broker"]
    assert "created a detection context" in lines["api key"]
    assert "notifications off" in lines["notify urls"]
    # No password set: the generated one is shown, the one the agent's page will ask for.
    assert re.search(r"\.local/ password: \w{4}(-\w{4}){4} \(generated, in ", lines["page"]), lines["page"]


@pytest.mark.parametrize(
    ("check", "changes", "reason"),
    [
        ("camera", {"camera": {"source": "dir:/nonexistent/frames"}}, "/nonexistent/frames"),
        ("serial port", {"printer": {"port": "/dev/ttyACM-nothing"}}, "does not exist: is the printer on"),
        ("serial port", {"printer": {"port": ""}}, "printer.port is not set"),
        ("mqtt broker", {"mqtt": {"port": 1}}, "is the broker running and reachable"),
        ("state dir", {"agent": {"state_dir": "/proc/layerguard"}}, "give the agent's user write access"),
    ],
)
def test_each_check_fails_for_its_reason(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]], check: str, changes: Config, reason: str
) -> None:
    code, lines = run_doctor(changes)
    assert code == 1
    assert lines[check].startswith(f"FAIL {check}")
    assert reason in lines[check]
    others = [name for name, line in lines.items() if name != check and not line.startswith("ok ")]
    if check == "state dir":  # the page's generated password lives there too: said, not failed twice
        assert lines["page"].startswith("warn page") and "agent.state_dir" in lines["page"]
        others.remove("page")
    assert others == [], lines


def test_a_wrong_api_key_fails_to_create_a_context(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAYERGUARD_DETECTION__API_KEY", "wrong-key-0123")
    code, lines = run_doctor({})
    assert code == 1
    assert lines["api key"].startswith("FAIL api key")
    assert "creating a detection context failed" in lines["api key"]
    assert "wrong-key-0123" not in lines["api key"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("huge", "over the 12582912 bytes accepted"), ("truncated", "image file is truncated")],
)
def test_a_hostile_camera_fails_the_camera_check(
    world: SimWorld, run_doctor: Callable[[Config], tuple[int, dict[str, str]]], fault: Fault, reason: str
) -> None:
    world.webcam.fault = fault
    code, lines = run_doctor({})
    assert code == 1
    assert lines["camera"].startswith("FAIL camera")
    assert reason in lines["camera"]


@pytest.mark.parametrize(
    ("reply", "deadline_s", "reason"),
    [
        # The cap, not the deadline, ends this one: 64 KB at loopback speed, in time even on a
        # loaded machine (at 1 s it once timed out first beside two emulated guests).
        (
            Reply.huge(32 * 1024 * 1024, declare_length=False),
            10.0,
            "TOO_LARGE: the answer runs past the 65536-byte cap",
        ),
        (Reply.drip(0.5), 1.0, "TIMEOUT: no whole answer within 1 s"),
    ],
    ids=["huge", "drip"],
)
def test_a_hostile_detection_service_fails_the_api_key_check_in_time(
    world: SimWorld,
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    deadline_s: float,
    reason: str,
) -> None:
    monkeypatch.setattr(doctor, "API_DEADLINE_S", deadline_s)
    world.service.inject(reply, endpoint="createcontext")
    started = time.monotonic()
    code, lines = run_doctor({})
    # What this protects: the check ends at its deadline or its cap, not when the answer is in. Dripped
    # whole, the answer (over 100 bytes at 0.5 s each) takes minutes; 30 s leaves the other checks
    # (broker, serial, camera) room on a loaded 2-core machine and is still far below that.
    assert time.monotonic() - started < 30, "every check ends by itself"
    assert code == 1
    assert reason in lines["api key"]


def test_a_refused_login_is_named(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
) -> None:
    with MosquittoBroker(users={"layerguard": "right"}) as guarded:
        code, lines = run_doctor(
            {"mqtt": {"port": guarded.port, "username": "layerguard", "password": "wrong-password"}}
        )
    assert code == 1
    assert "refused the connection" in lines["mqtt broker"]
    assert "check mqtt.username and mqtt.password" in lines["mqtt broker"]
    assert "wrong-password" not in "".join(lines.values())


def test_a_port_held_by_another_process_is_a_warning_not_a_failure(
    world: SimWorld, run_doctor: Callable[[Config], tuple[int, dict[str, str]]]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_PORT, world.printer.port], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        code, lines = run_doctor({})
    finally:
        holder.kill()
        holder.wait()
    assert code == 0
    assert lines["serial port"].startswith("warn serial port")
    assert f"in use by pid {holder.pid} (python" in lines["serial port"]
    assert "systemctl stop layerguard" in lines["serial port"]
    assert "M110" not in world.printer.received, "the held port was not opened"


def test_a_port_that_never_answers_names_the_baud_rate(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "SERIAL_TIMEOUT_S", 1.0)
    controller, device = os.openpty()
    try:
        code, lines = run_doctor({"printer": {"port": os.ttyname(device)}})
    finally:
        os.close(device)
        os.close(controller)
    assert code == 1
    assert "no answer to M110/M115 within 1 s: check printer.baudrate (115200" in lines["serial port"]


def test_an_invalid_config_stops_at_the_first_line(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
) -> None:
    code, lines = run_doctor({"printer": {"baudrate": "fast"}})
    assert code == 2
    assert list(lines) == ["config"]
    assert "printer.baudrate" in lines["config"]


def test_a_misspelt_section_fails_the_config_check_with_the_right_name(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
) -> None:
    code, lines = run_doctor({"detecton": {"action": "warn"}})
    assert code == 2
    assert lines["config"] == "FAIL config       detecton: unknown section; did you mean [detection]?"


@pytest.mark.parametrize(
    ("content", "reason"),
    [("s3cret".encode("utf-16"), "is saved as UTF-16"), (b"", "is empty")],
    ids=["utf16", "empty"],
)
def test_a_bad_secret_file_fails_the_config_check_without_a_traceback(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
    tmp_path: Path,
    content: bytes,
    reason: str,
) -> None:
    secret = tmp_path / "secrets" / "detection__api_key"
    secret.write_bytes(content)
    code, lines = run_doctor({})
    assert code == 2
    assert list(lines) == ["config"]
    assert lines["config"].startswith(f"FAIL config       {secret}: the secret file for detection.api_key ")
    assert reason in lines["config"] and "s3cret" not in lines["config"]


def test_a_check_that_breaks_is_a_failure_line_not_a_traceback(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(settings: object) -> str:
        raise RuntimeError("camera driver fell over")

    monkeypatch.setattr(doctor, "check_camera", broken)
    code, lines = run_doctor({})
    assert code == 1
    assert lines["camera"] == "FAIL camera       unexpected RuntimeError: camera driver fell over"
    assert lines["api key"].startswith("ok ")  # the checks after it still ran


def test_a_likely_misspelt_variable_is_a_warning(
    run_doctor: Callable[[Config], tuple[int, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAYERGUARD_MQTT_PORT", "1884")
    code, lines = run_doctor({})
    assert code == 0
    assert lines["config"] == (
        "warn config       LAYERGUARD_MQTT_PORT is not a LayerGuard setting and is ignored; "
        "did you mean LAYERGUARD_MQTT__PORT?"
    )


def test_all_checks_every_printer_of_the_pi_and_finds_a_shared_port(
    world: SimWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`doctor --all`: one block per agent, each read as its instance (printer_id = its name);
    two printers configured on one port fail, since one of them is not guarded (on one page port:
    one of them has no page)."""
    for name in [k for k in os.environ if k.startswith("LAYERGUARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(tmp_path / "no-secrets"))
    assert world.broker is not None
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("left", "right"):
        (etc / f"{name}.toml").write_text(
            f'[agent]\nstate_dir = "{tmp_path / name}"\n[printer]\nport = "{world.printer.port}"\n'
            f'[camera]\nsource = "{world.webcam.url}"\n'
            f'[mqtt]\nhost = "{world.broker.host}"\nport = {world.broker.port}\n'
        )
    (etc / "left.toml.bak").write_text("not a printer")
    assert doctor.run_doctor_all(etc) == 1
    out = capsys.readouterr().out
    assert out.count("== layerguard@") == 2 and "left.toml.bak" not in out
    assert "published and received layerguard/left/doctor" in out
    assert "published and received layerguard/right/doctor" in out
    assert f"{os.path.realpath(world.printer.port)} is used by layerguard@left and layerguard@right" in out
    assert "web.listen   port 80 is used by layerguard@left and layerguard@right" in out  # both unset
    assert "LAYERGUARD_INSTANCE" not in os.environ

    (etc / "right.toml").unlink()
    assert doctor.run_doctor_all(etc) == 1  # the API key is missing: the one printer's own failure
    out = capsys.readouterr().out
    assert "ok   printers     1 configured, each with its own port and printer_id" in out
    assert doctor.run_doctor_all(tmp_path / "empty") == 1
    assert "no layerguard.toml and no <printer>.toml in" in capsys.readouterr().out
