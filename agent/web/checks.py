"""The page's health and setup view: what `layerguard doctor` checks, as the running agent sees it
now, and the effective configuration with every secret masked; and the "send a test" button."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.settings import SECRET_KEYS, Settings
from hardware.camera.http_snapshot import split_credentials

if TYPE_CHECKING:
    from agent.app import Agent

MASK = "********"
HIDDEN_KEYS = SECRET_KEYS | {"password_hash"}


def health_report(agent: Agent, mqtt_connected: bool | None) -> dict[str, Any]:
    s = agent.state
    settings = agent.settings
    checks = [
        (
            "printer",
            s.print_state not in ("offline", "unknown"),
            f"{s.print_state} on {settings.printer.port}",
        ),
        ("camera", not s.camera.startswith("error"), s.camera),
        ("detection", not s.detection.startswith(("retrying", "stopped")), s.detection),
        (
            "api calls",
            s.api_calls_budget is None or s.api_calls_month < s.api_calls_budget,
            f"{s.api_calls_month} this month"
            + (f" of a budget of {s.api_calls_budget}" if s.api_calls_budget else " (no budget set)"),
        ),
        (
            "api key",
            bool(settings.detection.api_key.get_secret_value()),
            "set" if settings.detection.api_key.get_secret_value() else "missing: detection.api_key",
        ),
        (
            "mqtt broker",
            mqtt_connected is not False,
            "off (mqtt.host empty)"
            if mqtt_connected is None
            else f"{'connected to' if mqtt_connected else 'cannot reach'} "
            f"{settings.mqtt.host}:{settings.mqtt.port}",
        ),
        ("notifications", not s.notify.startswith("error"), s.notify),
    ]
    return {
        "checks": [{"name": n, "ok": ok, "detail": detail} for n, ok, detail in checks],
        "config": masked_config(settings),
    }


def masked_config(settings: Settings) -> dict[str, Any]:
    """Every setting as in effect, secrets replaced by a mask (set) or "" (not set)."""
    config = settings.model_dump(mode="python")
    for section in config.values():
        for key, value in section.items():
            if key in HIDDEN_KEYS:
                section[key] = _mask(value)
            elif isinstance(value, str) and "://" in value:
                # user:password@ and a ?token=... in a camera URL stay out of the page
                bare, _, query = split_credentials(value)[0].partition("?")
                section[key] = f"{bare}?{MASK}" if query else bare
            elif not isinstance(value, str | int | float | bool | list | type(None)):
                section[key] = str(value)
    return config


def _mask(value: Any) -> Any:
    if isinstance(value, list):
        return [MASK for _ in value]
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return MASK if text else ""


async def send_test_notification(settings: Settings, frame: bytes | None) -> dict[str, Any]:
    """One test notification to every configured service, with the last inspected frame."""
    from agent.notify.command import placeholder_jpeg
    from agent.notify.delivery import Delivery
    from agent.notify.message import redact, trial_message
    from agent.notify.services import SNAPSHOT, url_secrets

    urls = [url.get_secret_value() for url in settings.notify.urls]
    if not urls:
        return {"results": [], "message": "No notify.urls configured: notifications are off."}
    secrets = [s for url in urls for s in url_secrets(url)]
    message = redact(trial_message(settings.agent.printer_id, None), secrets)
    delivery = Delivery(urls, retry_for_s=0, quiet=True)
    results = await delivery.send(message, {SNAPSHOT: frame or placeholder_jpeg()})
    return {
        "results": [
            {"service": label, "ok": ok, "detail": None if ok else delivery.failure(label) or "not delivered"}
            for label, ok in results
        ],
        "message": "sent" if all(ok for _, ok in results) else "not every service took it",
    }
