"""Each agent's card for the Pi's overview (agent/web/summary.py): written when the state or the
frame changes, with its page's address; one card per printer_id (a second agent with the same one
is refused and says why); the card goes offline when its agent stops."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from agent.settings import AgentSection, Settings, WebSection
from agent.web.overview import read_summaries
from agent.web.server import WebPage
from agent.web.summary import THUMB_MAX_BYTES, THUMB_WIDTH, PiSummary, pages_dir


@contextlib.asynccontextmanager
async def card(tmp_path: Path, printer_id: str) -> AsyncIterator[tuple[PiSummary, WebPage]]:
    settings = Settings.model_construct(
        agent=AgentSection(printer_id=printer_id, state_dir=tmp_path / printer_id, shared_state_dir=tmp_path),
        web=WebSection(listen="0.0.0.0:0", auth="none"),
    )
    page = WebPage(settings, lambda *_: {}, None, dict)  # type: ignore[arg-type]
    summary = PiSummary(settings, page)
    loop = asyncio.get_running_loop()
    page.start(loop)
    summary.start(loop)
    try:
        yield summary, page
    finally:
        await summary.stop()
        await page.stop()


async def wait_for(predicate: Callable[[], bool], within: float = 30) -> None:
    """Polls: what it waits for is a file another writer replaces (no event to wait on)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def frame() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1920, 1080), (40, 90, 160)).save(out, "JPEG")
    return out.getvalue()


async def test_a_card_per_printer_written_on_change_and_offline_once_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = pages_dir(tmp_path)
    async with card(tmp_path, "left") as (left, page):
        long_name = "a" * 5000 + ".gcode"  # a card stays small whatever the file is called
        left.on_state(
            {"print_state": "printing", "file": long_name, "progress": 12.5, "score": 7, "api_key": "x"}
        )
        left.on_inspection(frame(), {"score": 7})
        await wait_for(lambda: [p.get("print_state") for p in read_summaries(directory)] == ["printing"])
        (shown,) = read_summaries(directory)
        assert shown["online"] is True and shown["frame"] is not None
        assert shown["page"]["port"] == page.port and shown["page"]["any_host"] is True
        assert shown["file"] == long_name[:200] and shown["score"] == 7 and "api_key" not in shown
        thumb = Image.open(directory / "left.jpg")
        assert thumb.width == THUMB_WIDTH and (directory / "left.jpg").stat().st_size <= THUMB_MAX_BYTES

        with caplog.at_level(logging.ERROR):
            async with card(tmp_path, "left") as (twin, _):
                twin.on_state({"print_state": "idle"})
                await wait_for(lambda: "Another agent on this Pi runs as printer 'left'" in caplog.text)
        assert [p["print_state"] for p in read_summaries(directory)] == ["printing"]  # the twin wrote nothing
        assert read_summaries(directory)[0]["online"] is True  # and left holds its lock still
    assert read_summaries(directory)[0]["online"] is False
