"""Labelling a print's last alert from the page's history: the print the agent is guarding goes
through the one command path (a false alarm on LayerGuard's pause resumes it and mutes the
guard); an ended print is labelled in the history the way `layerguard label` does it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from aiohttp import web

from agent.history.commands import print_json
from agent.history.labels import episodes, parse_label, write_label
from agent.history.store import connect_readonly, db_path, find_print, list_prints
from agent.web.page import Page

READ_BODY_S = 5.0
IN_PRINT = ("printing", "paused")


def add_label_routes(app: web.Application, page: Page) -> None:
    async def label(request: web.Request) -> web.Response:
        text = request.match_info["id"]
        if len(text) > 9:
            raise web.HTTPNotFound()
        async with asyncio.timeout(READ_BODY_S):
            body = await request.read()
        try:
            chosen = parse_label(str(json.loads(body or b"{}").get("label", "")))
        except (ValueError, AttributeError):
            chosen = None
        if chosen is None:
            raise web.HTTPBadRequest(text='Expected {"label": "false_alarm"} or "real_failure".\n')
        number, current = await asyncio.to_thread(_find, page, int(text))
        if current:
            return web.json_response({"answer": page.command("label", chosen, "web")})
        return web.json_response(await asyncio.to_thread(_write, page, number, chosen))

    app.router.add_post(r"/api/history/{id:\d+}/label", label)


def _find(page: Page, number: int) -> tuple[int, bool]:
    """The print's number, and whether it is the one the agent is guarding now."""
    try:
        with connect_readonly(db_path(page.settings.agent.state_dir)) as conn:
            found = find_print(conn, str(number))
            newest = list_prints(conn, 1)[0].id
    except (LookupError, sqlite3.Error) as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    running = page.state.get("print_state") in IN_PRINT
    return found.id, running and found.ended_at is None and found.id == newest


def _write(page: Page, number: int, label: str) -> dict[str, Any]:
    path = db_path(page.settings.agent.state_dir)
    try:
        episode = write_label(path, number, label, by="page")
    except sqlite3.Error as exc:
        raise web.HTTPServiceUnavailable(text=f"Cannot write the label: {exc}\n") from None
    if episode is None:
        raise web.HTTPConflict(text=f"Print #{number} has no alert to label.\n")
    with connect_readonly(path) as conn:
        return {"print": print_json(find_print(conn, str(number)), episodes(conn, number))}
