"""MQTT fixtures shared by the suites: a real Mosquitto broker and a probe client to watch it.

async def test_something(broker, mqtt_probe):
    probe = mqtt_probe("layerguard/#")             # connected and subscribed (SUBACK received)
    ...                                            # point the code under test at broker.host/port
    message = await probe.wait_for("layerguard/p1/availability", b"online")
    assert message.retain
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sim.broker import MosquittoBroker
from sim.mqtt_probe import MqttProbe


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
