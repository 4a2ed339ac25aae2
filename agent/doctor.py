"""`layerguard doctor`: one line per component, and what to do about each failure.

Each check ends by itself: the camera and detection checks make the agent's own calls, under the
agent's whole-call deadlines and size caps (HTTP snapshot 10 s, Gadget API 30 s), the serial and
broker checks wait at most the timeouts below.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from agent.detection.timing import DEFAULT_TIMING
from agent.settings import (
    DEFAULT_CONFIG_PATH,
    ETC_DIR,
    INSTANCE_ENV,
    INSTANCE_PATTERN,
    ConfigError,
    Settings,
    config_path,
    env_warnings,
    load_settings,
)

Check = Callable[[Settings], str]
SERIAL_TIMEOUT_S = 15.0  # a board reset by the open takes a few seconds before it answers
BROKER_TIMEOUT_S = 10.0
API_DEADLINE_S = DEFAULT_TIMING.request_timeout_s  # the agent's own: a doctor that passes, the agent passes


class CheckFailed(Exception):
    """The check's message says what is wrong and how to fix it."""


class CheckWarning(Exception):
    """Could not check, for a reason that is not a fault (e.g. the running agent holds the port)."""


def run_doctor(config: str | None) -> int:
    path, _ = config_path(config)
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            _line("FAIL", "config", line)
        return 2
    for warning in env_warnings(os.environ):
        _line("warn", "config", warning)
    _line("ok", "config", f"{path if path.exists() else 'defaults (no file)'}")
    checks: list[tuple[str, Check]] = [
        ("state dir", check_state_dir),
        ("camera", check_camera),
        ("framing", check_framing),
        ("serial port", check_serial_port),
        ("mqtt broker", check_broker),
        ("api key", check_api_key),
        ("notify urls", check_notify),
        ("page", check_page),
    ]
    failed = 0
    for name, check in checks:
        try:
            detail = check(settings)
        except CheckFailed as exc:
            failed += 1
            _line("FAIL", name, str(exc))
        except CheckWarning as exc:
            _line("warn", name, str(exc))
        except Exception as exc:  # a check's own bug must not hide the other checks behind a traceback
            failed += 1
            _line("FAIL", name, f"unexpected {type(exc).__name__}: {exc}")
        else:
            _line("ok", name, detail)
    return 1 if failed else 0


def run_doctor_all(etc_dir: Path = ETC_DIR) -> int:
    """Checks every agent configured on this Pi, one block each: the plain service's
    layerguard.toml and each printer's <name>.toml; then that no two share a serial port, a page
    port or a name."""
    configs = printer_configs(etc_dir)
    if not configs:
        _line("FAIL", "config", f"no layerguard.toml and no <printer>.toml in {etc_dir}")
        return 1
    worst = 0
    seen: dict[str, list[tuple[str, str]]] = {"printer.port": [], "agent.printer_id": [], "web.listen": []}
    for name, path in configs:
        print(f"== {_unit(name)}: {path}", flush=True)
        with _as_instance(name):
            worst = max(worst, run_doctor(str(path)))
            try:
                settings = load_settings(path)
            except ConfigError:
                continue  # already said by run_doctor
        seen["printer.port"].append((_unit(name), os.path.realpath(settings.printer.port)))
        seen["agent.printer_id"].append((_unit(name), settings.agent.printer_id))
        if settings.web.enabled and settings.web.address[1]:  # one page per port: the other's is off
            seen["web.listen"].append((_unit(name), f"port {settings.web.address[1]}"))
    print("== this Pi", flush=True)
    shared = 0
    for setting, values in seen.items():
        for value in sorted({v for _, v in values}):
            units = [unit for unit, v in values if v == value]
            if len(units) > 1:
                shared += 1
                _line(
                    "FAIL", setting, f"{value} is used by {' and '.join(units)}: each printer needs its own"
                )
    if not shared:
        _line("ok", "printers", f"{len(configs)} configured, each with its own port and printer_id")
    return max(worst, 1 if shared else 0)


def printer_configs(etc_dir: Path) -> list[tuple[str | None, Path]]:
    """The plain service's config (name None) and each printer instance's, by name."""
    found: list[tuple[str | None, Path]] = []
    plain = etc_dir / DEFAULT_CONFIG_PATH.name
    if plain.is_file():
        found.append((None, plain))
    for path in sorted(etc_dir.glob("*.toml")):
        if path != plain and re.match(INSTANCE_PATTERN, path.stem):
            found.append((path.stem, path))
    return found


def _unit(name: str | None) -> str:
    return f"layerguard@{name}" if name else "layerguard"


@contextmanager
def _as_instance(name: str | None) -> Iterator[None]:
    """Settings read as the instance's agent reads them (its defaults follow its name)."""
    saved = {key: os.environ.get(key) for key in (INSTANCE_ENV, "LAYERGUARD_CONFIG")}
    os.environ.pop("LAYERGUARD_CONFIG", None)
    if name:
        os.environ[INSTANCE_ENV] = name
    else:
        os.environ.pop(INSTANCE_ENV, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _line(verdict: str, name: str, text: str) -> None:
    print(f"{verdict:<4} {name:<12} {text}", flush=True)


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


def check_page(settings: Settings) -> str:
    from agent.web.password import describe

    try:
        line = describe(settings)
    except OSError as exc:  # the state dir's own check says what to do about it
        raise CheckWarning(f"cannot keep a generated password in agent.state_dir: {exc.strerror}") from None
    if settings.web.enabled and settings.web.auth == "none":
        raise CheckWarning(line)
    return line


def check_camera(settings: Settings) -> str:
    from agent.camera import open_camera
    from agent.framing import in_effect
    from hardware.camera.base import CameraError

    framing = in_effect(settings)
    try:
        camera = open_camera(settings.camera, framing.framing)
        try:
            frame = camera.capture()
        finally:
            camera.close()
    except CameraError as exc:
        raise CheckFailed(f"{settings.camera.source.split('?')[0]}: {exc}") from None
    source = settings.camera.source.split("://")[0]
    framed = ", masked and cropped" if not framing.framing.empty else ""
    return f"captured a {len(frame) // 1024} KiB JPEG from {source}{framed}"


def check_framing(settings: Settings) -> str:
    """Which masks and crop apply, and whether from the config or the page's saved file."""
    from agent.framing import FRAMING_FILE, in_effect

    framing = in_effect(settings)
    saved = settings.agent.state_dir / FRAMING_FILE
    where = f"page's file {saved}" if saved.exists() else f"no {saved}"
    note = "; a crop changes what the model sees" if framing.framing.crop else ""
    return f"{framing.describe()} (config keys win over the {where}){note}"


def check_serial_port(settings: Settings) -> str:
    """Opens the port and reads the firmware name (M115) through the agent's own printer link.
    Opening resets many boards, so a port that another process holds is left alone."""
    port = settings.printer.port
    if not port:
        raise CheckFailed("printer.port is not set: use /dev/serial/by-id/... (ls /dev/serial/by-id/)")
    if not Path(port).exists():
        raise CheckFailed(f"{port} does not exist: is the printer on and its USB cable plugged in?")
    if not os.access(port, os.R_OK | os.W_OK):
        raise CheckFailed(f"{port}: no read/write permission; add the agent's user to the dialout group")
    if holders := port_holders(port):
        raise CheckWarning(f"{port} is in use by {holders}: not opened. {_HELD_HINT}")
    firmware = asyncio.run(_read_firmware(settings))
    return f"{port}: {firmware}"


_HELD_HINT = (
    "That is fine if it is the LayerGuard service; to test the port, stop it (systemctl stop layerguard)"
)


def port_holders(port: str) -> str:
    """The other processes that have `port` open, as `pid 123 (name)`; only those we may look at."""
    device = os.path.realpath(port)
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        if fd_dir.parent.name == str(os.getpid()):
            continue
        try:
            if any(os.path.realpath(fd) == device for fd in fd_dir.iterdir()):
                pid = fd_dir.parent.name
                found.append(f"pid {pid} ({(fd_dir.parent / 'comm').read_text().strip()})")
        except OSError:  # gone, or not ours to see
            continue
    return ", ".join(found)


async def _read_firmware(settings: Settings) -> str:
    from hardware.printer.events import PrinterEvent, PrinterEventKind
    from hardware.printer.link import SerialPrinter

    outcome: asyncio.Future[PrinterEvent] = asyncio.get_running_loop().create_future()

    def on_event(event: PrinterEvent) -> None:
        if event.kind in (PrinterEventKind.CONNECTED, PrinterEventKind.DISCONNECTED) and not outcome.done():
            outcome.set_result(event)

    p = settings.printer
    printer = SerialPrinter(p.port, p.baudrate, p.dialect, on_event)
    link = asyncio.create_task(printer.run())
    logging.getLogger("hardware.printer").setLevel(logging.CRITICAL)  # the check's line says it all
    try:
        async with asyncio.timeout(SERIAL_TIMEOUT_S):
            event = await outcome
    except TimeoutError:
        raise CheckFailed(
            f"{p.port}: no answer to M110/M115 within {SERIAL_TIMEOUT_S:g} s: "
            f"check printer.baudrate ({p.baudrate}; stock Marlin often uses 250000)"
        ) from None
    finally:
        link.cancel()
        await asyncio.gather(link, return_exceptions=True)
    if event.kind is PrinterEventKind.DISCONNECTED:
        if "lock" in event.message:
            raise CheckWarning(f"{p.port} is in use by another process: not opened. {_HELD_HINT}")
        raise CheckFailed(f"{event.message}")
    return f"{event.firmware or 'unnamed firmware'} (dialect {event.dialect})"


def check_broker(settings: Settings) -> str:
    """Connects with the agent's credentials, then publishes under the agent's topics and waits
    for the message to come back: a broker whose ACL drops the agent's messages fails here."""
    mqtt_settings = settings.mqtt
    if not mqtt_settings.enabled:
        return "MQTT off (mqtt.host is empty)"
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.mqtt.topics import Topics

    topic = f"{Topics.for_printer(mqtt_settings.topic_prefix, settings.agent.printer_id).base}/doctor"
    connected: dict[str, object] = {}
    events = {name: threading.Event() for name in ("connected", "subscribed", "echoed")}

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        connected["reason"] = reason
        events["connected"].set()
        if not getattr(reason, "is_failure", False):
            c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, _u: object, _m: int, _r: object, _p: object) -> None:
        events["subscribed"].set()
        c.publish(topic, b"layerguard doctor", qos=1)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        events["echoed"].set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"layerguard-doctor-{os.getpid()}")
    if mqtt_settings.username:
        client.username_pw_set(mqtt_settings.username, mqtt_settings.password.get_secret_value())
    if mqtt_settings.tls:
        client.tls_set(ca_certs=str(mqtt_settings.ca_file) if mqtt_settings.ca_file else None)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    where = f"{mqtt_settings.host}:{mqtt_settings.port}"
    try:
        client.connect(mqtt_settings.host, mqtt_settings.port, keepalive=10)
    except (OSError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or exc
        raise CheckFailed(
            f"{where}: {detail}; is the broker running and reachable (mqtt.host, mqtt.port)?"
        ) from None
    client.loop_start()
    try:
        if not events["connected"].wait(BROKER_TIMEOUT_S):
            raise CheckFailed(f"{where}: no answer to CONNECT within {BROKER_TIMEOUT_S:g} s (mqtt.tls?)")
        if getattr(connected["reason"], "is_failure", False):
            raise CheckFailed(
                f"{where}: broker refused the connection: {connected['reason']}; "
                "check mqtt.username and mqtt.password"
            )
        if not events["echoed"].wait(BROKER_TIMEOUT_S):
            raise CheckFailed(
                f"{where}: connected, but a message published to {topic} did not come back within "
                f"{BROKER_TIMEOUT_S:g} s: does the broker's ACL let this user publish and subscribe "
                f"under {mqtt_settings.topic_prefix}/#?"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    return f"connected to {where}, published and received {topic}"


def check_api_key(settings: Settings) -> str:
    from agent.detection.client import GadgetClient
    from agent.detection.verdict import DetectionError

    detection = settings.detection
    if not detection.api_key.get_secret_value():
        raise CheckFailed(
            "detection.api_key is not set: get a key from OctoEverywhere and put it in "
            "/etc/layerguard/secrets/detection__api_key"
        )

    async def create() -> None:
        timing = replace(DEFAULT_TIMING, request_timeout_s=API_DEADLINE_S)
        client = GadgetClient(detection.api_url, detection.api_key.get_secret_value(), timing=timing)
        try:
            await client.start_context()
        finally:
            await client.aclose()

    try:
        asyncio.run(create())
    except DetectionError as exc:
        raise CheckFailed(f"creating a detection context failed: {exc}") from None
    return f"created a detection context at {detection.api_url}"


def check_notify(settings: Settings) -> str:
    """Each URL parses (Apprise tells), and how the running agent's last notification went."""
    if not settings.notify.enabled:
        return "notifications off (notify.urls is empty)"
    from agent.notify.command import open_services
    from agent.notify.sink import RECORD_FILE
    from agent.store import JsonRecord

    try:
        labels = ", ".join(service.label for service in open_services(settings.notify))
    except ConfigError as exc:
        raise CheckFailed(str(exc)) from None
    last = JsonRecord(settings.agent.state_dir / RECORD_FILE).load() or {}
    status = last.get("status")
    if isinstance(status, str) and status.startswith("error"):
        raise CheckWarning(
            f"{labels} parse, but the agent's last notification was lost "
            f"({status}, {last.get('status_at')}): try layerguard notify-test"
        )
    return f"{labels} parse; " + (f"last delivery {status}" if status else "nothing sent yet")
