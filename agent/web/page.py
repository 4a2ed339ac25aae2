"""What the page's routes use of the page (agent/web/server.py's WebPage): a Protocol, so that
the routes never import the server that adds them (no import cycle)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from agent.settings import Settings
from agent.web.login import Credential, LoginLimiter, Sessions
from hardware.camera.factory import FittedCamera


class Page(Protocol):
    settings: Settings
    camera: FittedCamera  # its `camera` is the shared, unframed backend (the framing view)
    health: Callable[[], dict[str, Any]]
    limiter: LoginLimiter
    sessions: Sessions | None
    credential: Credential
    state: dict[str, Any]  # the agent's last published state
    frame: bytes | None  # the last inspected frame

    def command(self, name: str, payload: str, source: str) -> dict[str, Any]:
        """The agent's one command path; the command's first answer."""

    def subscribe(self) -> asyncio.Queue[str | None]: ...

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None: ...
