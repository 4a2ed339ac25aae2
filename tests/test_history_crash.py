"""The history survives the agent being killed mid-print, and the restarted agent goes on with
the same print: a real `layerguard run` process, SIGKILL, a pty printer that prints on."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_systemd import unit_stop_timeout_s

from agent.history.store import connect_readonly, db_path
from sim.gadget_service import GadgetStandIn
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter, default_gcode

if TYPE_CHECKING:
    from conftest import RunSetup

STATE = "layerguard/crash/state"


def inspections_and_prints(state_dir: Path) -> tuple[int, list[tuple[int, str, str]]]:
    with connect_readonly(db_path(state_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = conn.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
        prints = conn.execute("SELECT id, file, outcome FROM prints").fetchall()
    return count, prints


@pytest.mark.slow
def test_sigkill_mid_print_loses_at_most_the_last_inspection_and_the_print_goes_on(
    run_setup: RunSetup, mqtt_probe: Callable[..., MqttProbe]
) -> None:
    state_dir, env = run_setup.state_dir, run_setup.env
    probe = mqtt_probe(STATE)

    def calls_at_least(n: int) -> Callable[[bytes], bool]:
        return lambda p: json.loads(p)["score"] is not None and json.loads(p)["api_calls_month"] >= n

    with (
        VirtualPrinter(
            files={"long.gcode": default_gcode()}, print_duration_s=300, heat_duration_s=0.3
        ) as printer,
        GadgetStandIn(api_key=run_setup.api_key, interval=5) as service,
    ):
        command = run_setup.command(printer, service, "crash")
        agent = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            probe.wait_for_blocking(STATE, lambda p: json.loads(p)["print_state"] == "idle")
            printer.panel_start("long.gcode")
            state = probe.wait_for_blocking(STATE, calls_at_least(3), timeout_s=60)
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
        seen = json.loads(state.payload)["api_calls_month"]  # inspections the agent had made
        kept, prints = inspections_and_prints(state_dir)
        assert kept >= seen - 1, f"{seen} inspections made, {kept} in the history"
        assert prints == [(1, "long.gcode", "running")]

        probe.clear()
        agent = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        try:
            probe.wait_for_blocking(STATE, calls_at_least(seen + 2), timeout_s=60)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=unit_stop_timeout_s())  # as systemd allows
        assert agent.returncode == 0, stderr
        assert "print 1 (long.gcode) continues after the restart" in stderr
        after, prints = inspections_and_prints(state_dir)
        assert prints == [(1, "long.gcode", "running")], "the same print, not a second one"
        assert after >= kept + 2
    # A clean stop leaves no write-ahead log behind (everything is in the database file).
    assert not Path(f"{db_path(state_dir)}-wal").exists()
    # And the read-only open really is read-only.
    with pytest.raises(sqlite3.OperationalError), connect_readonly(db_path(state_dir)) as conn:
        conn.execute("DELETE FROM prints")
