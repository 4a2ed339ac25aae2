"""The simulated world in one piece: printer, webcam, detection service and broker, and the
settings that point an agent at them. The demo and the end-to-end tests share it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.settings import (
    AgentSection,
    CameraSection,
    DetectionSection,
    MqttSection,
    PrinterSection,
    Settings,
    WebSection,
)
from sim.broker import MosquittoBroker
from sim.gadget_service import GadgetStandIn
from sim.octoprint_printer import OctoPrintPrinter
from sim.snapshot_server import SnapshotServer
from sim.virtual_printer import VirtualPrinter, default_gcode


@dataclass
class SimWorld:
    printer: VirtualPrinter | OctoPrintPrinter
    webcam: SnapshotServer
    service: GadgetStandIn
    broker: MosquittoBroker | None
    api_key: str

    def settings(
        self, state_dir: Path, printer_id: str = "sim", web_listen: str = "127.0.0.1:0", **detection: Any
    ) -> Settings:
        """Settings for an agent in this world. Environment variables are deliberately not read:
        a LAYERGUARD_MQTT__HOST in the user's shell must not send the demo to their real broker.
        The page listens on loopback, on a free port by default (`WebPage.port` says which)."""
        broker = self.broker
        return Settings.model_construct(
            agent=AgentSection(printer_id=printer_id, state_dir=state_dir),
            printer=PrinterSection(port=self.printer.port),
            camera=CameraSection(source=self.webcam.url),
            detection=DetectionSection(api_key=self.api_key, api_url=self.service.base_url, **detection),
            mqtt=MqttSection(host=broker.host if broker else "", port=broker.port if broker else 1883),
            web=WebSection(listen=web_listen),
        )


@contextmanager
def sim_world(
    *,
    file: str,
    failure_at: float | None,
    print_duration_s: float,
    interval_s: float,
    broker: MosquittoBroker | None,
    heat_duration_s: float = 1.0,
    pause_delay_s: float = 0.5,
    frame_size: tuple[int, int] = (640, 480),
    api_key: str = "sim-key-0123456789",
    profile: str = "marlin-2.1.2",
    clutter: bool = False,
) -> Iterator[SimWorld]:
    """A print of `file` that fails at `failure_at` (a fraction of the print), watched by a webcam
    that shows the virtual printer's progress, and a detection stand-in asking for `interval_s`.
    The printer emulates `profile` (sim/firmware_profiles.py): today's stable Marlin by default.
    `clutter` puts a tangle of cable in view that the stand-in scores as a failure."""
    with ExitStack() as stack:
        printer = stack.enter_context(
            VirtualPrinter(
                files={file: default_gcode()},
                print_duration_s=print_duration_s,
                heat_duration_s=heat_duration_s,
                pause_delay_s=pause_delay_s,
                profile=profile,
            )
        )
        webcam = stack.enter_context(
            SnapshotServer(lambda: printer.progress / 100, failure_at, *frame_size, clutter=clutter)
        )
        service = stack.enter_context(GadgetStandIn(api_key=api_key, interval=interval_s))
        yield SimWorld(printer, webcam, service, broker, api_key)
