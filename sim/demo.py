"""`layerguard demo`: the real agent against the simulated world, from first layer to auto-pause.

Everything the agent touches is real transport: the virtual printer is on a pseudo-terminal, the
webcam and the detection stand-in are HTTP servers on loopback, and the broker is a Mosquitto
process. Only the clock is faster: the stand-in asks for an inspection every 2 s instead of ~20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.app import Agent
from agent.assembly import build_agent
from agent.detection.timing import DetectionTiming
from agent.logs import setup_logging
from agent.settings import (
    AgentSection,
    CameraSection,
    DetectionSection,
    MqttSection,
    PrinterSection,
    Settings,
)
from sim.broker import MosquittoBroker, MosquittoNotFound
from sim.gadget_service import GadgetStandIn
from sim.snapshot_server import SnapshotServer
from sim.virtual_printer import VirtualPrinter, default_gcode

log = logging.getLogger("demo")

API_KEY = "demo-key-not-secret"
FILE = "benchy.gcode"
PRINT_DURATION_S = 90.0
FAILURE_AT = 0.25  # fraction of the print where the part comes loose
INTERVAL_S = 2
DEMO_TIMING = DetectionTiming(
    request_timeout_s=5, first_success_retry_s=2, interval_floor_s=1, interval_ceiling_s=60, default_retry_s=2
)
DEADLINE_S = 110.0


class MqttWatcher:
    """A separate MQTT client, as Home Assistant would be, counting what the agent published."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.counts: Counter[str] = Counter()
        self.events: list[str] = []
        self.last_state: dict[str, object] = {}
        self.snapshot_bytes = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="layerguard-demo-watcher")
        self._client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#")
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        kind = message.topic.rsplit("/", 1)[-1]
        self.counts[kind] += 1
        if kind == "event":
            self.events.append(json.loads(message.payload)["type"])
        elif kind == "state":
            self.last_state = json.loads(message.payload)
        elif kind == "snapshot":
            self.snapshot_bytes = len(message.payload)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def run_demo() -> int:
    setup_logging("INFO", secrets=[API_KEY], timeline=True)
    try:
        return asyncio.run(_demo())
    except KeyboardInterrupt:
        return 1


async def _demo() -> int:
    with ExitStack() as stack:
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="layerguard-demo-")))
        printer = stack.enter_context(
            VirtualPrinter(
                files={FILE: default_gcode()},
                print_duration_s=PRINT_DURATION_S,
                heat_duration_s=3.0,
                pause_delay_s=1.0,
            )
        )
        webcam = stack.enter_context(SnapshotServer(lambda: printer.progress / 100, FAILURE_AT))
        service = stack.enter_context(GadgetStandIn(api_key=API_KEY, interval=INTERVAL_S))
        broker, watcher = _start_broker(stack)
        log.info(
            "Simulated world: printer on %s, webcam %s, detection stand-in %s",
            printer.port,
            webcam.url,
            service.base_url,
        )
        settings = Settings.model_construct(
            agent=AgentSection(printer_id="demo-printer", state_dir=state_dir),
            printer=PrinterSection(port=printer.port),
            camera=CameraSection(source=webcam.url),
            detection=DetectionSection(api_key=API_KEY, api_url=service.base_url),
            mqtt=MqttSection(host=broker.host if broker else "", port=broker.port if broker else 1883),
        )
        agent = build_agent(settings, timing=DEMO_TIMING)
        started = time.monotonic()
        agent_task = asyncio.create_task(agent.run(), name="agent")
        try:
            paused = await _story(agent, printer)
        finally:
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
        _summary(agent, printer, service, watcher, time.monotonic() - started, paused)
        return 0 if paused else 1


def _start_broker(stack: ExitStack) -> tuple[MosquittoBroker | None, MqttWatcher | None]:
    try:
        broker = stack.enter_context(MosquittoBroker())
    except MosquittoNotFound as exc:
        log.warning("No MQTT in this demo: %s", exc)
        return None, None
    watcher = MqttWatcher(broker.host, broker.port, "layerguard/demo-printer")
    stack.callback(watcher.close)
    watcher.wait_subscribed(5.0)
    log.info("MQTT broker: mosquitto on %s:%d", broker.host, broker.port)
    return broker, watcher


async def _story(agent: Agent, printer: VirtualPrinter) -> bool:
    """Start a print at the panel and wait for the agent to pause it; False if it never does."""
    try:
        async with asyncio.timeout(15):
            await agent.wait_for(lambda s: s.print_state == "idle")
        log.info("Starting %s from the printer's panel; it will fail at %d%%", FILE, FAILURE_AT * 100)
        printer.panel_start(FILE)
        async with asyncio.timeout(DEADLINE_S):
            await agent.wait_for(lambda s: s.paused_by == "agent")
    except TimeoutError:
        log.error("The agent did not pause the print in time")
        return False
    return printer.state == "paused"


def _summary(
    agent: Agent,
    printer: VirtualPrinter,
    service: GadgetStandIn,
    watcher: MqttWatcher | None,
    elapsed: float,
    paused: bool,
) -> None:
    state = agent.state
    lines = [
        "",
        "Summary",
        f"  outcome         {'printer PAUSED by LayerGuard' if paused else 'NOT paused'} "
        f"at {printer.progress:.0f}% (failure began at {FAILURE_AT:.0%})",
        f"  inspections     {len(service.calls)} calls to the detection stand-in, last score "
        f"{state.score}/100, quality {state.print_quality}/10",
        f"  printer saw     {', '.join(c for c in printer.received if c.split()[0] in ('M25', 'M24'))}",
    ]
    if watcher is not None:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(watcher.counts.items()))
        lines += [
            f"  MQTT received   {counts}",
            f"  MQTT events     {', '.join(watcher.events)}",
            f"  last snapshot   {watcher.snapshot_bytes // 1024} KiB JPEG",
        ]
    lines.append(f"  took            {elapsed:.0f} s")
    print("\n".join(lines), flush=True)
