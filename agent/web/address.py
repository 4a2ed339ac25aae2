"""The page's address, as people open it (and Home Assistant's device page links to it)."""

from __future__ import annotations

import socket

from agent.settings import Settings


def page_url(settings: Settings, bound_port: int | None = None) -> str | None:
    """The address people open (and Home Assistant's device page links to); None while a port
    chosen by the system (`:0`) is not bound yet."""
    host, port = settings.web.address
    port = bound_port or port
    if not port:
        return None
    if host in ("0.0.0.0", "::", ""):
        host = f"{socket.gethostname().split('.')[0]}.local"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"
