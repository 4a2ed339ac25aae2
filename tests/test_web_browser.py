"""The page in a real browser (Debian's chromium, driven by Playwright) against the real agent in
the simulated world: log in, watch the chart grow and the frame change, pause and resume, open
the print's history entry and its report. Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_end_to_end import until
from web_harness import PASSWORD, page_agent

from sim.world import SimWorld, sim_world

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).with_name("artifacts")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (setup.sh --for-tests)"
)


@pytest.fixture
def world() -> Iterator[SimWorld]:
    with sim_world(
        file="benchy.gcode",
        # The failure about 11 s in, as before, but the print lasts 2 min: on a loaded machine the
        # pause's streak of bad inspections took longer than the 20 s a 30 s print had left.
        failure_at=0.09,
        print_duration_s=120.0,
        interval_s=1,
        heat_duration_s=0.5,
        pause_delay_s=0.3,
        frame_size=(640, 480),
        broker=None,
    ) as made:
        yield made


@pytest.mark.slow
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_log_in_watch_pause_resume_and_review(world: SimWorld, tmp_path: Path, viewport: str) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=30_000)  # a loaded 2-core machine
    shots = ARTIFACTS / viewport
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    async with page_agent(world, tmp_path) as pa, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
            page.set_default_timeout(30_000)
            page.on("dialog", lambda dialog: dialog.accept())
            await page.goto(pa.base + "/")
            assert page.url.endswith("/login")
            await page.fill("#password", "wrong")
            await page.click("button[type=submit]")
            await expect(page.locator("#failed")).to_be_visible()
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(pa.base + "/")

            world.printer.panel_start("benchy.gcode")
            points = page.locator("#chart polyline")
            await expect(points).to_have_count(1)
            first = await _points(page)
            first_frame = await page.locator("#frame").get_attribute("src")
            await _until(page, f"document.querySelector('#chart polyline').points.length > {first}")
            await _until(page, f"document.querySelector('#frame').getAttribute('src') !== {first_frame!r}")

            # The failure: the agent pauses, the page shows what the printer confirmed. The agent's
            # own pace first (until()'s loaded-machine deadline), then the page's 30 s to show it.
            await until(pa.agent, lambda s: s.paused_by == "agent")
            await expect(page.locator("#state")).to_contain_text("paused (by agent)")
            await expect(page.locator("#chart line.pause")).not_to_have_count(0)
            await page.screenshot(path=str(shots / "printer-paused.png"), full_page=True)
            await page.click("[data-command=resume]")
            await expect(page.locator("#answers")).to_contain_text("resume: done")
            await expect(page.locator("#state")).to_have_text("printing")
            await page.click("[data-command=pause]")
            await expect(page.locator("#answers")).to_contain_text("pause: done")
            await expect(page.locator("#state")).to_have_text("paused (by user)")
            assert pa.agent.state.paused_by == "user" and world.printer.state == "paused"
            await page.screenshot(path=str(shots / "printer.png"), full_page=True)

            await page.goto(pa.base + "/live")
            await _until(page, "document.querySelector('#live').naturalWidth > 0")
            assert await page.evaluate("document.querySelector('#live').naturalWidth") <= 640

            await until(pa.agent, lambda s: s.print_state == "paused")
            await page.goto(pa.base + "/history")
            await page.click("#prints tbody a")
            await page.wait_for_url("**/history/*")
            await _until(page, "document.querySelector('#report').naturalWidth > 0", within=90)
            await expect(page.locator("#report-note")).to_be_hidden()  # "Drawing the report…" is gone
            await expect(page.locator("#evidence img")).not_to_have_count(0)
            await _until(
                page,
                "[...document.querySelectorAll('#evidence img')].every(i => i.naturalWidth > 0)",
            )
            await page.screenshot(path=str(shots / "history-entry.png"), full_page=True)
            # What the page hides stays hidden whatever its class shows (the label buttons were
            # clickable before they were wired: `.controls { display: flex }` beat `hidden`).
            assert (
                await page.evaluate(
                    "() => { const e = document.createElement('div'); e.className = 'controls';"
                    " e.hidden = true; document.body.append(e); return getComputedStyle(e).display; }"
                )
                == "none"
            )
            await page.goto(pa.base + "/history")
            await expect(page.locator("#prints tbody tr")).to_have_count(1)
            await page.screenshot(path=str(shots / "history.png"), full_page=True)
            outcome = await page.locator("#prints tbody td").nth(4).inner_text()
            await page.goto(pa.base + "/history?outcome=finished")  # the filter: none finished yet
            await expect(page.locator("#no-prints")).to_be_visible()
            await expect(page.locator("#prints tbody tr")).to_have_count(0)
            await page.goto(pa.base + f"/history?outcome={outcome}")
            await expect(page.locator("#prints tbody tr")).to_have_count(1)
            await page.goto(pa.base + "/health")
            await expect(page.locator("#checks li")).not_to_have_count(0)
            await page.screenshot(path=str(shots / "health.png"), full_page=True)

            await page.click("#logout")
            await page.wait_for_url("**/login")
            await page.goto(pa.base + "/")
            assert page.url.endswith("/login")
        finally:
            await browser.close()


async def _until(page: Any, expression: str, within: float = 30) -> None:
    """Waits until `expression` is true in the page. (Playwright's wait_for_function evaluates a
    string, which the page's Content-Security-Policy rightly forbids.)"""
    async with asyncio.timeout(within):
        while not await page.evaluate(expression):  # noqa: ASYNC110 (the browser has no event for us)
            await asyncio.sleep(0.2)


async def _points(page: object) -> int:
    return await page.evaluate("document.querySelector('#chart polyline').points.length")  # type: ignore[attr-defined]
