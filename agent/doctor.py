"""`layerguard doctor`: one line per component, and what to do about each failure."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

from agent.settings import ConfigError, Settings, config_path, load_settings

Check = Callable[[Settings], str]


class CheckFailed(Exception):
    """The check's message says what is wrong and how to fix it."""


def run_doctor(config: str | None) -> int:
    path, _ = config_path(config)
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _line(False, "config", f"{exc}")
        return 2
    _line(True, "config", f"{path if path.exists() else 'defaults (no file)'}")
    checks: list[tuple[str, Check]] = [
        ("state dir", check_state_dir),
        ("camera", check_camera),
        ("serial port", check_serial_port),
        ("mqtt broker", check_broker),
        ("api key", check_api_key),
    ]
    failed = 0
    for name, check in checks:
        try:
            detail = check(settings)
        except CheckFailed as exc:
            failed += 1
            _line(False, name, str(exc))
        else:
            _line(True, name, detail)
    return 1 if failed else 0


def _line(ok: bool, name: str, text: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name:<12} {text}", flush=True)


def check_state_dir(settings: Settings) -> str:
    directory = settings.agent.state_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".doctor"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CheckFailed(
            f"{directory}: {exc.strerror}; create it and give the agent's user write access "
            "(the systemd unit's StateDirectory= does this)"
        ) from None
    return str(directory)


def check_camera(settings: Settings) -> str:
    from hardware.camera.base import CameraError
    from hardware.camera.factory import open_camera

    try:
        camera = open_camera(settings.camera)
        try:
            frame = camera.capture()
        finally:
            camera.close()
    except CameraError as exc:
        raise CheckFailed(f"{settings.camera.source.split('?')[0]}: {exc}") from None
    return f"captured a {len(frame) // 1024} KiB JPEG from {settings.camera.source.split('://')[0]}"


def check_serial_port(settings: Settings) -> str:
    port = settings.printer.port
    if not port:
        raise CheckFailed("printer.port is not set: use /dev/serial/by-id/... (ls /dev/serial/by-id/)")
    if not Path(port).exists():
        raise CheckFailed(f"{port} does not exist: is the printer on and its USB cable plugged in?")
    if not os.access(port, os.R_OK | os.W_OK):
        raise CheckFailed(f"{port}: no read/write permission; add the agent's user to the dialout group")
    # Opening the port would reset many boards (DTR) and could kill a running print: not here.
    return f"{port} present and writable"


def check_broker(settings: Settings) -> str:
    mqtt_settings = settings.mqtt
    if not mqtt_settings.enabled:
        return "MQTT off (mqtt.host is empty)"
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    result: dict[str, object] = {}
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        result["reason"] = reason
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"layerguard-doctor-{os.getpid()}")
    if mqtt_settings.username:
        client.username_pw_set(mqtt_settings.username, mqtt_settings.password.get_secret_value())
    if mqtt_settings.tls:
        client.tls_set(ca_certs=str(mqtt_settings.ca_file) if mqtt_settings.ca_file else None)
    client.on_connect = on_connect
    where = f"{mqtt_settings.host}:{mqtt_settings.port}"
    try:
        client.connect(mqtt_settings.host, mqtt_settings.port, keepalive=10)
    except OSError as exc:
        raise CheckFailed(f"{where}: {exc.strerror or exc}; is the broker running and reachable?") from None
    client.loop_start()
    try:
        if not done.wait(10):
            raise CheckFailed(f"{where}: no answer to CONNECT within 10 s")
        reason = result["reason"]
        if getattr(reason, "is_failure", False):
            raise CheckFailed(
                f"{where}: broker refused the connection: {reason}; check mqtt.username/password"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    return f"connected to {where}"


def check_api_key(settings: Settings) -> str:
    from agent.detection.client import GadgetClient
    from agent.detection.verdict import DetectionError

    detection = settings.detection
    if not detection.api_key.get_secret_value():
        raise CheckFailed("detection.api_key is not set: get a key from OctoEverywhere's developer portal")

    async def create() -> None:
        client = GadgetClient(detection.api_url, detection.api_key.get_secret_value())
        try:
            await client.start_context()
        finally:
            await client.aclose()

    try:
        asyncio.run(create())
    except DetectionError as exc:
        raise CheckFailed(f"creating a detection context failed: {exc}") from None
    return f"created a detection context at {detection.api_url}"
