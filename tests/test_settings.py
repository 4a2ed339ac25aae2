"""Configuration: file, environment and secret files, and errors that name the setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli import main
from agent.settings import (
    ConfigError,
    Settings,
    config_path,
    env_warnings,
    load_settings,
    require_for_run,
    secret_dirs,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LAYERGUARD_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(tmp_path / "no-secrets"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layerguard.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_design() -> None:
    s = Settings()
    assert s.printer.baudrate == 115200
    assert s.printer.dialect == "auto"
    assert s.detection.api_url == "https://gadget-pv1-oeapi.octoeverywhere.com"
    assert (s.detection.warning_confidence, s.detection.pause_confidence) == (3, 3)
    assert s.detection.action == "pause"
    assert s.mqtt.topic_prefix == "layerguard" and s.mqtt.discovery_prefix == "homeassistant"
    assert s.mqtt.discovery is True and not s.mqtt.enabled
    assert re.fullmatch(r"[a-z0-9_-]+", s.agent.printer_id)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "file-host"\nport = 1884\n[printer]\nport = "/dev/ttyACM0"\n')
    monkeypatch.setenv("LAYERGUARD_MQTT__HOST", "env-host")
    s = load_settings(path)
    assert s.mqtt.host == "env-host"
    assert s.mqtt.port == 1884
    assert s.printer.port == "/dev/ttyACM0"


def test_secret_files_fill_secrets_and_env_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "detection__api_key").write_text("file-key\n")
    (secrets / "mqtt__password").write_text("pw")
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(secrets))
    path = write(tmp_path, '[detection]\napi_key = "toml-key"\n')
    s = load_settings(path)
    assert s.detection.api_key.get_secret_value() == "file-key"
    assert s.mqtt.password.get_secret_value() == "pw"
    monkeypatch.setenv("LAYERGUARD_DETECTION__API_KEY", "env-key")
    assert load_settings(path).detection.api_key.get_secret_value() == "env-key"


def test_the_first_secrets_directory_that_holds_a_secret_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's credential comes first; a copy the agent may not read further down is not touched."""
    credentials, etc = tmp_path / "credentials", tmp_path / "etc"
    credentials.mkdir()
    etc.mkdir()
    (credentials / "detection__api_key").write_text("credential-key")
    (etc / "detection__api_key").write_bytes(b"\xff\xfe u\x00t\x00f\x001\x006\x00")  # would be refused
    (etc / "mqtt__password").write_text("pw")
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", f"{credentials}:{etc}")
    s = load_settings(write(tmp_path, ""))
    assert s.detection.api_key.get_secret_value() == "credential-key"
    assert s.mqtt.password.get_secret_value() == "pw"


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ('[printer]\nbaudrate = "fast"', "printer.baudrate"),
        ("[detection]\npause_confidence = 9", "detection.pause_confidence"),
        ('[detection]\naction = "explode"', "detection.action"),
        ('[camera]\nsource = "/dev/video0"', "camera.source"),
        ('[camera]\nsource = "picamera2:"', "camera.source"),
        ("[camera]\nrotation = 45", "camera.rotation"),
        ("[mqtt]\nport = 70000", "mqtt.port"),
        ('[mqtt]\nhots = "typo"', "mqtt.hots"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, toml: str, setting: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, toml))
    assert str(err.value).startswith(setting + ":")


def test_a_secret_is_never_echoed_in_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "[detection]\napi_key = 123456789"))
    assert "detection.api_key" in str(err.value)
    assert "123456789" not in str(err.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[printer\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_run_needs_a_port() -> None:
    with pytest.raises(ConfigError, match=r"^printer\.port: required"):
        require_for_run(Settings())


def test_cli_exits_2_with_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(write(tmp_path, '[printer]\nbaudrate = "fast"'))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "printer.baudrate" in err[0]
    assert main(["run", "--config", str(write(tmp_path, ""))]) == 2
    assert "printer.port" in capsys.readouterr().err


def test_shipped_config_documents_every_key_with_its_default() -> None:
    text = (REPO / "config" / "layerguard.toml").read_text()
    documented: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if m := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = m.group(1)
        elif section and (m := re.fullmatch(r"#?\s?(\w+) = .*", line.strip())):
            documented.setdefault(section, set()).add(m.group(1))
    for name, field in Settings.model_fields.items():
        assert documented.get(name) == set(field.annotation.model_fields), name  # type: ignore[union-attr]
    # The file as shipped is valid once the port is real.
    load_settings(REPO / "config" / "layerguard.toml")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[detecton]\napi_key = "k"', "detecton: unknown section; did you mean [detection]?"),
        ("[frobnicate]\nx = 1", "frobnicate: unknown section; the sections are agent, printer,"),
        ('log_level = "DEBUG"', "log_level: unknown section; log_level is a key of [agent]: put it under"),
        ('[detection]\napi_kye = "k"', "detection.api_kye: unknown key; did you mean detection.api_key?"),
        ("[camera]\nzoom = 2", "camera.zoom: unknown key; the keys are source, width,"),
    ],
)
def test_unknown_sections_and_keys_are_named_with_the_nearest_real_one(
    tmp_path: Path, toml: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, toml))
    assert str(err.value).startswith(expected)
    assert '"k"' not in str(err.value) and "'k'" not in str(err.value), "a value is never echoed"


def test_unknown_settings_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`LAYERGUARD_<SECTION>__<KEY>` is the settings' shape: unknown ones are errors, as in the file.
    Other `LAYERGUARD_*` names may be someone else's: a warning, with the likely setting."""
    path = write(tmp_path, "")
    monkeypatch.setenv("LAYERGUARD_DETECTON__API_KEY", "secret-value")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == (
        "LAYERGUARD_DETECTON__API_KEY: unknown section 'detecton'; did you mean LAYERGUARD_DETECTION__…?"
    )
    monkeypatch.delenv("LAYERGUARD_DETECTON__API_KEY")
    monkeypatch.setenv("LAYERGUARD_MQTT__HOTS", "broker")
    with pytest.raises(ConfigError, match=r"^mqtt\.hots: unknown key; did you mean mqtt\.host\?$"):
        load_settings(path)
    monkeypatch.delenv("LAYERGUARD_MQTT__HOTS")
    monkeypatch.setenv("LAYERGUARD_MQTT", "{not json")
    with pytest.raises(ConfigError, match=r"^environment: .*LAYERGUARD_<SECTION>__<KEY>$"):
        load_settings(path)
    monkeypatch.delenv("LAYERGUARD_MQTT")
    monkeypatch.setenv("LAYERGUARD_MQTT_HOST", "broker")
    monkeypatch.setenv("LAYERGUARD_CONFIG", str(path))
    assert load_settings(path).mqtt.host == ""
    assert env_warnings(os.environ) == [
        "LAYERGUARD_MQTT_HOST is not a LayerGuard setting and is ignored; did you mean LAYERGUARD_MQTT__HOST?"
    ]


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(directory))
    return directory


def make_unreadable(path: Path) -> None:
    """A secret file the agent cannot read. Root reads any mode, so as root the file is a link to
    one that fails on read (like an unreadable network or FUSE mount); otherwise mode 000."""
    if os.geteuid() == 0:
        path.symlink_to("/proc/self/mem")
    else:
        path.write_text("s3cret-content")
        path.chmod(0)


BAD_SECRETS = [
    ("unreadable", make_unreadable, "cannot read the secret file for detection.api_key"),
    ("utf16", lambda p: p.write_bytes("s3cret-content\n".encode("utf-16")), "saved as UTF-16"),
    ("utf16-no-bom", lambda p: p.write_bytes("s3cret-content".encode("utf-16-le")), "saved as UTF-16"),
    ("latin1", lambda p: p.write_bytes("s3cret-contént".encode("latin-1")), "is not UTF-8 text"),
    ("empty", lambda p: p.write_text(""), "for detection.api_key is empty"),
    ("blank", lambda p: p.write_text(" \n\n"), "for detection.api_key is empty"),
    ("two-lines", lambda p: p.write_text("s3cret-content\nmore\n"), "as one line, as UTF-8 text"),
]


@pytest.mark.parametrize(("kind", "make", "reason"), BAD_SECRETS, ids=[b[0] for b in BAD_SECRETS])
def test_a_bad_secret_file_is_one_line_naming_file_and_key(
    secrets: Path, kind: str, make: Callable[[Path], object], reason: str
) -> None:
    path = secrets / "detection__api_key"
    make(path)
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and reason in message
    assert "\n" not in message
    assert "s3cret" not in message and "content" not in message


def test_a_utf8_secret_with_a_byte_order_mark_is_fine(secrets: Path) -> None:
    (secrets / "mqtt__password").write_bytes("\ufeffpässword\r\n".encode())
    assert load_settings(None).mqtt.password.get_secret_value() == "pässword"


def test_a_config_file_saved_as_utf16_is_named(tmp_path: Path) -> None:
    path = tmp_path / "layerguard.toml"
    path.write_bytes('[printer]\nport = "/dev/ttyACM0"\n'.encode("utf-16"))
    with pytest.raises(ConfigError, match=r"the config file is saved as UTF-16 .*save it as UTF-8$"):
        load_settings(path)


def run_cli(config: Path, secrets: Path, **env_extra: str) -> list[str]:
    """`layerguard run` as systemd starts it; asserts exit 2 (RestartPreventExitStatus: no restart
    loop) and nothing on stdout, and returns the stderr lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAYERGUARD_")}
    env |= {"LAYERGUARD_SECRETS_DIR": str(secrets), **env_extra}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    return done.stderr.splitlines()


@pytest.mark.parametrize(
    ("kind", "make", "reason"), BAD_SECRETS[:2] + BAD_SECRETS[4:5], ids=["unreadable", "utf16", "empty"]
)
def test_the_cli_exits_2_with_one_line_for_a_bad_secret(
    tmp_path: Path, secrets: Path, kind: str, make: Callable[[Path], object], reason: str
) -> None:
    make(secrets / "detection__api_key")
    config = write(tmp_path, '[printer]\nport = "/dev/ttyACM0"\n[detecton]\naction = "warn"\n')
    lines = run_cli(config, secrets)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"layerguard: invalid configuration: {secrets / 'detection__api_key'}: ")
    assert reason in lines[0] and "s3cret" not in lines[0]


@pytest.mark.parametrize(
    ("toml", "env", "line"),
    [
        (
            '[detecton]\naction = "warn"',
            {},
            "detecton: unknown section; did you mean [detection]?",
        ),
        ("", {"LAYERGUARD_MQTT__HOTS": "broker"}, "mqtt.hots: unknown key; did you mean mqtt.host?"),
        (
            "",
            {"LAYERGUARD_SCREEN__URL": "x"},
            "LAYERGUARD_SCREEN__URL: unknown section 'screen'; the sections are agent, printer,",
        ),
    ],
    ids=["file-section", "env-key", "env-section"],
)
def test_the_cli_exits_2_with_one_line_for_an_unknown_setting(
    tmp_path: Path, secrets: Path, toml: str, env: dict[str, str], line: str
) -> None:
    config = write(tmp_path, f'[printer]\nport = "/dev/ttyACM0"\n{toml}\n')
    lines = run_cli(config, secrets, **env)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"layerguard: invalid configuration: {line}")


def test_a_printer_instance_names_its_config_state_secrets_and_printer_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """layerguard@mk4.service sets LAYERGUARD_INSTANCE=mk4: the defaults follow the name, the
    config file still wins, and the printer's own secrets come before the Pi's shared ones."""
    monkeypatch.delenv("LAYERGUARD_SECRETS_DIR")
    monkeypatch.setenv("LAYERGUARD_INSTANCE", "mk4")
    s = Settings()
    assert s.agent.printer_id == "mk4"
    assert s.agent.state_dir == Path("/var/lib/layerguard/mk4")
    assert secret_dirs()[:2] == [Path("/etc/layerguard/mk4/secrets"), Path("/etc/layerguard/secrets")]
    assert config_path(None) == (Path("/etc/layerguard/mk4.toml"), True)
    named = load_settings(write(tmp_path, '[agent]\nprinter_id = "left"\nstate_dir = "/srv/lg"\n'))
    assert (named.agent.printer_id, named.agent.state_dir) == ("left", Path("/srv/lg"))
    assert env_warnings(os.environ) == []
    monkeypatch.setenv("LAYERGUARD_INSTANCE", "a/b")
    with pytest.raises(ConfigError, match=r"^LAYERGUARD_INSTANCE: 'a/b' is not a printer name"):
        load_settings(write(tmp_path, ""))
    monkeypatch.delenv("LAYERGUARD_INSTANCE")
    assert Settings().agent.state_dir == Path("/var/lib/layerguard")
    assert config_path(None) == (Path("/etc/layerguard/layerguard.toml"), False)


def test_every_command_can_act_as_one_printers_agent(tmp_path: Path) -> None:
    """`--printer NAME` reads what layerguard@NAME reads: /etc/layerguard/NAME.toml unless --config,
    and its state dir (here: a health check finds no agent has run there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAYERGUARD_")}
    env["LAYERGUARD_SECRETS_DIR"] = str(tmp_path / "no-secrets")

    def layerguard(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "agent", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)

    empty = write(tmp_path, "")
    health = layerguard("health", "--printer", "zz-left", "--config", str(empty))
    assert health.returncode == 1
    assert health.stdout.startswith("unhealthy: /var/lib/layerguard/zz-left/health.json: ")
    missing = layerguard("history", "--printer", "zz-left")
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "layerguard: invalid configuration: /etc/layerguard/zz-left.toml: config file not found",
    )
    bad = layerguard("doctor", "--printer", "../etc")
    assert bad.returncode == 2 and "a printer's name has letters, digits, - and _ only" in bad.stderr
