"""`layerguard notify-test`: one test notification with a fresh frame to every configured URL.

Exit 0 when every service took it, 1 when one did not, 2 when the configuration is wrong (no URL,
or one Apprise does not understand): the CLI turns ConfigError into that exit.
"""

from __future__ import annotations

import asyncio
import io

from agent.notify.delivery import ATTEMPT_S, Delivery
from agent.notify.message import redact, trial_message
from agent.notify.services import SNAPSHOT, InvalidUrl, Service, open_service, url_secrets
from agent.settings import ConfigError, NotifySection, Settings, load_settings

URLS_HINT = "[file key notify.urls, LAYERGUARD_NOTIFY__URLS, or the secret file notify__urls]"


def run_notify_test(config: str | None) -> int:
    settings = load_settings(config)
    open_services(settings.notify)  # exit 2 before anything is sent if a URL does not parse
    secrets = [s for url in settings.notify.urls for s in url_secrets(url.get_secret_value())]
    jpeg, camera_problem = capture_or_placeholder(settings)
    if camera_problem:
        print(f"camera failed ({camera_problem}): sending a placeholder picture instead", flush=True)
    message = redact(trial_message(settings.agent.printer_id, camera_problem), secrets)
    delivery = Delivery([url.get_secret_value() for url in settings.notify.urls], retry_for_s=0, quiet=True)
    results = asyncio.run(delivery.send(message, {SNAPSHOT: jpeg}))
    for service_label, delivered in results:
        verdict = "ok" if delivered else f"FAIL ({delivery.failure(service_label) or 'not delivered'})"
        print(f"{service_label}: {verdict}", flush=True)
    return 0 if all(ok for _, ok in results) else 1


def open_services(notify: NotifySection) -> list[Service]:
    """Every URL opened, or a ConfigError that names each one Apprise does not understand."""
    if not notify.urls:
        raise ConfigError(f"notify.urls: empty, so notifications are off: add an Apprise URL {URLS_HINT}")
    services, problems = [], []
    for url in notify.urls:
        try:
            services.append(open_service(url.get_secret_value(), ATTEMPT_S))
        except InvalidUrl as exc:
            problems.append(f"notify.urls: {exc} {URLS_HINT}")
    if problems:
        raise ConfigError("\n".join(problems))
    return services


def capture_or_placeholder(settings: Settings) -> tuple[bytes, str | None]:
    """A fresh frame, masked and cropped as the agent's are, or a placeholder JPEG and why the
    camera failed."""
    from agent.camera import open_camera
    from agent.framing import in_effect
    from hardware.camera.base import CameraError

    try:
        camera = open_camera(settings.camera, in_effect(settings).framing)
        try:
            return camera.capture(), None
        finally:
            camera.close()
    except CameraError as exc:
        return placeholder_jpeg(), str(exc)


def placeholder_jpeg(width: int = 640, height: int = 360) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (60, 60, 60))
    ImageDraw.Draw(image).text((24, height // 2 - 10), "LayerGuard: the camera failed", fill=(240, 240, 240))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()
