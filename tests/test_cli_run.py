"""`layerguard run` as a user starts it: a config file, a pty printer, a `dir:` camera, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sim.broker import MosquittoBroker
from sim.frames import write_frames
from sim.gadget_service import GadgetStandIn
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter, default_gcode

API_KEY = "cli-secret-key-0123456789"


def test_run_monitors_a_print_started_at_the_panel_and_stops_cleanly(
    tmp_path: Path, broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe]
) -> None:
    frames = tmp_path / "frames"
    write_frames(frames, 4, failure_at=None)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "detection__api_key").write_text(API_KEY)
    probe = mqtt_probe("layerguard/cli/#")
    with (
        VirtualPrinter(
            files={"part.gcode": default_gcode()}, print_duration_s=60, heat_duration_s=0.3
        ) as printer,
        GadgetStandIn(api_key=API_KEY, interval=5) as service,
    ):
        config = tmp_path / "layerguard.toml"
        config.write_text(
            f'[agent]\nprinter_id = "cli"\nstate_dir = "{tmp_path / "state"}"\n'
            f'[printer]\nport = "{printer.port}"\n'
            f'[camera]\nsource = "dir:{frames}"\n'
            f'[detection]\napi_url = "{service.base_url}"\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAYERGUARD_")}
        env["LAYERGUARD_SECRETS_DIR"] = str(secrets)
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            probe.wait_for_blocking("layerguard/cli/state", lambda p: json.loads(p)["print_state"] == "idle")
            printer.panel_start("part.gcode")
            service.wait_for_calls(2, timeout=20)
            state = probe.wait_for_blocking(
                "layerguard/cli/state", lambda p: json.loads(p)["score"] is not None
            )
            assert json.loads(state.payload)["print_state"] == "printing"
            assert all(call.headers["x-api-key"] == API_KEY for call in service.calls)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=10)
    assert agent.returncode == 0, stderr
    probe.wait_for_blocking("layerguard/cli/availability", b"offline")
    assert "Print started: part.gcode" in stderr
    assert API_KEY not in stderr
