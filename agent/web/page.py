"""What the page's routes use of the page (agent/web/server.py's WebPage): a Protocol, so that
the routes never import the server that adds them (no import cycle)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from agent.settings import Settings
from agent.web.login import Credential, LoginLimiter, Sessions
from hardware.camera.factory import FittedCamera

CommandPath = Callable[[str, str, str], dict[str, Any]]


class Page(Protocol):
    settings: Settings
    command: CommandPath  # the agent's one command path: (name, payload, source) -> first answer
    camera: FittedCamera  # its `camera` is the shared, unframed backend (the framing view)
    health: Callable[[], dict[str, Any]]
    limiter: LoginLimiter
    sessions: Sessions | None
    credential: Credential
    state: dict[str, Any]  # the agent's last published state
    frame: bytes | None  # the last inspected frame

    def subscribe(self) -> asyncio.Queue[str | None]: ...

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None: ...
