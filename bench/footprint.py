"""Figures 2 and 3, schedule slack and footprint, from one `layerguard run` against the simulated
world with production timing and the stand-in asking for the shortest documented interval (5 s).

Phases: idle with the printer connected; a print with monitoring on (one sample per inspection
cycle); the same print with monitoring switched off over MQTT. The last gives the background cost
of following a print (serial reports, state updates); the difference per cycle is the cost of one
inspection. Scaled to the service's usual 20 s interval: background + inspection cost / 20 s.
The `dir:` camera reads a file, so the camera's own capture cost stays out, as the goal asks.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agent.notify.message import Message
from agent.notify.send import send_request
from agent.notify.services import SNAPSHOT
from bench import procstat
from bench.launch import API_KEY, AgentProcess, state_is, watched_agent, write_camera_frames
from bench.report import Row, at_least, below
from bench.slack import slack_by_context
from sim.broker import MosquittoBroker
from sim.gadget_service import GadgetStandIn
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter, default_gcode
from sim.webhook_server import WebhookServer

FILE = "footprint.gcode"
PRINTER_ID = "bench-footprint"
INTERVAL_S = 5  # the floor production timing allows
SCALED_INTERVAL_S = 20  # the service's usual interval
SETTLE_S = 5.0  # after the printer is connected, before an idle window starts (same for OctoPrint)
WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class Phases:
    idle_s: float
    cycles: int
    unmonitored_s: float


def measure(broker: MosquittoBroker, phases: Phases) -> tuple[list[Row], procstat.Window]:
    """The rows, and the idle window to compare other software with."""
    with (
        tempfile.TemporaryDirectory(prefix="layerguard-bench-") as tmp,
        VirtualPrinter(files={FILE: default_gcode()}, print_duration_s=3600, heat_duration_s=0.5) as printer,
        GadgetStandIn(api_key=API_KEY, interval=INTERVAL_S) as service,
        WebhookServer() as webhook,
    ):
        camera = f"dir:{write_camera_frames(Path(tmp) / 'frames')}"
        # First an agent with notifications configured, idle only; then one notification's child.
        with watched_agent(
            Path(tmp) / "notify-agent",
            printer_id=f"{PRINTER_ID}-notify",
            printer_port=printer.port,
            camera=camera,
            api_url=service.base_url,
            broker=broker,
            notify_urls=(webhook.url("json"), "ntfys://ntfy.example.com/bench-topic"),
        ) as (notifying, notify_probe):
            notify_idle = _idle(notifying, notify_probe, phases)
        deliveries = [_deliver_once(webhook, Path(tmp) / "frames") for _ in range(phases.cycles)]
        with watched_agent(
            Path(tmp) / "agent",
            printer_id=PRINTER_ID,
            printer_port=printer.port,
            camera=camera,
            api_url=service.base_url,
            broker=broker,
        ) as (agent, probe):
            rows, idle = _phases(agent, printer, service, probe, phases)
        slack = [s for per_context in slack_by_context(service.calls).values() for s in per_context]
    index = next(i for i, row in enumerate(rows) if row.figure.startswith("RSS idle")) + 1
    rows.insert(
        index,
        Row(
            "RSS idle, printer connected, notifications configured",
            "MB",
            [notify_idle.rss_mb],
            below(60, "MB"),
            "same window; two Apprise URLs (JSON webhook, ntfy); Apprise loads only in a delivery's child",
        ),
    )
    rows[index + 1 : index + 1] = [
        Row(
            "notification: one delivery (child process)",
            "s",
            [seconds for seconds, _ in deliveries],
            note="`python -m agent.notify.send` start to exit: Apprise, JSON webhook, 1280x720 JPEG",
            digits=2,
        ),
        Row(
            "notification: peak RSS of the delivery child",
            "MB",
            [peak for _, peak in deliveries],
            note="only while it runs; the agent itself never imports Apprise",
        ),
    ]
    rows.insert(
        0,
        Row(
            "schedule slack (Process call later than allowed)",
            "ms",
            [1000 * s for s in slack],
            below(250, "ms", of="median"),
            f"`layerguard run`, {INTERVAL_S} s interval; capture is a file read here",
            digits=0,
            extra_goals=[at_least(0, "ms")],
        ),
    )
    return rows, idle


def _deliver_once(webhook: WebhookServer, frames: Path) -> tuple[float, float]:
    """One notification as the agent sends it: (seconds, the child's peak RSS in MB)."""
    jpeg = sorted(frames.iterdir())[0].read_bytes()
    message = Message("failure_paused", "bench: print PAUSED, failure detected", "footprint.gcode, 40 % done")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "agent.notify.send"],
        input=send_request(webhook.url("json"), message, {SNAPSHOT: jpeg}, 30),
        capture_output=True,
        timeout=60,
        check=True,
    )
    seconds = time.monotonic() - started
    answer = json.loads(result.stdout.splitlines()[-1])
    if not answer["delivered"]:
        raise RuntimeError(f"the bench's webhook did not get the notification: {result.stderr.decode()}")
    return seconds, float(answer["peak_rss_mb"])


def _idle(agent: AgentProcess, probe: MqttProbe, phases: Phases) -> procstat.Window:
    agent.wait_for_state(probe, state_is("print_state", "idle"), WAIT_S)
    time.sleep(SETTLE_S)  # start-up's tail (discovery, first reports) is not idling
    return procstat.watch(agent.pid, phases.idle_s)


def _phases(
    agent: AgentProcess,
    printer: VirtualPrinter,
    service: GadgetStandIn,
    probe: MqttProbe,
    phases: Phases,
) -> tuple[list[Row], procstat.Window]:
    idle = _idle(agent, probe, phases)

    printer.panel_start(FILE)
    calls = _next_process_call(service, 0)
    samples = [(time.monotonic(), procstat.sample(agent.pid))]
    for _ in range(phases.cycles):
        calls = _next_process_call(service, calls)
        samples.append((time.monotonic(), procstat.sample(agent.pid)))

    probe.publish(f"layerguard/{PRINTER_ID}/command/monitoring", "OFF")
    agent.wait_for_state(probe, state_is("monitoring", False), WAIT_S)
    unmonitored = procstat.watch(agent.pid, phases.unmonitored_s)
    background_s_per_s = unmonitored.cpu_percent / 100

    scaled = []
    for (t0, s0), (t1, s1) in itertools.pairwise(samples):
        inspection_cpu_s = max(0.0, s1.cpu_s - s0.cpu_s - background_s_per_s * (t1 - t0))
        scaled.append(100 * (background_s_per_s + inspection_cpu_s / SCALED_INTERVAL_S))
    final = procstat.sample(agent.pid)
    monitoring_rss = [s.rss_mb for _, s in samples]
    window_note = f"{phases.idle_s:g} s window, {SETTLE_S:g} s after connecting"
    rows = [
        Row(
            f"CPU per hour of monitoring at a {SCALED_INTERVAL_S} s interval",
            "% core",
            scaled,
            below(1, "% core"),
            f"per {INTERVAL_S} s inspection cycle, scaled; background {unmonitored.cpu_percent:.2f} % "
            f"(printing, monitoring off); {3600 / SCALED_INTERVAL_S:.0f} inspections/h",
            digits=2,
        ),
        Row("CPU idle, printer connected", "% core", [idle.cpu_percent], note=window_note, digits=2),
        Row("RSS idle, printer connected", "MB", [idle.rss_mb], note=window_note),
        Row("RSS while monitoring", "MB", monitoring_rss, note="at each inspection"),
        Row(
            "peak RSS (VmHWM) of `layerguard run`",
            "MB",
            [final.peak_rss_mb],
            below(60, "MB"),
            f"whole run: start, idle, {len(samples)} inspections of 1280x720 JPEGs, MQTT on",
        ),
    ]
    return rows, idle


def _next_process_call(service: GadgetStandIn, seen: int) -> int:
    """Block until one more Process call than `seen` has been answered; returns the new count."""
    while True:
        calls = service.wait_for_calls(len(service.calls) + 1, timeout=WAIT_S)
        count = sum(1 for call in calls if call.endpoint == "process")
        if count > seen:
            return count
