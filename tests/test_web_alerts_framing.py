"""The page's labels, snooze and framing view, against the real agent in the simulated world: a
cable in view the stand-in scores as a failure makes LayerGuard pause (a false alarm). In a real
browser (Debian's chromium, Playwright): label it a false alarm and see the print resume, then draw
a mask over the cable on the live view and see the next uploaded frame masked. Over HTTP: the
history's labels, the checks on drawn rectangles, keys the config holds, and the refusals.
Screenshots go to tests/artifacts/alerts-framing/<viewport>/ (git-ignored)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_end_to_end import until
from test_web_browser import ARTIFACTS, CHROMIUM, FLAGS, VIEWPORTS, _until
from web_harness import PASSWORD, PageAgent, page_agent

from agent import framing
from agent.settings import CameraSection
from hardware.camera.framing import Framing
from sim.frames import CLUTTER_MASK
from sim.world import SimWorld, sim_world

# The mask the user draws: the cable's corner with a margin, dragged from inside to past the edges.
DRAG_FROM, DRAG_TO = (0.68, 0.42), (1.05, -0.05)
DRAWN = [0.68, 0.0, 1.0, 0.42]


@pytest.fixture
def world() -> Iterator[SimWorld]:
    with sim_world(
        file="cable.gcode",
        failure_at=None,
        # Longer than the test can take on a loaded machine: the story labels the print while it
        # still runs, and ends it itself (90 s ran out once beside two emulated Pi guests).
        print_duration_s=900.0,
        interval_s=1,
        heat_duration_s=0.3,
        pause_delay_s=0.3,
        frame_size=(640, 480),
        broker=None,
        clutter=True,  # a cable the stand-in scores ~70: LayerGuard pauses for nothing
    ) as made:
        made.service.probe = CLUTTER_MASK
        yield made


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (setup.sh --for-tests)")
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_label_a_false_alarm_then_mask_the_cable(
    world: SimWorld, tmp_path: Path, viewport: str
) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=30_000)  # a loaded 2-core machine
    shots = ARTIFACTS / "alerts-framing" / viewport  # beside test_web_browser.py's, which it clears
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    async with page_agent(world, tmp_path) as pa, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            phone = viewport == "phone"  # a touch screen: the drawing is done with a finger
            context = await browser.new_context(
                viewport=VIEWPORTS[viewport],  # type: ignore[arg-type]
                has_touch=phone,
                is_mobile=phone,
            )
            page = await context.new_page()
            page.set_default_timeout(30_000)
            dialogs: list[str] = []

            def answer(dialog: Any) -> Any:
                dialogs.append(dialog.message)
                return dialog.accept()

            page.on("dialog", answer)
            await _log_in(page, pa)

            # The cable's false alarm: LayerGuard pauses, the page offers the labels.
            await expect(page.locator("#alert-card")).to_be_hidden()
            world.printer.panel_start("cable.gcode")
            await until(pa.agent, lambda s: s.paused_by == "agent")  # its pace; then the page's
            await expect(page.locator("#state")).to_contain_text("paused (by agent)")
            await expect(page.locator("#alert-card")).to_be_visible()
            await expect(page.locator("#alert-text")).to_contain_text("LayerGuard paused this print")
            await page.locator("#alert-card").scroll_into_view_if_needed()
            await page.screenshot(path=str(shots / "printer-alert.png"), full_page=True)
            await page.click("#alert-card [data-payload=false_alarm]")
            assert "FALSE ALARM" in dialogs[-1]  # asked first
            await expect(page.locator("#alert-answers")).to_contain_text("label: done")
            await expect(page.locator("#alert-answers")).to_contain_text("resuming the print")
            await expect(page.locator("#state")).to_have_text("printing")
            await expect(page.locator("#alert-text")).to_contain_text("Labelled a false alarm")
            assert pa.agent.state.alerts_muted == "false_alarm" and world.printer.state == "printing"
            await page.locator("#alert-card").scroll_into_view_if_needed()
            await page.screenshot(path=str(shots / "printer-false-alarm.png"), full_page=True)
            await page.click("#snooze")
            await expect(page.locator("#alert-answers")).to_contain_text("snoozed for the rest")
            await expect(page.locator("#snooze")).to_be_hidden()
            assert pa.agent.state.alerts_muted == "snoozed"

            # The framing view: the whole picture, the cable masked by a drag over it.
            await page.goto(pa.base + "/live")
            await _until(page, "document.querySelector('#live').naturalWidth > 0")
            await expect(page.locator("#framing-save")).to_be_disabled()
            await _drag(page, DRAG_FROM, DRAG_TO, touch=phone)
            await expect(page.locator("#overlay rect.mask")).to_have_count(1)
            await expect(page.locator("#rects li")).to_have_count(1)
            await page.screenshot(path=str(shots / "live-drawn.png"), full_page=True)
            calls = len(world.service.calls)
            await page.click("#framing-save")
            await expect(page.locator("#framing-result")).to_contain_text("Saved")
            saved = framing.load_saved(tmp_path)
            assert len(saved.masks) == 1 and saved.masks[0] == pytest.approx(DRAWN, abs=0.01)
            # Every frame uploaded after the save is masked, those taken during a live-view
            # capture (the inspection joins it and masks the shared frame) included.
            uploads = await _uploads_after(world, calls, 3)
            assert all(u.probe_masked is not None and u.probe_masked > 0.97 for u in uploads), uploads
            # The live view stays the whole picture: the cable is not painted over there.
            await page.reload()
            await _until(page, "document.querySelector('#live').naturalWidth > 0")
            await expect(page.locator("#overlay rect.mask")).to_have_count(1)
            await page.screenshot(path=str(shots / "live-saved.png"), full_page=True)
            client, _ = await pa.logged_in()
            async with contextlib.aclosing(client):
                live = (await client.get("/api/live.jpg")).content
            assert _grey_share(live, CLUTTER_MASK) < 0.5
            # A crop drawn, looked at, and undone: nothing saved.
            await page.check("input[value=crop]")
            await _drag(page, (0.05, 0.3), (0.95, 1.05), touch=phone)
            await expect(page.locator("#overlay rect.crop")).to_have_count(1)
            await expect(page.locator("#rects")).to_contain_text("crop: 5\u201395% across, 30\u2013100% down")
            await page.screenshot(path=str(shots / "live-crop.png"), full_page=True)
            await page.click("#framing-undo")
            await expect(page.locator("#overlay rect.crop")).to_have_count(0)
            assert framing.load_saved(tmp_path).crop is None
            # A crop the config file sets: shown, marked as the config's, not offered for change.
            source = pa.page.settings.camera.source
            pa.page.settings.camera = CameraSection(source=source, crop=[0.0, 0.2, 1.0, 1.0])
            await page.reload()
            locked = page.locator("#framing-locked")
            await expect(locked).to_contain_text("camera.crop is set in the config file")
            await expect(page.locator("input[value=crop]")).to_be_disabled()
            await expect(page.locator("#rects li").last).to_contain_text("(config file)")
            await expect(page.locator("#rects li").last.locator("button")).to_have_count(0)
            await _until(page, "document.querySelector('#live').naturalWidth > 0")
            await page.screenshot(path=str(shots / "live-locked.png"), full_page=True)

            # The history shows the alert and its label.
            await page.goto(pa.base + "/history")
            await expect(page.locator("#prints tbody tr").first).to_contain_text("false alarm")
            await page.screenshot(path=str(shots / "history.png"), full_page=True)
            await page.click("#prints tbody a")
            await expect(page.locator("#alerts li")).to_have_count(1)
            await expect(page.locator("#alerts")).to_contain_text("false alarm")
            # The running print's label goes to the agent; an ended print's into the history.
            await page.click("[data-label=real_failure]")
            await expect(page.locator("#label-answer")).to_contain_text("Sent to the agent: accepted")
            await expect(page.locator("#alerts")).to_contain_text("real failure")
            world.printer.panel_stop()
            await until(pa.agent, lambda s: s.print_state == "idle")
            await _until_ended(pa)
            await page.reload()
            await page.click("[data-label=false_alarm]")
            await expect(page.locator("#label-answer")).to_have_text("Labelled false alarm.")
            await expect(page.locator("#alerts")).to_contain_text("false alarm")
            await page.locator("#alerts-card").scroll_into_view_if_needed()
            await page.screenshot(path=str(shots / "history-entry.png"), full_page=True)
        finally:
            await browser.close()


async def test_history_labels_the_running_print_through_the_agent_and_an_ended_one_itself(
    world: SimWorld, tmp_path: Path
) -> None:
    async with page_agent(world, tmp_path) as pa:
        client, csrf = await pa.logged_in()
        headers = {"Origin": pa.base, "X-CSRF-Token": csrf}
        async with contextlib.aclosing(client):
            world.printer.panel_start("cable.gcode")
            await until(pa.agent, lambda s: s.paused_by == "agent")
            answer = await client.post("/api/history/1/label", json={"label": "false_alarm"}, headers=headers)
            assert answer.status_code == 200 and answer.json()["answer"]["result"] == "accepted"
            await until(pa.agent, lambda s: s.print_state == "printing" and s.alerts_muted == "false_alarm")
            await _until_history(client, lambda rows: rows[0]["alerts"][0]["label"] == "false_alarm")

            world.printer.panel_stop()
            await until(pa.agent, lambda s: s.print_state == "idle")
            await _until_history(client, lambda rows: rows[0]["ended_at"] is not None)
            answer = await client.post("/api/history/1/label", json={"label": "real"}, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["print"]["alerts"][-1]["label"] == "real_failure"
            assert (await _history(client))[0]["alerts"][-1]["label"] == "real_failure"
            bad = await client.post("/api/history/1/label", json={"label": "maybe"}, headers=headers)
            assert bad.status_code == 400
            missing = await client.post("/api/history/7/label", json={"label": "real"}, headers=headers)
            assert missing.status_code == 404


async def test_framing_checks_what_is_drawn_and_keeps_keys_the_config_holds(
    world: SimWorld, tmp_path: Path
) -> None:
    async with page_agent(world, tmp_path) as pa:
        client, csrf = await pa.logged_in()
        headers = {"Origin": pa.base, "X-CSRF-Token": csrf}
        fitted = pa.page.camera
        async with contextlib.aclosing(client):
            shown = (await client.get("/api/framing")).json()
            assert shown == {
                "masks": [],
                "crop": None,
                "masks_from": "none",
                "crop_from": "none",
                "locked": [],
                "summary": "no masks, no crop",
            }
            for body, status in [
                ({"masks": [[0.5, 0.1, 0.2, 0.9]]}, 400),  # x0 > x1
                ({"masks": [[0, 0, 1.5, 1]]}, 400),  # outside the frame
                ({"masks": [["0", 0, 1, 1]]}, 400),
                ({"masks": [[0, 0, 0.1, 0.1]] * 33}, 400),  # more than camera.masks takes
                ({"crop": [0.1, 0.1, 0.15, 0.9]}, 400),  # a crop keeps at least 10% of each side
                ({"colour": "red"}, 400),
                ([1, 2], 400),
            ]:
                answer = await client.post("/api/framing", json=body, headers=headers)
                assert answer.status_code == status, (body, answer.text)
            assert not (tmp_path / framing.FRAMING_FILE).exists() and fitted.framing == Framing()

            saved = await client.post(
                "/api/framing", json={"masks": [[0, 0, 0.2, 0.2]], "crop": [0, 0, 0.9, 1]}, headers=headers
            )
            assert saved.status_code == 200 and saved.json()["masks_from"] == "page"
            assert fitted.framing == Framing(((0, 0, 0.2, 0.2),), (0, 0, 0.9, 1))  # at once
            # A key left out keeps what was saved.
            await client.post("/api/framing", json={"crop": None}, headers=headers)
            assert fitted.framing == Framing(((0, 0, 0.2, 0.2),), None)

            # camera.masks in the config file: shown as locked, never changed from the page.
            pa.page.settings.camera = CameraSection(source=pa.page.settings.camera.source, masks=[])
            shown = (await client.get("/api/framing")).json()
            assert shown["locked"] == ["masks"] and shown["masks"] == []
            refused = await client.post("/api/framing", json={"masks": [[0, 0, 1, 1]]}, headers=headers)
            assert refused.status_code == 409 and "camera.masks" in refused.text
            crop = await client.post("/api/framing", json={"crop": [0.1, 0, 1, 1]}, headers=headers)
            assert crop.status_code == 200 and fitted.framing == Framing((), (0.1, 0, 1, 1))
            assert framing.load_saved(tmp_path).masks == ((0, 0, 0.2, 0.2),)  # the page's kept aside


async def test_the_new_state_changes_need_a_session_the_token_and_this_origin(
    world: SimWorld, tmp_path: Path
) -> None:
    changes: list[tuple[str, dict[str, Any]]] = [
        ("/api/framing", {"masks": [[0, 0, 0.5, 0.5]]}),
        ("/api/history/1/label", {"label": "false_alarm"}),
        ("/api/command/label", {"payload": "false_alarm"}),
        ("/api/command/snooze", {}),
    ]
    async with page_agent(world, tmp_path) as pa:
        world.printer.panel_start("cable.gcode")
        await until(pa.agent, lambda s: s.paused_by == "agent")
        async with pa.client() as stranger:
            for url, body in changes:
                assert (await stranger.post(url, json=body, headers={"Origin": pa.base})).status_code == 401
            assert (await stranger.get("/api/framing")).status_code == 401
        client, csrf = await pa.logged_in()
        async with contextlib.aclosing(client):
            for url, body in changes:
                no_token = await client.post(url, json=body, headers={"Origin": pa.base})
                assert no_token.status_code == 403 and "CSRF" in no_token.text, url
                foreign = await client.post(
                    url, json=body, headers={"Origin": "http://evil.example", "X-CSRF-Token": csrf}
                )
                assert foreign.status_code == 403 and "Origin" in foreign.text, url
                big = await client.post(
                    url,
                    content=b'{"masks": [' + b" " * 100_000 + b"]}",
                    headers={"Origin": pa.base, "X-CSRF-Token": csrf, "Content-Type": "application/json"},
                )
                assert big.status_code == 413, url
        # None of them reached the agent: still paused, nothing muted, nothing saved.
        assert pa.agent.state.paused_by == "agent" and pa.agent.state.alerts_muted is None
        assert not (tmp_path / framing.FRAMING_FILE).exists()


async def _log_in(page: Any, pa: PageAgent) -> None:
    await page.goto(pa.base + "/")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(pa.base + "/")


async def _drag(page: Any, start: tuple[float, float], end: tuple[float, float], touch: bool) -> None:
    """A drag over the live picture, in fractions of it: with a finger (touch events through the
    browser's input, as a phone sends them) or with the mouse."""
    box = await page.locator("#overlay").bounding_box()
    (x0, y0), (x1, y1) = start, end
    shares = [k / 5 for k in range(6)]
    points = [
        (box["x"] + (x0 + (x1 - x0) * k) * box["width"], box["y"] + (y0 + (y1 - y0) * k) * box["height"])
        for k in shares
    ]
    if touch:
        cdp = await page.context.new_cdp_session(page)
        for n, (x, y) in enumerate(points):
            kind = "touchStart" if n == 0 else "touchMove"
            await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        await cdp.detach()
        return
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(x, y)
    await page.mouse.up()


async def _uploads_after(world: SimWorld, after: int, count: int) -> list[Any]:
    """The first `count` frames uploaded after call number `after` (skipping the next call: it
    may have been under way during the save)."""
    wanted = after + count + 1
    while True:
        calls = await asyncio.to_thread(world.service.wait_for_calls, wanted, 30)
        uploads = [c.files[0] for c in calls[after + 1 :] if c.endpoint == "process" and c.files]
        if len(uploads) >= count:
            return uploads[:count]
        wanted = len(calls) + 1


def _grey_share(jpeg: bytes, rect: tuple[float, float, float, float]) -> float:
    import io

    from PIL import Image

    from hardware.camera.framing import MASK_FILL

    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    w, h = image.size
    box = image.crop((int(rect[0] * w), int(rect[1] * h), int(rect[2] * w), int(rect[3] * h)))
    data = box.tobytes()
    pixels = [data[i : i + 3] for i in range(0, len(data), 3)]
    grey = sum(all(abs(c - m) <= 6 for c, m in zip(p, MASK_FILL, strict=True)) for p in pixels)
    return grey / len(pixels)


async def _history(client: Any) -> list[dict[str, Any]]:
    return (await client.get("/api/history")).json()["prints"]


async def _until_history(client: Any, check: Any, within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not check(await _history(client)):  # noqa: ASYNC110 (the history has no event)
            await asyncio.sleep(0.3)


async def _until_ended(pa: PageAgent) -> None:
    """Until the history has closed every print."""
    client, _ = await pa.logged_in()
    async with contextlib.aclosing(client):
        await _until_history(client, lambda rows: all(r["ended_at"] is not None for r in rows))
