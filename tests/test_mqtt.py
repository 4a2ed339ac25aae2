"""MqttBridge against a real Mosquitto: the topic contract, commands, reconnects and discovery."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from agent import __version__
from agent.mqtt import MqttBridge, Topics
from agent.settings import MqttSection
from sim.broker import MosquittoBroker

PRINTER = "p1"
P = f"layerguard/{PRINTER}"
STATE = {
    "print_state": "printing",
    "file": "benchy.gcode",
    "progress": 42.5,
    "monitoring": True,
    "score": 12,
    "print_quality": 9,
    "warning": False,
    "pause_suggested": False,
    "last_inspection": "2025-01-01T12:00:00+00:00",
    "next_inspection": "2025-01-01T12:00:30+00:00",
    "detection": "ok",
}
BridgeFactory = Callable[..., MqttBridge]


class Commands:
    """Records on_command calls and the thread they arrived on."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()

    def __call__(self, name: str, payload: str) -> None:
        self.queue.put_nowait((name, payload, threading.get_ident()))

    async def next(self) -> tuple[str, str, int]:
        return await asyncio.wait_for(self.queue.get(), 5)


class LogSeen(logging.Handler):
    """Sets `seen` once the bridge logs a line containing `text` (the bridge logs on the loop)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
async def make_bridge(broker: MosquittoBroker, commands: Commands) -> AsyncIterator[BridgeFactory]:
    """Started bridges on `broker` (or `on=`), stopped at teardown; keywords override MqttSection."""
    bridges: list[MqttBridge] = []

    def make(on: MosquittoBroker | None = None, **settings: object) -> MqttBridge:
        target = on or broker
        section = MqttSection(host=target.host, port=target.port, **settings)
        bridge = MqttBridge(section, PRINTER, commands)
        bridge.start(asyncio.get_running_loop())
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        await bridge.stop()


def watch_log(text: str) -> LogSeen:
    handler = LogSeen(text)
    logger = logging.getLogger("agent.mqtt.bridge")
    logger.addHandler(handler)
    return handler


@pytest.fixture(autouse=True)
def _bridge_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.mqtt")


async def test_availability_online_retained_then_offline_on_stop(make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe(f"{P}/availability")
    bridge = make_bridge()
    await probe.wait_for(f"{P}/availability", b"online")
    late = mqtt_probe(f"{P}/availability")
    assert (await late.wait_for(f"{P}/availability", b"online")).retain

    await bridge.stop()
    await probe.wait_for(f"{P}/availability", b"offline")
    later = mqtt_probe(f"{P}/availability")
    assert (await later.wait_for(f"{P}/availability")).payload == b"offline"


async def test_state_is_retained_and_events_are_not(make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe(f"{P}/#")
    bridge = make_bridge()
    await probe.wait_for(f"{P}/availability", b"online")
    bridge.publish_state(STATE)
    bridge.publish_event({"type": "print_started", "file": "benchy.gcode"})

    event = json.loads((await probe.wait_for(f"{P}/event")).payload)
    assert event["type"] == "print_started" and event["file"] == "benchy.gcode" and "T" in event["at"]
    assert json.loads((await probe.wait_for(f"{P}/state")).payload) == STATE

    # Retained messages follow each SUBACK in order: once the state arrives, an event would have.
    late = mqtt_probe(f"{P}/event", f"{P}/state")
    await late.wait_for(f"{P}/state")
    assert late.messages(f"{P}/event") == []


async def test_snapshot_bytes_arrive_intact(make_bridge, mqtt_probe) -> None:
    jpeg = b"\xff\xd8" + os.urandom(200_000) + b"\xff\xd9"
    probe = mqtt_probe(f"{P}/snapshot")
    bridge = make_bridge()
    bridge.publish_snapshot(jpeg)  # before the connection is up: sent on connect
    message = await probe.wait_for(f"{P}/snapshot")
    assert message.payload == jpeg


async def test_commands_reach_on_command_on_the_loop_thread(make_bridge, mqtt_probe, commands) -> None:
    probe = mqtt_probe(f"{P}/availability")
    make_bridge()
    await probe.wait_for(f"{P}/availability", b"online")

    probe.publish(f"{P}/command/pause", "PRESS")
    probe.publish(f"{P}/command/resume", "PRESS")
    probe.publish(f"{P}/command/monitoring", "off")
    received = [await commands.next() for _ in range(3)]

    assert [(name, payload) for name, payload, _ in received] == [
        ("pause", "PRESS"),
        ("resume", "PRESS"),
        ("monitoring", "OFF"),
    ]
    assert {thread for _, _, thread in received} == {threading.get_ident()}


async def test_retained_empty_and_unknown_commands_are_ignored(
    broker, make_bridge, mqtt_probe, commands, caplog
) -> None:
    probe = mqtt_probe(f"{P}/availability")
    probe.publish(f"{P}/command/pause", "PRESS", retain=True)  # stale: delivered on subscribe
    make_bridge()
    await probe.wait_for(f"{P}/availability", b"online")

    probe.publish(f"{P}/command/pause", "", retain=True)  # clearing it: an empty live message
    probe.publish(f"{P}/command/monitoring", "MAYBE")
    probe.publish(f"{P}/command/resume", "PRESS")

    assert (await commands.next())[:2] == ("resume", "PRESS")  # delivery is in order
    assert commands.queue.empty()
    assert "ignoring the retained pause command" in caplog.text
    assert "ignoring an empty pause command" in caplog.text
    assert "ignoring monitoring command 'MAYBE'" in caplog.text


async def test_broker_down_at_start_then_up(broker, mqtt_probe, commands, caplog) -> None:
    broker.stop()
    unreachable = watch_log("cannot connect to the broker")
    bridge = MqttBridge(MqttSection(host=broker.host, port=broker.port), PRINTER, commands)
    try:
        bridge.start(asyncio.get_running_loop())
        bridge.publish_state(STATE)  # neither blocks nor raises
        bridge.publish_event({"type": "print_started"})
        await asyncio.wait_for(unreachable.seen.wait(), 5)
        assert not bridge.connected

        broker.start()
        probe = mqtt_probe(f"{P}/#")
        await probe.wait_for(f"{P}/availability", b"online")
        assert json.loads((await probe.wait_for(f"{P}/state")).payload) == STATE
        await probe.wait_for(f"{P}/event")  # QoS 1 events wait for the broker
        assert bridge.connected
    finally:
        await bridge.stop()
        logging.getLogger("agent.mqtt.bridge").removeHandler(unreachable)
    assert caplog.text.count("cannot connect to the broker") == 1
    assert "Traceback" not in caplog.text


async def test_state_republished_after_broker_restart(broker, make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe(f"{P}/state")
    bridge = make_bridge()
    bridge.publish_state(STATE)
    await probe.wait_for(f"{P}/state")

    broker.restart()  # no persistence: the retained state is gone unless the bridge sends it again
    fresh = mqtt_probe(f"{P}/state", f"{P}/availability")
    await fresh.wait_for(f"{P}/availability", b"online")
    assert json.loads((await fresh.wait_for(f"{P}/state")).payload) == STATE


async def test_refused_credentials_are_logged_without_the_password(mqtt_probe, commands, caplog) -> None:
    with MosquittoBroker(users={"printer": "right-horse-battery"}) as broker:
        refused = watch_log("refused the connection")
        section = MqttSection(host=broker.host, port=broker.port, username="printer", password="wr0ng-secret")
        bridge = MqttBridge(section, PRINTER, commands)
        try:
            bridge.start(asyncio.get_running_loop())
            await asyncio.wait_for(refused.seen.wait(), 5)
            assert not bridge.connected
        finally:
            await bridge.stop()
            logging.getLogger("agent.mqtt.bridge").removeHandler(refused)

        section = MqttSection(
            host=broker.host, port=broker.port, username="printer", password="right-horse-battery"
        )
        bridge = MqttBridge(section, PRINTER, commands)
        probe = mqtt_probe(f"{P}/availability", on=broker, username="printer", password="right-horse-battery")
        try:
            bridge.start(asyncio.get_running_loop())
            await probe.wait_for(f"{P}/availability", b"online")
        finally:
            await bridge.stop()
            probe.close()  # before its broker goes, or paho would be asleep in a reconnect wait
    assert caplog.text.count("refused the connection") == 1
    assert "mqtt.username and mqtt.password" in caplog.text
    assert "lost the connection" not in caplog.text  # a refusal is not a lost connection
    assert "wr0ng-secret" not in caplog.text and "right-horse-battery" not in caplog.text
    assert "Traceback" not in caplog.text


async def test_discovery_configs_and_republish_on_home_assistant_start(make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe("homeassistant/#")
    make_bridge()
    expected = {
        f"homeassistant/{component}/{PRINTER}/{object_id}/config"
        for component, object_id in [
            ("sensor", "failure_score"),
            ("sensor", "print_quality"),
            ("sensor", "print_state"),
            ("sensor", "progress"),
            ("binary_sensor", "warning"),
            ("binary_sensor", "pause_suggested"),
            ("button", "pause"),
            ("button", "resume"),
            ("switch", "monitoring"),
            ("image", "snapshot"),
        ]
    }
    for topic in expected:
        await probe.wait_for(topic)
    configs = {m.topic: json.loads(m.payload) for m in probe.messages()}
    assert set(configs) == expected
    assert all(m.retain for m in mqtt_probe("homeassistant/#").messages())

    assert len({c["unique_id"] for c in configs.values()}) == len(expected)
    for config in configs.values():
        assert config["availability_topic"] == f"{P}/availability"
        assert config["device"] == {
            "identifiers": [f"layerguard_{PRINTER}"],
            "name": f"LayerGuard {PRINTER}",
            "manufacturer": "LayerGuard",
            "model": "LayerGuard print-failure guard",
            "sw_version": __version__,
        }
    score = configs[f"homeassistant/sensor/{PRINTER}/failure_score/config"]
    assert (score["state_topic"], score["unit_of_measurement"], score["state_class"]) == (
        f"{P}/state",
        "%",
        "measurement",
    )
    assert configs[f"homeassistant/binary_sensor/{PRINTER}/warning/config"]["device_class"] == "problem"
    assert configs[f"homeassistant/button/{PRINTER}/pause/config"]["command_topic"] == f"{P}/command/pause"
    assert (
        configs[f"homeassistant/switch/{PRINTER}/monitoring/config"]["command_topic"]
        == f"{P}/command/monitoring"
    )
    image = configs[f"homeassistant/image/{PRINTER}/snapshot/config"]
    assert (image["image_topic"], image["content_type"]) == (f"{P}/snapshot", "image/jpeg")

    probe.clear()
    probe.publish("homeassistant/status", "online")
    await probe.wait_for(f"homeassistant/image/{PRINTER}/snapshot/config")


async def test_no_discovery_when_disabled(make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe("homeassistant/#", f"{P}/state")
    bridge = make_bridge(discovery=False)
    bridge.publish_state(STATE)
    await probe.wait_for(f"{P}/state")  # sent after where discovery would go on connect
    assert probe.messages("homeassistant/#") == []


async def test_last_will_when_the_connection_dies(make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe(f"{P}/availability")
    bridge = make_bridge()
    await probe.wait_for(f"{P}/availability", b"online")
    probe.clear()

    # Cut the TCP connection under paho, as a crash or a pulled cable would: no DISCONNECT is sent.
    sock = bridge._client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)
    await probe.wait_for(f"{P}/availability", b"offline")


def test_topics_follow_the_contract() -> None:
    topics = Topics.for_printer("farm/", "mk4-2")
    assert (topics.availability, topics.state, topics.event, topics.snapshot) == (
        "farm/mk4-2/availability",
        "farm/mk4-2/state",
        "farm/mk4-2/event",
        "farm/mk4-2/snapshot",
    )
    assert topics.command("monitoring") == "farm/mk4-2/command/monitoring"
    assert topics.command_name("farm/mk4-2/command/pause") == "pause"
    assert topics.command_name("farm/mk4-2/command/explode") is None
    assert topics.command_name("farm/other/command/pause") is None


async def test_tls_with_ca_file(mqtt_probe, commands) -> None:
    with MosquittoBroker(tls=True) as broker:
        probe = mqtt_probe(f"{P}/availability", on=broker)
        section = MqttSection(host=broker.host, port=broker.port, tls=True, ca_file=broker.ca_file)
        bridge = MqttBridge(section, PRINTER, commands)
        try:
            bridge.start(asyncio.get_running_loop())
            await probe.wait_for(f"{P}/availability", b"online")
        finally:
            await bridge.stop()
            probe.close()
