"""`layerguard demo`: the real agent against the simulated world, from first layer to auto-pause,
ending with the print report (the timeline picture) written to a file. Its state directory stays
in the temp folder until the next demo, so `layerguard history` can be tried on it.

Everything the agent touches is real transport: the virtual printer is on a pseudo-terminal, the
webcam and the detection stand-in are HTTP servers on loopback, and the broker is a Mosquitto
process. Only the clock is faster: the stand-in asks for an inspection every 2 s instead of ~20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from agent.app import Agent
from agent.assembly import build_agent
from agent.detection.timing import DetectionTiming
from agent.logs import setup_logging
from agent.outputs import Sink
from sim.broker import MosquittoBroker, MosquittoNotFound
from sim.mqtt_probe import MqttProbe
from sim.world import SimWorld, sim_world

log = logging.getLogger("demo")

FILE = "benchy.gcode"
PRINTER_ID = "demo-printer"
PRINT_DURATION_S = 90.0
FAILURE_AT = 0.25  # fraction of the print where the part comes loose
INTERVAL_S = 2
DEMO_TIMING = DetectionTiming(
    request_timeout_s=5, first_success_retry_s=2, interval_floor_s=1, interval_ceiling_s=60, default_retry_s=2
)
DEADLINE_S = 110.0
REPORT_DEADLINE_S = 60.0  # the report worker's first matplotlib start builds its font cache
# Kept after the demo (and cleared when it starts again), so that `layerguard history` and
# `layerguard report` can be tried on the demo's print with the config file written there.
DEMO_DIR = Path(tempfile.gettempdir()) / "layerguard-demo"
REPORT_PATH = DEMO_DIR / "report.png"
CONFIG_PATH = DEMO_DIR / "layerguard.toml"
WEB_LISTEN = "127.0.0.1:0"  # the page of the demo: this machine only, a free port


class _ReportCatcher(Sink):
    """Keeps the picture the agent publishes (the same one `<p>/report` gets)."""

    name = "demo-report"

    def __init__(self) -> None:
        self.png: bytes | None = None
        self.arrived = asyncio.Event()

    def on_report(self, png: bytes, print_id: str | None = None) -> None:
        self.png = png
        self.arrived.set()


def run_demo(keep_open: bool = False) -> int:
    setup_logging("INFO", timeline=True)
    try:
        return asyncio.run(_demo(keep_open))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C or SIGTERM, after the cleanup
        return 0 if keep_open else 1


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (`docker stop`, `kill`) end the demo through its cleanup, so that its
    Mosquitto and worker processes never outlive it; also when it was started with SIGINT
    ignored, as a shell starts a background job (`layerguard run` does the same)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


async def _demo(keep_open: bool = False) -> int:
    _stop_on_signals()
    with ExitStack() as stack:
        state_dir = _fresh_state_dir()
        broker = _start_broker(stack)
        world = stack.enter_context(
            sim_world(
                file=FILE,
                failure_at=FAILURE_AT,
                print_duration_s=PRINT_DURATION_S,
                interval_s=INTERVAL_S,
                heat_duration_s=3.0,
                pause_delay_s=1.0,
                broker=broker,
            )
        )
        probe = None
        if broker is not None:
            probe = MqttProbe(broker.host, broker.port)
            stack.callback(probe.close)
            probe.subscribe(f"layerguard/{PRINTER_ID}/#")
        log.info(
            "Simulated world: printer (%s) on %s, webcam %s, detection stand-in %s",
            world.printer.profile.firmware.split(" SOURCE_CODE_URL")[0].removeprefix("FIRMWARE_NAME:"),
            world.printer.port,
            world.webcam.url,
            world.service.base_url,
        )
        agent = build_agent(
            world.settings(state_dir, printer_id=PRINTER_ID, web_listen=WEB_LISTEN), timing=DEMO_TIMING
        )
        catcher = _ReportCatcher()
        agent.outputs.add(catcher)
        started = time.monotonic()
        agent_task = asyncio.create_task(agent.run(), name="agent")
        try:
            paused = await _story(agent, world)
            report = await _report(catcher) if paused else None
            _summary(agent, world, probe, time.monotonic() - started, paused, report)
            if keep_open:
                await _keep_open(agent, state_dir)
        finally:
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
        return 0 if paused else 1


async def _keep_open(agent: Agent, state_dir: Path) -> None:
    """Serve the page (and the paused print) until Ctrl-C."""
    from agent.web.login import PASSWORD_FILE
    from agent.web.server import WebPage

    page = agent.outputs.find(WebPage)
    assert isinstance(page, WebPage)
    await page.ready.wait()
    if page.port is None:
        print(f"The page could not start: {page.failed}", flush=True)
        return
    password = (state_dir / PASSWORD_FILE).read_text().strip()
    print(
        f"\nThe page: http://127.0.0.1:{page.port}/  password: {password}\n"
        "Log in, resume the print, watch it, look at its history. Ctrl-C ends the demo.",
        flush=True,
    )
    await asyncio.Event().wait()


def _fresh_state_dir() -> Path:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    state_dir = DEMO_DIR / "state"
    state_dir.mkdir(parents=True)
    CONFIG_PATH.write_text(
        "# Written by `layerguard demo`: only for `layerguard history` and `report` on its print.\n"
        f'[agent]\nprinter_id = "{PRINTER_ID}"\nstate_dir = "{state_dir}"\n'
    )
    return state_dir


def _start_broker(stack: ExitStack) -> MosquittoBroker | None:
    try:
        broker = stack.enter_context(MosquittoBroker())
    except MosquittoNotFound as exc:
        log.warning("No MQTT in this demo: %s", exc)
        return None
    log.info("MQTT broker: mosquitto on %s:%d", broker.host, broker.port)
    return broker


async def _story(agent: Agent, world: SimWorld) -> bool:
    """Start a print at the panel and wait for the agent to pause it; False if it never does."""
    try:
        async with asyncio.timeout(15):
            await agent.wait_for(lambda s: s.print_state == "idle")
        log.info("Starting %s from the printer's panel; it will fail at %d%%", FILE, FAILURE_AT * 100)
        world.printer.panel_start(FILE)
        async with asyncio.timeout(DEADLINE_S):
            await agent.wait_for(lambda s: s.paused_by == "agent")
    except TimeoutError:
        log.error("The agent did not pause the print in time")
        return False
    return world.printer.state == "paused"


async def _report(catcher: _ReportCatcher) -> Path | None:
    """The timeline picture LayerGuard drew of the paused print, written where the user can open it."""
    log.info("Waiting for the print report (drawn by a worker process)")
    try:
        async with asyncio.timeout(REPORT_DEADLINE_S):
            await catcher.arrived.wait()
    except TimeoutError:
        log.error("No print report within %.0f s", REPORT_DEADLINE_S)
        return None
    assert catcher.png is not None
    await asyncio.to_thread(REPORT_PATH.write_bytes, catcher.png)
    return REPORT_PATH


def _summary(
    agent: Agent,
    world: SimWorld,
    probe: MqttProbe | None,
    elapsed: float,
    paused: bool,
    report: Path | None,
) -> None:
    state, printer = agent.state, world.printer
    pause_commands = [c for c in printer.received if c.split()[0] in ("M25", "M24")]
    lines = [
        "",
        "Summary",
        f"  outcome         {'printer PAUSED by LayerGuard' if paused else 'NOT paused'} "
        f"at {printer.progress:.0f}% (failure began at {FAILURE_AT:.0%})",
        f"  inspections     {len(world.service.calls)} calls to the detection stand-in, last score "
        f"{state.score}/100, quality {state.print_quality}/10",
        f"  printer got     {', '.join(pause_commands) or 'no pause command'}",
    ]
    if probe is not None:
        messages = probe.messages()
        counts = Counter(m.topic.rsplit("/", 1)[-1] for m in messages)
        events = [json.loads(m.payload)["type"] for m in messages if m.topic.endswith("/event")]
        snapshots = [m for m in messages if m.topic.endswith("/snapshot")]
        lines += [
            f"  MQTT received   {', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))}",
            f"  MQTT events     {', '.join(events)}",
            f"  last snapshot   {len(snapshots[-1].payload) // 1024 if snapshots else 0} KiB JPEG",
        ]
    if report is not None:
        lines += [
            f"  print report    {report} (the picture on <p>/report; open it)",
            f"  history         layerguard history --config {CONFIG_PATH}",
        ]
    lines.append(f"  took            {elapsed:.0f} s")
    print("\n".join(lines), flush=True)
