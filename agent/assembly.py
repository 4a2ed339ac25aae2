"""Builds the agent from settings out of the real components: serial printer, camera, Gadget, MQTT."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from agent.app import Agent
from agent.camera import open_camera
from agent.detection.client import GadgetClient
from agent.detection.pi_usage import PiUsage
from agent.detection.timing import DetectionTiming
from agent.detection.usage import UsageMeter
from agent.framing import in_effect as framing_in_effect
from agent.history.sink import HistorySink
from agent.mqtt.bridge import MqttBridge
from agent.notify.services import url_secrets
from agent.settings import Settings
from agent.store import JsonRecord
from agent.web.address import page_url
from hardware.camera.shared import SharedCamera
from hardware.printer.base import EventSink
from hardware.printer.link import SerialPrinter

log = logging.getLogger("agent")

# In agent.state_dir: this month's Gadget calls, and the current print's context.
USAGE_FILE = "gadget-usage.json"
CONTEXT_FILE = "gadget-context.json"


def build_agent(settings: Settings, timing: DetectionTiming | None = None) -> Agent:
    """The same assembly serves `layerguard run` and the demo; only the world around it differs."""
    detection = settings.detection
    state_dir = settings.agent.state_dir
    detector = GadgetClient(
        detection.api_url,
        detection.api_key.get_secret_value(),
        warning_confidence=detection.warning_confidence,
        pause_confidence=detection.pause_confidence,
        min_interval_s=detection.min_interval_s,
        timing=timing or DetectionTiming(),
        usage=UsageMeter(
            JsonRecord(state_dir / USAGE_FILE),
            budget=detection.monthly_budget,
            spread_hours_per_day=detection.budget_spread_hours_per_day,
            pi=partial(PiUsage, settings.agent.shared_state_dir or state_dir, settings.agent.printer_id),
            scope=detection.budget_scope,
        ),
        context_record=JsonRecord(state_dir / CONTEXT_FILE),
    )

    def make_printer(sink: EventSink) -> SerialPrinter:
        p = settings.printer
        return SerialPrinter(
            p.port,
            p.baudrate,
            p.dialect,
            sink,
            cool_down_after_s=p.cool_down_after_s,
            cool_down_bed=p.cool_down_bed,
            confirm_timeout_s=p.pause_confirm_s,
            silence_s=p.silence_s,
        )

    framing = framing_in_effect(settings)
    if not framing.framing.empty:
        log.info("Camera framing: %s", framing.describe())
    # The inspections and the page's live view share the backend: one capture at a time. The
    # framing wraps it, so the inspections get the masked frame, the live view the whole picture.
    camera = open_camera(settings.camera, framing.framing)
    camera.camera = SharedCamera(camera.camera)
    agent = Agent(settings, camera, detector, make_printer)
    bridge = None
    if settings.mqtt.enabled:
        bridge = MqttBridge(
            settings.mqtt,
            settings.agent.printer_id,
            agent.on_command,
            configuration_url=page_url(settings) if settings.web.enabled else None,
        )
        agent.outputs.add(bridge)
    if settings.notify.enabled:
        from agent.notify.sink import notify_sink  # Apprise is loaded only when notifications are on

        agent.outputs.add(notify_sink(settings, secrets_of(settings), agent.set_notify_status))
    if settings.history.enabled:
        agent.outputs.add(HistorySink(settings.history, state_dir, agent.outputs.on_report))
    if settings.web.enabled:
        from agent.web.checks import health_report  # aiohttp is loaded only when the page is on
        from agent.web.server import WebPage
        from agent.web.summary import PiSummary

        def health() -> dict[str, Any]:
            return health_report(agent, None if bridge is None else bridge.connected)

        page = WebPage(settings, agent.on_command, camera, health)
        agent.outputs.add(page)
        agent.outputs.add(PiSummary(settings, page))  # its line on the Pi's overview
    return agent


def secrets_of(settings: Settings) -> list[str]:
    """Values the log must never show."""
    urls = [url.get_secret_value() for url in settings.notify.urls]
    return [
        settings.detection.api_key.get_secret_value(),
        settings.mqtt.password.get_secret_value(),
        *(secret for url in urls for secret in url_secrets(url)),
    ]
