"""The notification services behind the Apprise URLs, and how to name them without their secrets.

Apprise is imported here only, and only when a service is opened: an agent without `notify.urls`
never loads it (it is a sizeable import on a Pi Zero). A URL carries tokens, so the only name a
log line, the state or a command's output uses is `label()`: scheme and host, with a host that is
itself a token (Telegram's bot token, an ntfy topic) shortened to its first and last character.
"""

from __future__ import annotations

import ipaddress
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SNAPSHOT = "layerguard.jpg"  # attachment names: the inspected frame, and the print's timeline picture
REPORT = "layerguard-report.png"


class InvalidUrl(ValueError):
    """Apprise does not understand the URL; the message names it by its label only."""


def label(url: str) -> str:
    """`scheme://host` with nothing secret in it."""
    scheme, _, rest = url.partition("://")
    if not rest:
        return "(not a URL)"
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return f"{scheme.lower()}://{host if _plain_host(host) else _shorten(host)}"


def url_secrets(url: str) -> list[str]:
    """The URL and the parts of it that may be tokens, for the log's secret mask."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return [url]
    pieces = re.split(r"[/?&=:@#,]", url.partition("://")[2])
    tokens = [p for p in pieces if len(p) >= 8 and not _plain_host(p)]
    return [url, *([password] if password else []), *tokens]


def _plain_host(host: str) -> bool:
    """A host name or address, as opposed to a token sitting where the host goes."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost" or bool(re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", host))
    return True


def _shorten(text: str) -> str:
    return f"{text[:1]}...{text[-1:]}" if len(text) > 2 else "..."


@dataclass
class Service:
    """One configured URL, opened by Apprise."""

    label: str
    apprise: Any  # apprise.Apprise holding this URL only, so each service reports for itself

    def send(self, title: str, body: str, files: Mapping[str, bytes], alert: bool) -> bool:
        """Blocking: run it in a thread. True when the service accepted the notification.

        The frame goes through a file: several Apprise services (form://, for one) open
        attachments by path, and Apprise's in-memory attachment has none."""
        from apprise import NotifyType

        kind = NotifyType.FAILURE if alert else NotifyType.INFO
        if not files:
            return bool(self.apprise.notify(body=body, title=title, notify_type=kind))
        with tempfile.TemporaryDirectory(prefix="layerguard-notify-") as directory:
            paths = []
            for name, data in files.items():
                path = Path(directory) / Path(name).name
                path.write_bytes(data)
                paths.append(str(path))
            return bool(self.apprise.notify(body=body, title=title, notify_type=kind, attach=paths))


def open_service(url: str, timeout_s: float) -> Service:
    """Raises InvalidUrl. The service's own socket timeouts are held within `timeout_s`."""
    import apprise

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise InvalidUrl(f"{label(url)}: Apprise does not understand this URL (see its wiki for the syntax)")
    for attribute in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(plugin, attribute, None)
        setattr(plugin, attribute, min(current, timeout_s) if current else timeout_s)
    holder = apprise.Apprise(asset=apprise.AppriseAsset(app_id="LayerGuard", app_desc="LayerGuard"))
    holder.add(plugin)
    return Service(label(url), holder)
