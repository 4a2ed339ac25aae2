"""`layerguard run` as a user starts it: a config file, a pty printer, a `dir:` camera, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from test_systemd import unit_stop_timeout_s

from sim.gadget_service import GadgetStandIn
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter, default_gcode

if TYPE_CHECKING:
    from conftest import RunSetup


def test_run_monitors_a_print_started_at_the_panel_and_stops_cleanly(
    run_setup: RunSetup, mqtt_probe: Callable[..., MqttProbe]
) -> None:
    probe = mqtt_probe("layerguard/cli/#")
    with (
        VirtualPrinter(
            files={"part.gcode": default_gcode()}, print_duration_s=60, heat_duration_s=0.3
        ) as printer,
        GadgetStandIn(api_key=run_setup.api_key, interval=5) as service,
    ):
        agent = subprocess.Popen(
            run_setup.command(printer, service, "cli"),
            env=run_setup.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            probe.wait_for_blocking("layerguard/cli/state", lambda p: json.loads(p)["print_state"] == "idle")
            printer.panel_start("part.gcode")
            service.wait_for_calls(2, timeout=60)
            state = probe.wait_for_blocking(
                "layerguard/cli/state", lambda p: json.loads(p)["score"] is not None
            )
            assert json.loads(state.payload)["print_state"] == "printing"
            assert all(call.headers["x-api-key"] == run_setup.api_key for call in service.calls)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=unit_stop_timeout_s())  # as systemd allows
    assert agent.returncode == 0, stderr
    probe.wait_for_blocking("layerguard/cli/availability", b"offline")
    assert "Print started: part.gcode" in stderr
    assert run_setup.api_key not in stderr
