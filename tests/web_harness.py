"""The real agent in the simulated world with its page on a loopback port, for the page's tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from test_end_to_end import TIMING, running, until

from agent.app import Agent
from agent.assembly import build_agent
from agent.settings import SecretStr
from agent.web.server import WebPage
from sim.world import SimWorld

PASSWORD = "correct-horse-battery-staple"


@dataclass
class PageAgent:
    agent: Agent
    page: WebPage
    base: str
    host: str

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=20, **kwargs)  # type: ignore[arg-type]

    async def logged_in(self) -> tuple[httpx.AsyncClient, str]:
        """A client with a session, and its CSRF token."""
        client = self.client()
        answer = await client.post("/login", data={"password": PASSWORD}, headers={"Origin": self.base})
        assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
        csrf = (await client.get("/api/session")).json()["csrf"]
        return client, csrf


@contextlib.asynccontextmanager
async def page_agent(world: SimWorld, tmp_path: Path, **web: object) -> AsyncIterator[PageAgent]:
    settings = world.settings(tmp_path, printer_id="web")
    settings.web.password = SecretStr(PASSWORD)
    for key, value in web.items():
        setattr(settings.web, key, value)
    agent = build_agent(settings, timing=TIMING)
    page = agent.outputs.find(WebPage)
    assert isinstance(page, WebPage)
    async with running(agent):
        async with asyncio.timeout(20):
            await page.ready.wait()
        assert page.port, page.failed
        await until(agent, lambda s: s.print_state == "idle")
        base = f"http://127.0.0.1:{page.port}"
        yield PageAgent(agent, page, base, f"127.0.0.1:{page.port}")
