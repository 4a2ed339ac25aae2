"""Configuration: file, environment and secret files, and errors that name the setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.cli import main
from agent.settings import ConfigError, Settings, load_settings, require_for_run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
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


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ('[printer]\nbaudrate = "fast"', "printer.baudrate"),
        ("[detection]\npause_confidence = 9", "detection.pause_confidence"),
        ('[detection]\naction = "explode"', "detection.action"),
        ('[camera]\nsource = "/dev/video0"', "camera.source"),
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
