"""The live view against the real agent: frames only while asked, reduced in size, and the
inspections meanwhile keep their pace and send the full frame the page then shows."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_end_to_end import until
from web_harness import page_agent

from sim.world import SimWorld, sim_world


@pytest.fixture
def world() -> Iterator[SimWorld]:
    with sim_world(
        file="cube.gcode",
        failure_at=None,
        print_duration_s=120.0,
        interval_s=1,
        heat_duration_s=0.3,
        frame_size=(1280, 720),
        broker=None,
    ) as made:
        yield made


async def test_the_live_view_never_changes_or_delays_what_is_inspected(
    world: SimWorld, tmp_path: Path
) -> None:
    async with page_agent(world, tmp_path) as pa:
        client, _ = await pa.logged_in()
        async with contextlib.aclosing(client):
            world.printer.panel_start("cube.gcode")
            await until(pa.agent, lambda s: s.score is not None)
            calls, started = len(world.service.calls), time.monotonic()
            sizes = set()
            while time.monotonic() - started < 8:  # a page watching at its own pace, twice a second
                live = await client.get("/api/live.jpg")
                assert live.status_code == 200
                sizes.add(Image.open(io.BytesIO(live.content)).size)
                await asyncio.sleep(0.5)
            elapsed = time.monotonic() - started
            assert sizes == {(640, 360)}
            # About one inspection a second went on meanwhile (a loaded machine: a third of that).
            assert len(world.service.calls) - calls >= elapsed / 3
            # The frame the page shows is a full frame the service got, byte for byte.
            shown = (await client.get("/api/frame.jpg")).content
            sent = {f.sha256 for c in world.service.calls for f in c.files}
            assert Image.open(io.BytesIO(shown)).size == (1280, 720)
            assert hashlib.sha256(shown).hexdigest() in sent
