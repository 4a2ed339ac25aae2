"""The framing view's routes: the masks and crop in effect (and which keys the config file holds),
and saving what the user drew over the live frame (agent/framing.py stores it and hands it to the
camera at once). Every request has passed agent/web/guard.py (session, CSRF, Origin) first."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from agent import framing
from agent.web.page import Page

log = logging.getLogger(__name__)

MAX_MASKS = 32  # as many as camera.masks takes
KEYS = ("masks", "crop")
READ_BODY_S = 5.0


def add_framing_routes(app: web.Application, page: Page) -> None:
    async def show(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(_view, page))

    async def save(request: web.Request) -> web.Response:
        async with asyncio.timeout(READ_BODY_S):
            body = await request.read()
        wanted = _parse(body, framing.locked_by_config(page.settings))
        try:
            shown = await asyncio.to_thread(_save, page, wanted)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"Not saved: {exc}.\n") from None
        log.info("Camera framing set on the page: %s", shown.describe())
        return web.json_response(await asyncio.to_thread(_view, page))

    app.router.add_get("/api/framing", show)
    app.router.add_post("/api/framing", save)


def _view(page: Page) -> dict[str, Any]:
    shown = framing.in_effect(page.settings)
    f = shown.framing
    return {
        "masks": [list(m) for m in f.masks],
        "crop": None if f.crop is None else list(f.crop),
        "masks_from": shown.masks_from,
        "crop_from": shown.crop_from,
        "locked": sorted(framing.locked_by_config(page.settings)),
        "summary": shown.describe(),
    }


def _parse(body: bytes, locked: set[str]) -> dict[str, Any]:
    """The keys the page sends (a key left out keeps what was saved); a key the config file
    holds is refused, never silently ignored."""
    try:
        wanted = json.loads(body or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="Expected a JSON object.\n") from None
    if not isinstance(wanted, dict) or set(wanted) - set(KEYS):
        raise web.HTTPBadRequest(text='Expected {"masks": [[x0, y0, x1, y1], ...], "crop": [...] or null}.\n')
    if locked & set(wanted):
        key = min(locked & set(wanted))
        raise web.HTTPConflict(text=f"camera.{key} is set in the config file: change it there.\n")
    masks = wanted.get("masks", [])
    if not isinstance(masks, list) or len(masks) > MAX_MASKS:
        raise web.HTTPBadRequest(text=f"masks: a list of at most {MAX_MASKS} rectangles.\n")
    for rect in [*masks, *([wanted["crop"]] if wanted.get("crop") is not None else [])]:
        if not isinstance(rect, list) or not all(_number(v) for v in rect):
            raise web.HTTPBadRequest(text="A rectangle is [x0, y0, x1, y1], numbers from 0 to 1.\n")
    return wanted


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _save(page: Page, wanted: dict[str, Any]) -> framing.FramingInEffect:
    saved = framing.load_saved(page.settings.agent.state_dir)
    masks = wanted.get("masks", [list(m) for m in saved.masks])
    crop = wanted.get("crop", saved.crop)
    return framing.save_and_apply(page.settings, page.camera, masks, crop)
