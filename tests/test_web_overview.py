"""The Pi's overview (/pi) with two real agents sharing one shared_state_dir: either page lists
both printers with state, score, thumbnail and link; a stopped agent shows as offline; the
overview needs the page's login; summaries that are not what an agent writes are left out."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from overview_harness import NAMES, one_agent, overview_until, two_worlds
from test_web_browser import ARTIFACTS, CHROMIUM, FLAGS, VIEWPORTS, _until
from web_harness import PASSWORD

from agent.web.overview import MAX_SUMMARY_BYTES, read_summaries, read_thumbnail
from agent.web.summary import THUMB_MAX_BYTES


@pytest.mark.slow
async def test_either_page_lists_both_printers_and_a_stopped_agent_goes_offline(tmp_path: Path) -> None:
    with two_worlds() as (left_world, right_world):
        async with contextlib.AsyncExitStack() as stack:
            left = await stack.enter_async_context(one_agent(left_world, tmp_path, "left"))
            right_stack = await stack.enter_async_context(contextlib.AsyncExitStack())
            right = await right_stack.enter_async_context(one_agent(right_world, tmp_path, "right"))

            async with left.client() as anonymous:  # the login guards the overview and its frames
                assert (await anonymous.get("/pi")).headers["location"] == "/login"
                assert (await anonymous.get("/api/pi")).status_code == 401
                assert (await anonymous.get("/api/pi/right.jpg")).status_code == 401

            left_client, _ = await left.logged_in()
            right_client, _ = await right.logged_in()
            stack.push_async_callback(left_client.aclose)
            stack.push_async_callback(right_client.aclose)
            page = await left_client.get("/pi")
            assert page.status_code == 200 and 'src="/static/pi.js"' in page.text
            for client, this in ((left_client, "left"), (right_client, "right")):
                printers = await overview_until(
                    client, lambda p: set(p) == set(NAMES) and all(x["page"] for x in p.values())
                )
                assert (await client.get("/api/pi")).json()["this"] == this
                for name, agent in (("left", left), ("right", right)):
                    assert printers[name]["online"] is True
                    assert printers[name]["print_state"] == "idle"
                    assert printers[name]["page"]["port"] == agent.page.port
                    assert printers[name]["page"]["url"] == agent.base + "/"

            left_world.printer.panel_start("left.gcode")
            right_world.printer.panel_start("right.gcode")
            printers = await overview_until(
                left_client,
                lambda p: all(
                    x["print_state"] == "printing" and x["score"] is not None and x["frame"]
                    for x in p.values()
                ),
            )
            assert printers["right"]["file"] == "right.gcode"
            assert printers["left"]["last_inspection"]
            thumb = await left_client.get("/api/pi/right.jpg")
            assert thumb.headers["content-type"] == "image/jpeg"
            assert thumb.content[:2] == b"\xff\xd8" and len(thumb.content) <= THUMB_MAX_BYTES
            assert (await left_client.get("/api/pi/nobody.jpg")).status_code == 404

            await right_stack.aclose()  # right's agent stops (systemctl stop, a crash)
            printers = await overview_until(left_client, lambda p: p["right"]["online"] is False)
            assert printers["left"]["online"] is True
            assert printers["right"]["print_state"] == "printing"  # its last word, shown as such


def test_only_whole_summaries_an_agent_could_have_written_are_listed(tmp_path: Path) -> None:
    record = {"printer_id": "ok", "print_state": "idle", "page": None}
    (tmp_path / "ok.json").write_text(json.dumps(record))
    (tmp_path / "renamed.json").write_text(json.dumps(record))  # names another printer
    (tmp_path / "big.json").write_text(
        json.dumps({**record, "printer_id": "big", "x": "y" * MAX_SUMMARY_BYTES})
    )
    (tmp_path / "half.json").write_text('{"printer_id": "ha')
    (tmp_path / "bad name.json").write_text(json.dumps({**record, "printer_id": "bad name"}))
    (tmp_path / "ok.jpg").write_bytes(b"\xff\xd8" + b"x" * 3 * THUMB_MAX_BYTES)
    printers = read_summaries(tmp_path)
    assert [p["printer_id"] for p in printers] == ["ok"]
    assert printers[0]["online"] is False  # no agent holds its lock
    assert read_thumbnail(tmp_path, "ok") is None  # too big to be a thumbnail
    assert read_summaries(tmp_path / "missing") == []


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (setup.sh --for-tests)")
async def test_the_overview_in_a_browser_shows_both_printers_and_links_to_each(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=60_000)  # a loaded 2-core machine
    shots = ARTIFACTS / "overview"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    with two_worlds() as (left_world, right_world):
        async with contextlib.AsyncExitStack() as stack:
            left = await stack.enter_async_context(one_agent(left_world, tmp_path, "left"))
            right_stack = await stack.enter_async_context(contextlib.AsyncExitStack())
            right = await right_stack.enter_async_context(one_agent(right_world, tmp_path, "right"))
            left_world.printer.panel_start("left.gcode")
            right_world.printer.panel_start("right.gcode")
            pw = await stack.enter_async_context(async_playwright())
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            stack.push_async_callback(browser.close)
            page = await browser.new_page(viewport=VIEWPORTS["desktop"])  # type: ignore[arg-type]
            page.set_default_timeout(60_000)

            await page.goto(left.base + "/pi")
            assert page.url.endswith("/login")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(left.base + "/")
            await page.click("a[href='/pi']")
            await page.wait_for_url(left.base + "/pi")
            cards = page.locator(".pi-card")
            await expect(cards).to_have_count(2)
            for name in NAMES:
                card = page.locator(f".pi-card[data-printer={name}]")
                await expect(card.locator(".badge")).to_have_text("printing")
                await expect(card.locator(".facts")).to_contain_text(f"{name}.gcode")
                await expect(card.locator(".facts")).to_contain_text("inspected")
            await _until(
                page, "[...document.querySelectorAll('.pi-card .thumb')].every(i => i.naturalWidth > 0)"
            )
            assert await page.evaluate("document.querySelector('.pi-card .thumb').naturalWidth") <= 320
            assert await cards.nth(1).get_attribute("href") == right.base + "/"
            await page.screenshot(path=str(shots / "pi.png"), full_page=True)

            # Each card opens that printer's page, with its own login; logging in there keeps
            # this one's session (a browser sends a host's cookies to all its ports).
            await cards.nth(1).click()
            await page.wait_for_url(right.base + "/login")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(right.base + "/")
            await expect(page.locator("#printer-id")).to_have_text("right")
            await page.goto(left.base + "/pi")
            assert page.url == left.base + "/pi"
            await expect(cards).to_have_count(2)

            await right_stack.aclose()
            right_card = page.locator(".pi-card[data-printer=right]")
            await expect(right_card.locator(".badge")).to_have_text("offline")
            await expect(right_card.locator(".facts")).to_contain_text("agent stopped")
            await expect(page.locator(".pi-card[data-printer=left] .badge")).to_have_text("printing")
            await page.screenshot(path=str(shots / "pi-offline.png"), full_page=True)

            await page.click(".pi-card[data-printer=left]")  # each card opens that printer's page
            await page.wait_for_url(left.base + "/")
            await expect(page.locator("#state")).to_have_text("printing")
