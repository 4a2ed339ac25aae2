"""The page's costs, from `layerguard run` against the simulated world: idle RSS with the page on
and off, the agent's CPU with a page open during a print (its Server-Sent Events and a frame per
inspection, as the printer page fetches them) and with the live view open (a frame every 0.5 s),
and the bytes of a first visit before any frame.

The "browser" here is an HTTP client doing what the page's script does, so the figures are the
agent's side only; the browser tests (tests/test_web_browser.py) drive a real Chromium.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from pathlib import Path

import httpx

from bench import procstat
from bench.launch import API_KEY, AgentProcess, state_is, watched_agent, write_camera_frames
from bench.report import Row, at_least, below
from bench.slack import slack_by_context
from sim.broker import MosquittoBroker
from sim.gadget_service import GadgetStandIn
from sim.virtual_printer import VirtualPrinter, default_gcode

FILE = "page.gcode"
PRINTER_ID = "bench-page"
INTERVAL_S = 5
CHROMIUM = "/usr/bin/chromium"
FIRST_VISIT = ["/login", "/static/style.css", "/", "/static/app.js", "/api/session"]


def measure(broker: MosquittoBroker, window_s: float) -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="layerguard-bench-") as tmp,
        VirtualPrinter(files={FILE: default_gcode()}, print_duration_s=3600, heat_duration_s=0.5) as printer,
        GadgetStandIn(api_key=API_KEY, interval=INTERVAL_S) as service,
    ):
        camera = f"dir:{write_camera_frames(Path(tmp) / 'frames')}"
        common = {"printer_port": printer.port, "camera": camera, "api_url": service.base_url}
        with watched_agent(Path(tmp) / "off", printer_id=f"{PRINTER_ID}-off", broker=broker, **common) as (
            agent,
            probe,
        ):
            off = _idle(agent, probe, window_s)
        port = _free_port()
        with watched_agent(
            Path(tmp) / "on",
            printer_id=PRINTER_ID,
            broker=broker,
            web_listen=f"127.0.0.1:{port}",
            **common,
        ) as (agent, probe):
            on = _idle(agent, probe, window_s)
            base = f"http://127.0.0.1:{port}"
            password = (Path(tmp) / "on" / "state" / "web-password").read_text().strip()
            first_visit = _first_visit(base, password)
            visited = procstat.watch(agent.pid, window_s)
            printer.panel_start(FILE)
            agent.wait_for_state(probe, state_is("detection", "ok"), timeout_s=60)
            printing = procstat.watch(agent.pid, window_s)
            with contextlib.closing(_client(base, password)) as client, _Watching(client, "/api/stream"):
                watched = procstat.watch(agent.pid, window_s)
            with contextlib.closing(_client(base, password)) as client, _Watching(client, "/api/live.jpg"):
                live = procstat.watch(agent.pid, window_s)
            first_call = len(service.calls)
            with contextlib.ExitStack() as pages:
                for _ in range(3):
                    client = pages.enter_context(contextlib.closing(_client(base, password)))
                    pages.enter_context(_Watching(client, "/api/stream"))
                procstat.watch(agent.pid, max(window_s, 4 * INTERVAL_S))
            slack = [s for per in slack_by_context(service.calls[first_call:]).values() for s in per]
            paint = _first_paint(base, password)
    return [
        Row("RSS idle, page off", "MB", [off.rss_mb], below(60, "MB"), "`[web] enabled = false`"),
        Row(
            "RSS idle, page on, not visited",
            "MB",
            [on.rss_mb],
            below(60, "MB"),
            "listening; aiohttp not loaded",
        ),
        Row("RSS the page costs (on - off)", "MB", [on.rss_mb - off.rss_mb], below(6, "MB")),
        Row(
            "RSS idle, page on, after a visit",
            "MB",
            [visited.rss_mb],
            below(60, "MB"),
            "aiohttp loaded at the first visit and kept",
        ),
        Row(
            "CPU printing, no page open",
            "%",
            [printing.cpu_percent],
            note=f"{INTERVAL_S} s interval",
            digits=2,
        ),
        Row(
            "CPU printing, printer page open",
            "%",
            [watched.cpu_percent],
            note="SSE stream + the frame of every inspection",
            digits=2,
        ),
        Row("CPU printing, live view open", "%", [live.cpu_percent], note="a frame every 0.5 s", digits=2),
        Row(
            "schedule slack, three pages open",
            "ms",
            [1000 * s for s in slack],
            below(250, "ms", of="median"),
            f"{INTERVAL_S} s interval, three printer pages' streams (each fetching every frame)",
            digits=0,
            extra_goals=[at_least(0, "ms")],
        ),
        *(
            [
                Row(
                    "printer page: first contentful paint",
                    "ms",
                    [paint],
                    note="headless Chromium, loopback",
                    digits=0,
                )
            ]
            if paint is not None
            else []
        ),
        Row(
            "first visit, bytes before frames",
            "KB",
            [first_visit / 1000],
            below(250, "KB"),
            "login page, style, printer page, script, session (uncompressed)",
        ),
    ]


def _idle(agent: AgentProcess, probe: object, window_s: float) -> procstat.Window:
    agent.wait_for_state(probe, state_is("print_state", "idle"), timeout_s=60)  # type: ignore[arg-type]
    return procstat.watch(agent.pid, window_s)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(base: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    answer = client.post("/login", data={"password": password}, headers={"Origin": base})
    if answer.status_code != 303:
        raise RuntimeError(f"bench could not log in: {answer.status_code} {answer.text}")
    return client


def _first_visit(base: str, password: str) -> int:
    with contextlib.closing(_client(base, password)) as client:
        return sum(len(client.get(path).content) for path in FIRST_VISIT)


def _first_paint(base: str, password: str) -> float | None:
    """The printer page's first contentful paint in headless Chromium (None without one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).exists():
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(base + "/login")
            page.fill("#password", password)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            page.goto(base + "/")
            page.wait_for_load_state("load")
            entries = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)"
            )
            return float(entries[0]) if entries else None
        finally:
            browser.close()


class _Watching:
    """A page open in the background: the printer page's stream (fetching the frame of each
    inspection), or the live view's frames every 0.5 s."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.client, self.path = client, path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watching:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        if self.path == "/api/live.jpg":
            while not self._stop.wait(0.5):
                self.client.get(self.path)
            return
        with self.client.stream("GET", self.path) as stream:
            for line in stream.iter_lines():
                if self._stop.is_set():
                    return
                if line == "event: inspection":
                    self.client.get("/api/frame.jpg")
