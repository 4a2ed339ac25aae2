"""`layerguard notify-test` and the doctor's notify check, against real servers on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import doctor
from agent.cli import main
from agent.notify.sink import RECORD_FILE
from agent.settings import load_settings
from agent.store import JsonRecord
from sim.frames import render_frame
from sim.loopback import free_port
from sim.mail_server import MailServer
from sim.webhook_server import WebhookServer


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("LAYERGUARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(tmp_path / "secrets"))


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def config(tmp_path: Path, *urls: str, camera: str | None = None) -> str:
    if camera is None:
        frames = tmp_path / "frames"
        frames.mkdir(exist_ok=True)
        (frames / "a.jpg").write_bytes(render_frame(0.3, None, 320, 240))
        camera = f"dir:{frames}"
    path = tmp_path / "layerguard.toml"
    path.write_text(
        f'[agent]\nprinter_id = "mk3"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[camera]\nsource = "{camera}"\n'
        f"[notify]\nurls = {list(urls)!r}\n".replace("'", '"')
    )
    return str(path)


def test_notify_test_sends_a_fresh_frame_to_every_service(
    tmp_path: Path, hook: WebhookServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with MailServer() as mail:
        assert main(["notify-test", "--config", config(tmp_path, hook.url("form"), mail.url())]) == 0
        (message,) = mail.wait_for(1)
    out = capsys.readouterr().out
    assert out.splitlines() == ["form://127.0.0.1: ok", "mailto://127.0.0.1: ok"]
    (received,) = hook.wait_for(1)
    assert received.title == "mk3: LayerGuard test notification" == message.subject
    assert received.attachments == {"layerguard.jpg": (tmp_path / "frames" / "a.jpg").read_bytes()}


def test_a_failed_camera_sends_a_placeholder_and_says_so(
    tmp_path: Path, hook: WebhookServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify-test", "--config", config(tmp_path, hook.url(), camera="dir:/nonexistent")]) == 0
    assert "sending a placeholder picture instead" in capsys.readouterr().out
    (received,) = hook.wait_for(1)
    assert "placeholder" in received.body
    assert next(iter(received.attachments.values()))[:2] == b"\xff\xd8"


def test_an_undelivered_service_exits_1(
    tmp_path: Path, hook: WebhookServer, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"json://127.0.0.1:{free_port()}/sekrit-token"
    assert main(["notify-test", "--config", config(tmp_path, hook.url(), dead)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].startswith("json://127.0.0.1: FAIL (")
    assert "sekrit-token" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        ((), "notify.urls: empty"),
        (("bogus://example.com/sekrit-token",), "notify.urls: bogus://example.com: Apprise"),
    ],
)
def test_configuration_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], urls: tuple[str, ...], problem: str
) -> None:
    assert main(["notify-test", "--config", config(tmp_path, *urls)]) == 2
    err = capsys.readouterr().err
    assert problem in err and "sekrit" not in err


def test_urls_from_a_secret_file_one_per_line(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "notify__urls").write_text("json://127.0.0.1/a\n\nntfys://ntfy.sh/topic\n")
    urls = load_settings(config(tmp_path)).notify.urls
    assert [u.get_secret_value() for u in urls] == ["json://127.0.0.1/a", "ntfys://ntfy.sh/topic"]
    assert "ntfy.sh" not in repr(urls)


def test_doctor_checks_each_url_parses_and_shows_the_last_delivery(
    tmp_path: Path, hook: WebhookServer
) -> None:
    settings = load_settings(
        config(tmp_path, hook.url(), "mailto://127.0.0.1:25?from=lg@example.com&to=a@example.com")
    )
    assert doctor.check_notify(settings) == "json://127.0.0.1, mailto://127.0.0.1 parse; nothing sent yet"
    JsonRecord(tmp_path / "state" / RECORD_FILE).save({"status": "error: json://127.0.0.1", "status_at": "x"})
    with pytest.raises(doctor.CheckWarning, match=r"last notification was lost \(error: json://127.0.0.1"):
        doctor.check_notify(settings)
    with pytest.raises(doctor.CheckFailed, match=r"bogus://example\.com: Apprise does not understand"):
        doctor.check_notify(load_settings(config(tmp_path, "bogus://example.com/x")))
