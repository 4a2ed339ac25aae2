"""The hostile-input figure: peak memory of one `layerguard run` fed what an unkind camera and
network send, with production timing and caps, printed next to its idle memory.

In order, during one print: the HTTP camera serves a 20 MB frame with its Content-Length, then
one without (read up to the cap, then dropped), then sane frames; after the first verdict the
detection stand-in answers Process with 32 MiB (with, then without its Content-Length) and then
drips an answer one byte every 2 s. The agent's memory high-water mark (VmHWM) is read after all
of it; the drip also yields how long the call was held open (the whole-call deadline, 30 s).
Beside it, what the check that keeps broken frames from being paid for costs per frame.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import procstat
from bench.footprint import SETTLE_S
from bench.launch import API_KEY, CAMERA_SIZE, state_is, watched_agent
from bench.report import Row, below
from hardware.camera.jpeg import fit_jpeg
from sim.broker import MosquittoBroker
from sim.frames import render_frame
from sim.gadget_service import Call, GadgetStandIn, Reply
from sim.snapshot_server import SnapshotServer
from sim.virtual_printer import VirtualPrinter, default_gcode

FILE = "hostile.gcode"
PRINTER_ID = "bench-hostile"
INTERVAL_S = 5
HUGE_ANSWER_BYTES = 32 * 1024 * 1024
DRIP_S = 2.0  # seconds per byte, as in the report
DEADLINE_S = 30.0  # DetectionTiming.request_timeout_s
WAIT_S = 60.0  # production retry delays: 5 s camera, 5 s doubling for detection


def measure(broker: MosquittoBroker, drip: bool = True) -> list[Row]:
    """`drip=False` leaves out the slow answer (30 s of it), for --quick."""
    with (
        tempfile.TemporaryDirectory(prefix="layerguard-bench-") as tmp,
        VirtualPrinter(files={FILE: default_gcode()}, print_duration_s=3600, heat_duration_s=0.5) as printer,
        GadgetStandIn(api_key=API_KEY, interval=INTERVAL_S) as service,
        SnapshotServer(lambda: 0.3, None, *CAMERA_SIZE) as camera,
    ):
        camera.fault = "huge"
        camera.drip_s = DRIP_S
        with watched_agent(
            Path(tmp) / "agent",
            printer_id=PRINTER_ID,
            printer_port=printer.port,
            camera=camera.url,
            api_url=service.base_url,
            broker=broker,
        ) as (agent, probe):
            agent.wait_for_state(probe, state_is("print_state", "idle"), WAIT_S)
            time.sleep(SETTLE_S)  # as the footprint's idle window: start-up's tail is not idling
            idle = procstat.sample(agent.pid)
            printer.panel_start(FILE)
            _attack(camera, service, drip)
            final = procstat.sample(agent.pid)
    fed = "20 MB frames and 32 MiB answers, each with and without Content-Length"
    rows = [
        Row(
            "peak RSS (VmHWM) under hostile input",
            "MB",
            [final.peak_rss_mb],
            below(64, "MB"),
            f"{fed}{', an answer dripped 1 byte/2 s' if drip else ''}; "
            f"RSS idle before: {idle.rss_mb:.1f} MB, peak before: {idle.peak_rss_mb:.1f} MB",
        )
    ]
    rows.append(_check_cost())
    if drip:
        rows.append(
            Row(
                "slow answer: Process call held open",
                "s",
                service.drips_cut_after_s,
                below(DEADLINE_S + DRIP_S + 1, "s"),
                f"whole-call deadline {DEADLINE_S:g} s; the stand-in sees the hang-up at its next byte",
            )
        )
    return rows


def _check_cost(repeats: int = 20) -> Row:
    """fit_jpeg on frames of the default size: a full decode at 1/8 scale, in this process."""
    frames = [render_frame(0.1 + i / 10, 0.5, *CAMERA_SIZE, seed=i) for i in range(5)]
    samples = []
    for frame in frames * repeats:
        started = time.perf_counter()
        fit_jpeg(frame)
        samples.append(1000 * (time.perf_counter() - started))
    return Row(
        "frame check before a Process call",
        "ms",
        samples,
        note=f"fit_jpeg: decode at 1/8 scale; {CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} frames, clean and failed",
        digits=2,
    )


def _attack(camera: SnapshotServer, service: GadgetStandIn, drip: bool) -> None:
    camera.wait_for_frames(1, WAIT_S)
    camera.fault = "huge_undeclared"
    camera.wait_for_frames(2, WAIT_S)
    # Frame 3 may still be a refused one if the agent asked before this line: wait for a sane one.
    camera.fault = None
    seen = _wait_process(service, lambda call: call.status == 200, 0)
    service.inject(Reply.huge(HUGE_ANSWER_BYTES), region="primary")
    service.inject(Reply.huge(HUGE_ANSWER_BYTES, declare_length=False), region="fallback")
    if drip:
        service.inject(Reply.drip(DRIP_S), region="fallback")
    for _ in range(3 if drip else 2):
        seen = _wait_process(service, lambda call: True, seen)
    if drip:
        service.wait_for_drips_cut(1, DEADLINE_S + WAIT_S)


def _wait_process(service: GadgetStandIn, match: Callable[[Call], bool], seen: int) -> int:
    """Block until a Process call after the first `seen` ones matches; returns the count up to it."""
    while True:
        everything = service.calls
        calls = [call for call in everything if call.endpoint == "process"]
        found = next((index for index in range(seen, len(calls)) if match(calls[index])), None)
        if found is not None:
            return found + 1
        seen = len(calls)
        service.wait_for_calls(len(everything) + 1, WAIT_S)
