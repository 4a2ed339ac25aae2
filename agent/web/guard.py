"""What every request passes before a handler sees it: the `Host` allow-list (DNS rebinding), the
session, the CSRF token and same-origin `Origin` on every state change, and the security headers
on every answer."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from agent.web.login import Sessions

COOKIE = "lg_session"
CSRF_HEADER = "X-CSRF-Token"
# Only the page's own scripts, styles and pictures; never framed (clickjacking).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
OPEN_PATHS = frozenset({"/login", "/static/style.css"})
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def own_host_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The names this device answers to; any IP literal is accepted too (a rebinding attack
    needs a name it controls, never an address)."""
    host = socket.gethostname().lower()
    short = host.split(".")[0]
    return frozenset({"localhost", host, short, f"{short}.local", *(h.lower() for h in extra)})


def cookie_name(printer_id: str) -> str:
    """The session cookie of this printer's page: a browser sends a host's cookies to all its
    ports, so with one name the pages of several printers on one Pi would log each other out."""
    return f"{COOKIE}_{printer_id}"


def host_name(header: str) -> str:
    """`Host` without its port; `[v6]` without brackets."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(header: str, names: frozenset[str]) -> bool:
    name = host_name(header.strip().lower())
    if name in names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def make_guard(
    sessions: Sessions | None,
    names: frozenset[str],
    note_request: Callable[[object], None],
    cookie: str,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware; `sessions` None is `web.auth = "none"` (a reverse proxy's own login).
    `note_request` hears of each request's connection (the listener's headers deadline)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        note_request(request.protocol)
        try:
            response = await _check(request, handler, sessions, names, cookie)
        except web.HTTPException as exc:  # answered as a plain response, with the same headers
            response = web.Response(status=exc.status, text=exc.text, headers=exc.headers)
        _headers(response, request.path)
        return response

    return guard


async def _check(
    request: web.Request, handler: Handler, sessions: Sessions | None, names: frozenset[str], cookie: str
) -> web.StreamResponse:
    if not host_allowed(request.headers.get("Host", ""), names):
        raise web.HTTPMisdirectedRequest(
            text="This page answers only to this device's own name or address.\n"
        )
    if request.method not in SAFE_METHODS and not same_origin(request):
        raise web.HTTPForbidden(text="Refused: the request does not come from this page (Origin).\n")
    token = request.cookies.get(cookie)
    logged_in = sessions is None or sessions.valid(token)
    if request.path not in OPEN_PATHS and not logged_in:
        if request.path.startswith("/api/") or request.method not in SAFE_METHODS:
            raise web.HTTPUnauthorized(text="Log in first.\n")
        raise web.HTTPSeeOther("/login")
    if request.method not in SAFE_METHODS and request.path != "/login" and sessions is not None:
        assert token is not None
        if request.headers.get(CSRF_HEADER, "") != sessions.csrf(token):
            raise web.HTTPForbidden(text="Refused: missing or wrong CSRF token; reload the page.\n")
    return await handler(request)


def same_origin(request: web.Request) -> bool:
    """A state change must name this page as its `Origin` (browsers always send it on POST)."""
    origin = request.headers.get("Origin")
    host = request.headers.get("Host", "")
    return origin is not None and origin in (f"http://{host}", f"https://{host}")


def _headers(response: web.StreamResponse, path: str) -> None:
    if response.prepared:  # a stream (SSE) set its headers before it started
        return
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if not path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"


def security_headers(response: web.StreamResponse) -> None:
    """For a stream that must prepare its own answer (SSE)."""
    _headers(response, "/api/")
