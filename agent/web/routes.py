"""The page's routes: its own files, the login, the live stream, commands, the live view, history
and health. Every request has passed agent/web/guard.py first."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.history.commands import print_json
from agent.history.labels import Episode, by_print, episodes
from agent.history.store import (
    EVIDENCE_DIR,
    connect_readonly,
    db_path,
    find_print,
    list_prints,
    load_timeline,
)
from agent.history.worker import render_in_worker
from agent.web.framing_view import add_framing_routes
from agent.web.guard import cookie_name, security_headers
from agent.web.labelling import add_label_routes
from agent.web.login import check_password, refreshed
from agent.web.overview import add_overview_routes
from agent.web.page import Page
from agent.web.stream import TooManyClients
from agent.web.thumbnail import reduced

STATIC = Path(__file__).with_name("static")
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
PAGES = {
    "/": "printer.html",
    "/live": "live.html",
    "/history": "history.html",
    "/health": "health.html",
    "/pi": "pi.html",
}
LIVE_MIN_GAP_S = 0.5  # the live view: at most 2 frames a second, however many watch
LIVE_WIDTH = 640
SSE_PING_S = 15.0
READ_BODY_S = 5.0  # a client gets this long to send a (small) body
HISTORY_LIMIT = 500


def add_routes(app: web.Application, page: Page) -> None:
    files = {p.name: (p.read_bytes(), TYPES[p.suffix]) for p in STATIC.iterdir() if p.suffix in TYPES}
    live = _LiveView(page)
    reports = _LastReport()
    cookie = cookie_name(page.settings.agent.printer_id)

    def serve_file(name: str) -> web.Response:
        body, content_type = files[name]
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:  # only the files loaded at start: no path ever reaches the disk
            raise web.HTTPNotFound()
        return serve_file(name)

    def html(name: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return serve_file(name)

        return handler

    async def login_form(request: web.Request) -> web.Response:
        return serve_file("login.html")

    async def login(request: web.Request) -> web.Response:
        client = request.remote or "?"
        wait = page.limiter.retry_after(client)
        if wait > 0:
            raise web.HTTPTooManyRequests(
                text=f"Too many failed logins; try again in {wait:.0f} s.\n",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        async with asyncio.timeout(READ_BODY_S):
            form = await request.post()
        password = str(form.get("password", ""))[:200]
        sessions = page.sessions
        if sessions is None:
            raise web.HTTPSeeOther("/")
        found = await asyncio.to_thread(refreshed, page.credential, page.settings.agent.state_dir)
        if found is not page.credential:
            page.credential = found
            sessions.rekey(found.hash)
        if not password or not await asyncio.to_thread(check_password, password, found.hash):
            page.limiter.failed(client)
            raise web.HTTPSeeOther("/login#failed")
        page.limiter.succeeded(client)
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(
            cookie,
            sessions.issue(),
            max_age=int(sessions.lifetime_s),
            httponly=True,
            samesite="Strict",
            path="/",
        )
        return response

    async def logout(request: web.Request) -> web.Response:
        response = web.Response(status=303, headers={"Location": "/login"})
        response.del_cookie(cookie, path="/")
        return response

    async def session(request: web.Request) -> web.Response:
        token = request.cookies.get(cookie)  # the guard let it through: valid, or no login at all
        csrf = page.sessions.csrf(token) if page.sessions is not None and token else ""
        return web.json_response(
            {"csrf": csrf, "printer_id": page.settings.agent.printer_id, "auth": page.settings.web.auth}
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        try:
            queue = page.subscribe()
        except TooManyClients as exc:
            raise web.HTTPServiceUnavailable(text=f"{exc}; close one.\n") from None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        security_headers(response)
        try:
            await response.prepare(request)
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), SSE_PING_S)
                except TimeoutError:
                    message = ": ping\n\n"
                if message is None:
                    break
                async with asyncio.timeout(SSE_PING_S):  # a reader that stopped reading is cut off
                    await response.write(message.encode())
        except (ConnectionResetError, TimeoutError):
            pass  # the page went away or stopped reading
        finally:
            page.unsubscribe(queue)
        return response

    async def frame(request: web.Request) -> web.Response:
        if page.frame is None:
            raise web.HTTPNotFound(text="No frame inspected yet.\n")
        return web.Response(body=page.frame, content_type="image/jpeg")

    async def live_frame(request: web.Request) -> web.Response:
        try:
            jpeg = await live.frame()
        except Exception as exc:  # the camera's error, said plainly
            raise web.HTTPServiceUnavailable(text=f"Camera: {exc}\n") from None
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def command(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        async with asyncio.timeout(READ_BODY_S):
            body = await request.read()
        try:
            payload = str(json.loads(body or b"{}").get("payload", ""))[:100]
        except (ValueError, AttributeError):
            raise web.HTTPBadRequest(text="Expected a JSON object.\n") from None
        return web.json_response(page.command(name, payload, "web"))

    async def history(request: web.Request) -> web.Response:
        outcome = request.query.get("outcome", "")
        prints, alerts = await asyncio.to_thread(_prints, page)
        rows = [print_json(p, alerts.get(p.id, ())) for p in prints if not outcome or p.outcome == outcome]
        return web.json_response({"prints": rows, "outcomes": sorted({p.outcome for p in prints})})

    async def history_entry(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(_timeline, page, _number(request, "id")))

    async def report(request: web.Request) -> web.Response:
        number = _number(request, "id")
        timeline = await asyncio.to_thread(_timeline, page, number)  # 404 for a print not there
        key = (number, timeline["print"]["ended_at"], len(timeline["inspections"]), len(timeline["events"]))
        async with reports.lock:  # one drawing worker at a time, whoever asks
            if reports.key != key:
                reports.png = await render_in_worker(
                    db_path(page.settings.agent.state_dir), number, page.settings.history.report_timeout_s
                )
                reports.key = key if reports.png is not None else None
        if reports.png is None:
            raise web.HTTPServiceUnavailable(text="The report could not be drawn (see the journal).\n")
        return web.Response(body=reports.png, content_type="image/png")

    async def evidence(request: web.Request) -> web.Response:
        number, seq = _number(request, "id"), _number(request, "seq")
        path = await asyncio.to_thread(_evidence_path, page, number, seq)
        return web.Response(body=await asyncio.to_thread(path.read_bytes), content_type="image/jpeg")

    async def health(request: web.Request) -> web.Response:
        return web.json_response(page.health())

    async def notify_test(request: web.Request) -> web.Response:
        from agent.web.checks import send_test_notification

        return web.json_response(await send_test_notification(page.settings, page.frame))

    for path, name in PAGES.items():
        app.router.add_get(path, html(name))
    app.router.add_get(r"/history/{id:\d+}", html("entry.html"))
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/session", session)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/api/frame.jpg", frame)
    app.router.add_get("/api/live.jpg", live_frame)
    app.router.add_post("/api/command/{name}", command)
    app.router.add_get("/api/history", history)
    app.router.add_get(r"/api/history/{id:\d+}", history_entry)
    app.router.add_get(r"/api/history/{id:\d+}/report.png", report)
    app.router.add_get(r"/api/history/{id:\d+}/frame/{seq:\d+}.jpg", evidence)
    app.router.add_get("/api/health", health)
    app.router.add_post("/api/notify-test", notify_test)
    add_framing_routes(app, page)
    add_label_routes(app, page)
    add_overview_routes(app, page.settings)


def _number(request: web.Request, key: str) -> int:
    text = request.match_info[key]
    if len(text) > 9:
        raise web.HTTPNotFound()
    return int(text)


def _prints(page: Page) -> tuple[list[Any], dict[int, list[Episode]]]:
    """The last prints, and each one's alert episodes (with their labels)."""
    try:
        with connect_readonly(db_path(page.settings.agent.state_dir)) as conn:
            prints = list_prints(conn, HISTORY_LIMIT)
            alerts = by_print(episodes(conn))
    except (LookupError, sqlite3.Error):
        return [], {}
    return prints, alerts


def _timeline(page: Page, number: int) -> dict[str, Any]:
    try:
        with connect_readonly(db_path(page.settings.agent.state_dir)) as conn:
            timeline = load_timeline(conn, find_print(conn, str(number)))
            alerts = episodes(conn, timeline.print.id)
    except (LookupError, sqlite3.Error) as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    return {
        "print": print_json(timeline.print, alerts),
        "inspections": [
            {
                "seq": i.seq,
                "at": i.at,
                "score": i.score,
                "warning": i.warning,
                "pause_suggested": i.pause_suggested,
                "progress": i.progress,
                "frame": i.frame is not None,
            }
            for i in timeline.inspections
        ],
        "events": [{"at": e.at, "type": e.type} for e in timeline.events],
    }


def _evidence_path(page: Page, number: int, seq: int) -> Path:
    """The frame the database names for this inspection: the URL never names a file."""
    db = db_path(page.settings.agent.state_dir)
    try:
        with connect_readonly(db) as conn:
            row = conn.execute(
                "SELECT frame FROM inspections WHERE print_id = ? AND seq = ?", (number, seq)
            ).fetchone()
    except (LookupError, sqlite3.Error):
        row = None
    folder = (db.parent / EVIDENCE_DIR).resolve()
    path = (folder / row[0]).resolve() if row and row[0] else None
    if path is None or not path.is_relative_to(folder) or not path.is_file():
        raise web.HTTPNotFound(text="No such frame (frames age out with max_evidence_mb).\n")
    return path


class _LastReport:
    """The last report drawn, kept until its print changes: a reload draws nothing again."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.key: tuple[Any, ...] | None = None
        self.png: bytes | None = None


class _LiveView:
    """Frames for framing the camera: taken only while someone asks, at most one per
    `LIVE_MIN_GAP_S` whoever asks, reduced in size; through the shared camera, so an inspection
    is never delayed (agent/hardware camera.shared)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self._last: bytes | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def frame(self) -> bytes:
        async with self._lock:
            if self._last is None or time.monotonic() - self._at >= LIVE_MIN_GAP_S:
                self._last = await asyncio.to_thread(self._take)
                self._at = time.monotonic()
            return self._last

    def _take(self) -> bytes:
        # The whole picture, unmasked (the user draws the masks over it), through the shared backend.
        return reduced(self.page.camera.camera.capture(), LIVE_WIDTH, quality=70)
