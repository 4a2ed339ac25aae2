"""MQTT fixtures shared by the suites: a real Mosquitto broker and a probe client to watch it.

async def test_something(broker, mqtt_probe):
    probe = mqtt_probe("layerguard/#")             # connected and subscribed (SUBACK received)
    ...                                            # point the code under test at broker.host/port
    message = await probe.wait_for("layerguard/p1/availability", b"online")
    assert message.retain
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.broker import MosquittoBroker
from sim.frames import write_frames
from sim.gadget_service import GadgetStandIn
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    """A running Mosquitto on a free 127.0.0.1 port, anonymous access, no persistence.

    Function scope: it starts in a few milliseconds, and tests may stop or restart it.
    For a broker with users, or one that starts later, use `MosquittoBroker` directly.
    """
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
def mqtt_probe(broker: MosquittoBroker) -> Iterator[Callable[..., MqttProbe]]:
    """A factory of `MqttProbe`s: `mqtt_probe("topic/#", ...)` returns one connected to `broker`
    and subscribed. `on=other_broker` watches another broker (over TLS if it has a `ca_file`),
    `username`/`password` log in.
    All are closed at teardown."""
    probes: list[MqttProbe] = []

    def make(
        *topic_filters: str,
        on: MosquittoBroker | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> MqttProbe:
        target = on or broker
        probe = MqttProbe(
            target.host, target.port, username=username, password=password, ca_file=target.ca_file
        )
        probes.append(probe)
        probe.subscribe(*topic_filters)
        return probe

    yield make
    for probe in probes:
        probe.close()


class RunSetup:
    """`layerguard run` as a user starts it: a config file, the API key in a secrets directory, a
    `dir:` camera of clean frames, and an environment without the developer's LAYERGUARD_ variables."""

    api_key = "run-secret-key-0123456789"

    def __init__(self, tmp_path: Path, broker: MosquittoBroker) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.state_dir = tmp_path / "state"
        self.frames = tmp_path / "frames"
        write_frames(self.frames, 4, failure_at=None)
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "detection__api_key").write_text(self.api_key)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LAYERGUARD_")}
        self.env["LAYERGUARD_SECRETS_DIR"] = str(secrets)

    def command(self, printer: VirtualPrinter, service: GadgetStandIn, printer_id: str) -> list[str]:
        """Writes the config for this printer and stand-in; the command line that runs the agent."""
        config = self.tmp_path / "layerguard.toml"
        config.write_text(
            f'[agent]\nprinter_id = "{printer_id}"\nstate_dir = "{self.state_dir}"\n'
            f'[printer]\nport = "{printer.port}"\n'
            f'[camera]\nsource = "dir:{self.frames}"\n'
            f'[detection]\napi_url = "{service.base_url}"\n'
            f'[mqtt]\nhost = "{self.broker.host}"\nport = {self.broker.port}\n'
            '[web]\nlisten = "127.0.0.1:0"\n'
        )
        return [sys.executable, "-m", "agent", "run", "--config", str(config)]


@pytest.fixture
def run_setup(tmp_path: Path, broker: MosquittoBroker) -> RunSetup:
    return RunSetup(tmp_path, broker)
