"""Two real agents of one Pi (one per printer, as layerguard@<name> runs them) sharing one
`agent.shared_state_dir`, each with its page on a loopback port, for the overview's tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from test_end_to_end import TIMING, running, until
from web_harness import PASSWORD, PageAgent

from agent.assembly import build_agent
from agent.settings import SecretStr
from agent.web.server import WebPage
from sim.world import SimWorld, sim_world

NAMES = ("left", "right")


@contextlib.contextmanager
def two_worlds() -> Iterator[tuple[SimWorld, SimWorld]]:
    steady: dict[str, Any] = {
        "failure_at": None,
        "print_duration_s": 120.0,
        "interval_s": 1,
        "heat_duration_s": 0.5,
        "frame_size": (640, 480),
        "broker": None,
    }
    with sim_world(file="left.gcode", **steady) as left, sim_world(file="right.gcode", **steady) as right:
        yield left, right


@contextlib.asynccontextmanager
async def one_agent(world: SimWorld, shared: Path, name: str) -> AsyncIterator[PageAgent]:
    settings = world.settings(shared / name, printer_id=name)
    settings.agent.shared_state_dir = shared  # as /var/lib/layerguard is to layerguard@<name>
    settings.web.password = SecretStr(PASSWORD)
    agent = build_agent(settings, timing=TIMING)
    page = agent.outputs.find(WebPage)
    assert isinstance(page, WebPage)
    async with running(agent):
        async with asyncio.timeout(30):
            await page.ready.wait()
        assert page.port, page.failed
        await until(agent, lambda s: s.print_state == "idle")
        base = f"http://127.0.0.1:{page.port}"
        yield PageAgent(agent, page, base, f"127.0.0.1:{page.port}")


async def overview_until(
    client: httpx.AsyncClient, predicate: Callable[[dict[str, dict[str, Any]]], bool], within: float = 60
) -> dict[str, dict[str, Any]]:
    """The overview's printers by name, once `predicate` holds for them (polled as the page does)."""
    async with asyncio.timeout(within):
        while True:
            answer = await client.get("/api/pi")
            assert answer.status_code == 200, answer.text
            printers = {p["printer_id"]: p for p in answer.json()["printers"]}
            if predicate(printers):
                return printers
            await asyncio.sleep(0.5)
