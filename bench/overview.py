"""The Pi's overview (`/pi`) with ten printers: the bytes of a first visit (page, script, the
summaries and ten thumbnails) and of each poll, how long `/api/pi` takes to answer, the agent's
CPU with the overview open (polled every 5 s as pi.js does) against none, and what a summary costs
its writer (thumbnail bytes, time to make one from a camera frame).

One real `layerguard run` prints and serves the page; nine more printers are its summary and
thumbnail copied under other names, their locks held by this process (so they show as online):
ten agents would measure the machine, not the overview.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from agent.web.summary import THUMB_MAX_BYTES, THUMB_WIDTH, pages_dir
from agent.web.thumbnail import reduced
from bench import procstat
from bench.launch import API_KEY, CAMERA_SIZE, state_is, watched_agent, write_camera_frames
from bench.page import _client, _free_port
from bench.report import Row, below
from sim.broker import MosquittoBroker
from sim.gadget_service import GadgetStandIn
from sim.virtual_printer import VirtualPrinter, default_gcode

FILE = "overview.gcode"
PRINTER_ID = "bench-pi-0"
PRINTERS = 10
INTERVAL_S = 5
POLL_S = 5.0  # pi.js's PI_POLL_MS
PAGE_FILES = ["/login", "/static/style.css", "/pi", "/static/pi.css", "/static/app.js", "/static/pi.js"]


def measure(broker: MosquittoBroker, window_s: float) -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="layerguard-bench-") as tmp,
        VirtualPrinter(files={FILE: default_gcode()}, print_duration_s=3600, heat_duration_s=0.5) as printer,
        GadgetStandIn(api_key=API_KEY, interval=INTERVAL_S) as service,
    ):
        frames = write_camera_frames(Path(tmp) / "frames")
        shared = Path(tmp) / "pi"
        port = _free_port()
        with watched_agent(
            Path(tmp) / "agent",
            printer_id=PRINTER_ID,
            broker=broker,
            printer_port=printer.port,
            camera=f"dir:{frames}",
            api_url=service.base_url,
            shared_state_dir=shared,
            web_listen=f"127.0.0.1:{port}",
        ) as (agent, probe):
            agent.wait_for_state(probe, state_is("print_state", "idle"), timeout_s=60)  # the page is up
            base = f"http://127.0.0.1:{port}"
            password = (Path(tmp) / "agent" / "state" / "web-password").read_text().strip()
            printer.panel_start(FILE)
            directory = pages_dir(shared)
            _wait_for(directory / f"{PRINTER_ID}.jpg", timeout_s=120)
            with (
                _more_printers(directory, PRINTERS - 1),
                contextlib.closing(_client(base, password)) as client,
            ):
                first_visit = sum(len(client.get(path).content) for path in [*PAGE_FILES, "/api/session"])
                summaries = client.get("/api/pi").json()["printers"]
                assert len(summaries) == PRINTERS and all(p["online"] for p in summaries), summaries
                thumbs = [len(client.get(f"/api/pi/{p['printer_id']}.jpg").content) for p in summaries]
                answer_ms = _answer_times(client, 50)
                poll_bytes = len(client.get("/api/pi").content)
                unwatched = procstat.watch(agent.pid, window_s)
                with _Polling(client) as polling:
                    polled = procstat.watch(agent.pid, window_s)
                    polling_kb_min = polling.bytes / 1000 / ((time.monotonic() - polling.started) / 60)
        made, make_ms = _thumbnails([p.read_bytes() for p in sorted(frames.glob("*.jpg"))], 20)
    noisy, noisy_ms = _thumbnails([_noise()], 5)
    size = f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}"
    return [
        Row(
            f"overview first visit, {PRINTERS} printers",
            "KB",
            [(first_visit + poll_bytes + sum(thumbs)) / 1000],
            below(300, "KB"),
            "login, style, /pi, its css and scripts, session, summaries, 10 thumbnails (uncompressed)",
        ),
        Row(
            f"overview: each poll, {PRINTERS} printers", "KB", [poll_bytes / 1000], below(10, "KB"), "/api/pi"
        ),
        Row(
            f"overview: /api/pi answer, {PRINTERS} printers",
            "ms",
            answer_ms,
            below(50, "ms", of="median"),
            "loopback, while the agent prints",
            digits=1,
        ),
        Row(
            "CPU printing, no page open",
            "%",
            [unwatched.cpu_percent],
            note=f"{INTERVAL_S} s interval",
            digits=2,
        ),
        Row(
            "CPU printing, overview open",
            "%",
            [polled.cpu_percent],
            note=f"polled every {POLL_S:g} s, changed thumbnails fetched",
            digits=2,
        ),
        Row(
            "overview open: bytes fetched",
            "KB/min",
            [polling_kb_min],
            note="after the first visit; the real printer's thumbnail new every 5 s, nine unchanged",
        ),
        Row(
            "overview thumbnail",
            "KB",
            [b / 1000 for b in made],
            below(THUMB_MAX_BYTES / 1000, "KB"),
            f"{THUMB_WIDTH} px wide from the bench camera's {size} frames",
        ),
        Row(
            "overview thumbnail: making one",
            "ms",
            make_ms,
            note=f"from a {size} JPEG, in the writer's thread",
        ),
        Row(
            "overview thumbnail, worst case",
            "KB",
            [b / 1000 for b in noisy],
            below(THUMB_MAX_BYTES / 1000, "KB"),
            f"{size} of random noise: quality, then size, step down to fit",
        ),
        Row("overview thumbnail, worst case: making one", "ms", noisy_ms),
    ]


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent wrote no {path.name} within {timeout_s:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def _more_printers(directory: Path, count: int) -> Iterator[None]:
    """`count` more printers: the real one's summary and thumbnail under other names, each
    "running" (this process holds its lock) as its agent would."""
    record = json.loads((directory / f"{PRINTER_ID}.json").read_text())
    locks = []
    try:
        for index in range(1, count + 1):
            name = f"bench-pi-{index}"
            (directory / f"{name}.json").write_text(json.dumps({**record, "printer_id": name}))
            shutil.copy(directory / f"{PRINTER_ID}.jpg", directory / f"{name}.jpg")
            fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o660)
            fcntl.flock(fd, fcntl.LOCK_EX)
            locks.append(fd)
        yield
    finally:
        for fd in locks:
            os.close(fd)


def _answer_times(client: httpx.Client, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        client.get("/api/pi").raise_for_status()
        times.append(1000 * (time.perf_counter() - started))
    return times


def _thumbnails(jpegs: list[bytes], rounds: int) -> tuple[list[int], list[float]]:
    sizes, times = [], []
    for _ in range(rounds):
        for jpeg in jpegs:
            started = time.perf_counter()
            sizes.append(len(reduced(jpeg, THUMB_WIDTH, 60, THUMB_MAX_BYTES)))
            times.append(1000 * (time.perf_counter() - started))
    return sizes, times


def _noise() -> bytes:
    """A frame no JPEG compresses: the thumbnail's byte cap has to work for it."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", CAMERA_SIZE, os.urandom(CAMERA_SIZE[0] * CAMERA_SIZE[1] * 3)).save(
        out, "JPEG", quality=85
    )
    return out.getvalue()


class _Polling:
    """The overview open in the background: /api/pi every `POLL_S`, a thumbnail when it changed."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.bytes = 0
        self.started = time.monotonic()

    def __enter__(self) -> _Polling:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        seen: dict[str, object] = {}
        first = True
        while True:
            answer = self.client.get("/api/pi")
            fetched = len(answer.content)
            for summary in answer.json()["printers"]:
                name = summary["printer_id"]
                if summary["frame"] != seen.get(name):
                    seen[name] = summary["frame"]
                    fetched += len(self.client.get(f"/api/pi/{name}.jpg").content)
            if first:  # the first visit is measured on its own
                self.started, first = time.monotonic(), False
            else:
                self.bytes += fetched
            if self._stop.wait(POLL_S):
                return
