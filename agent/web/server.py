"""The page, served by the agent on its own event loop (aiohttp): one more sink of the output
stream, sending commands through the agent's one command path.

aiohttp because the agent is asyncio already: no thread, no second loop, the Server-Sent Events
of the stream are a queue per page. It costs ~9 MB once loaded, so it is loaded at the first
visit (agent/web/listener.py), not at start.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any

from agent.settings import Settings
from agent.web.address import page_url
from agent.web.listener import KEEPALIVE_S, BoundedListener, listen
from agent.web.login import (
    Credential,
    LoginLimiter,
    Sessions,
    credential,
    return_hashing_memory,
    session_key,
)
from agent.web.stream import PageStream
from hardware.camera.factory import FittedCamera

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # a login form or a command; nothing the page sends is bigger

CommandPath = Callable[[str, str, str], dict[str, Any]]


class WebPage(PageStream):
    """The sink that serves the page. `port` is the bound one once `ready` is set."""

    def __init__(
        self,
        settings: Settings,
        command: CommandPath,
        camera: FittedCamera,
        health: Callable[[], dict[str, Any]],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.command = command
        self.camera = camera
        self.health = health
        self.limiter = LoginLimiter()
        self.sessions: Sessions | None = None
        self.credential = Credential("", "")  # set at start
        self.listener = BoundedListener(self._load)
        self.port: int | None = None
        self.ready = asyncio.Event()
        self.failed: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._runner: Any = None  # aiohttp's AppRunner, once loaded
        self._server: asyncio.Server | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._start(), name="web-start")

    async def _load(self) -> Any:
        """aiohttp and the handlers, at the first connection: the page's server (a protocol factory)."""
        await asyncio.to_thread(importlib.import_module, "agent.web.routes")  # aiohttp: off the loop
        from aiohttp import web

        from agent.web.guard import cookie_name, make_guard, own_host_names
        from agent.web.routes import add_routes

        app = web.Application(
            middlewares=[
                make_guard(
                    self.sessions,
                    own_host_names(self.settings.web.allowed_hosts),
                    self.listener.started_request,
                    cookie_name(self.settings.agent.printer_id),
                )
            ],
            client_max_size=MAX_BODY_BYTES,
        )
        add_routes(app, self)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_S, handle_signals=False)
        await runner.setup()
        self._runner = runner
        log.info("Page: web server loaded for the first visit")
        return runner.server

    async def _start(self) -> None:
        web_settings, state_dir = self.settings.web, self.settings.agent.state_dir
        try:
            if web_settings.auth == "password":
                return_hashing_memory()
                found = self.credential = await asyncio.to_thread(credential, web_settings, state_dir)
                key = await asyncio.to_thread(session_key, state_dir)
                self.sessions = Sessions(key, found.hash, web_settings.session_hours * 3600)
                if found.fresh:
                    log.warning(
                        "Page password (generated, shown once; `layerguard doctor` shows it again, "
                        "`layerguard password --reset` makes a new one): %s",
                        found.generated,
                    )
            host, port = web_settings.address
            self._server = await listen(self.listener, host, port)
        except (OSError, ValueError) as exc:
            self.failed = str(exc)
            log.error("Page off: cannot serve on %s: %s", web_settings.listen, exc)
            return
        finally:
            self.ready.set()
        self.port = self._server.sockets[0].getsockname()[1]
        if web_settings.auth == "none":
            log.warning(
                'Page at %s WITHOUT a login (web.auth = "none"): anyone who reaches it can pause '
                "the printer; keep it behind a reverse proxy that asks for one",
                page_url(self.settings, self.port),
            )
        else:
            log.info("Page at %s", page_url(self.settings, self.port))

    async def stop(self) -> None:
        await super().stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        await self.listener.close()
        if self._runner is not None:
            async with asyncio.timeout(3):
                await self._runner.cleanup()
