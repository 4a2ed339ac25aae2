"""MqttBridge against a real Mosquitto: the topic contract, commands, reconnects and discovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from agent import __version__
from agent.lifecycle import PrintState
from agent.mqtt import MqttBridge, Topics
from agent.mqtt.bridge import MAX_QUEUED_MESSAGES
from agent.mqtt.discovery import DOCS_URL
from agent.mqtt.redelivery import RedeliveryFilter
from agent.settings import MqttSection, load_settings
from hardware import quiet_log
from sim.broker import HOST, MosquittoBroker

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
PAUSE_TOPIC = f"{P}/command/pause"
PUBACK = 4  # MQTT control packet type


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


@contextlib.contextmanager
def watch_log(text: str) -> Iterator[LogSeen]:
    handler = LogSeen(text)
    logger = logging.getLogger("agent.mqtt.bridge")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextlib.asynccontextmanager
async def running_bridge(section: MqttSection, commands: Commands) -> AsyncIterator[MqttBridge]:
    """A bridge started on the test's loop, stopped on the way out whatever happened."""
    bridge = MqttBridge(section, PRINTER, commands)
    bridge.start(asyncio.get_running_loop())
    try:
        yield bridge
    finally:
        await bridge.stop()


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
    bridge.on_state(STATE)
    bridge.on_event({"type": "print_started", "file": "benchy.gcode"})

    event = json.loads((await probe.wait_for(f"{P}/event")).payload)
    assert event["type"] == "print_started" and event["file"] == "benchy.gcode" and "T" in event["at"]
    assert json.loads((await probe.wait_for(f"{P}/state")).payload) == STATE

    # Retained messages follow each SUBACK in order: once the state arrives, an event would have.
    late = mqtt_probe(f"{P}/event", f"{P}/state")
    await late.wait_for(f"{P}/state")
    assert late.messages(f"{P}/event") == []


async def test_snapshot_bytes_and_the_inspection_arrive_intact(make_bridge, mqtt_probe) -> None:
    jpeg = b"\xff\xd8" + os.urandom(200_000) + b"\xff\xd9"
    inspection = {"at": "2026-11-29T14:00:00Z", "score": 7, "print_quality": 9, "file": "part.gcode"}
    probe = mqtt_probe(f"{P}/#")
    bridge = make_bridge()
    bridge.on_inspection(jpeg, inspection)  # before the connection is up: sent on connect
    message = await probe.wait_for(f"{P}/snapshot")
    assert message.payload == jpeg
    # Retained, and only ever sent with an inspection: Last inspection's timestamp reads it.
    assert json.loads((await probe.wait_for(f"{P}/inspection")).payload) == inspection
    late = await mqtt_probe(f"{P}/inspection").wait_for(f"{P}/inspection")
    assert json.loads(late.payload) == inspection and late.retain


async def test_report_is_retained_and_sent_again_to_a_fresh_broker(make_bridge, mqtt_probe, broker) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(50_000)
    probe = mqtt_probe(f"{P}/report")
    bridge = make_bridge()
    bridge.on_report(png, "7")  # before the connection is up: sent on connect
    assert (await probe.wait_for(f"{P}/report")).payload == png
    probe.close()
    broker.stop()  # no persistence: the retained copy is gone with it
    broker.start()
    back = mqtt_probe(f"{P}/report")
    assert (await back.wait_for(f"{P}/report", timeout_s=60)).payload == png  # sent again
    # Subscribed only now, after it was sent (earlier, a live copy could come first, unretained):
    late = mqtt_probe(f"{P}/report")
    message = await late.wait_for(f"{P}/report")
    assert message.payload == png and message.retain


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


async def test_a_burst_of_junk_commands_is_one_line_and_a_count(
    broker, make_bridge, mqtt_probe, commands, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(quiet_log, "BURST_WINDOW_S", 0.5)
    probe = mqtt_probe(f"{P}/availability")
    make_bridge()
    await probe.wait_for(f"{P}/availability", b"online")
    for i in range(500):
        probe.publish(f"{P}/command/monitoring", f"JUNK{i}")
    probe.publish(f"{P}/command/resume", "PRESS")
    assert (await commands.next())[:2] == ("resume", "PRESS")
    counted = asyncio.Event()

    class CountWritten(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # on the loop: the bridge's timer
            if "more like" in record.getMessage():
                counted.set()

    handler = CountWritten()
    logging.getLogger("agent.mqtt.bridge").addHandler(handler)
    try:
        async with asyncio.timeout(30):
            await counted.wait()
    finally:
        logging.getLogger("agent.mqtt.bridge").removeHandler(handler)
    ignored = [r.getMessage() for r in caplog.records if "ignoring monitoring command" in r.getMessage()]
    assert len(ignored) == 2, ignored
    assert ignored[0] == "MQTT: ignoring monitoring command 'JUNK0': expected ON or OFF"
    assert ignored[1].startswith("499 more like \"MQTT: ignoring monitoring command 'JUNK0'")


async def test_broker_down_at_start_then_up(broker, mqtt_probe, commands, caplog) -> None:
    broker.stop()
    section = MqttSection(host=broker.host, port=broker.port)
    with watch_log("nothing accepts connections") as unreachable:
        async with running_bridge(section, commands) as bridge:
            bridge.on_state(STATE)  # neither blocks nor raises
            for n in range(MAX_QUEUED_MESSAGES + 3):  # QoS 1 events wait in a bounded queue
                bridge.on_event({"type": "print_started", "n": n})
            await asyncio.wait_for(unreachable.seen.wait(), 5)
            assert not bridge.connected

            broker.start()
            probe = mqtt_probe(f"{P}/#")
            await probe.wait_for(f"{P}/availability", b"online")
            assert json.loads((await probe.wait_for(f"{P}/state")).payload) == STATE
            await probe.wait_for(f"{P}/event", lambda p: json.loads(p)["n"] == MAX_QUEUED_MESSAGES - 1)
            assert bridge.connected
    assert caplog.text.count("nothing accepts connections") == 1
    assert caplog.text.count("dropping new ones until it is back") == 1  # not one line per event
    assert "3 events were dropped while the broker was away" in caplog.text
    assert "Traceback" not in caplog.text


async def test_state_republished_after_broker_restart(broker, make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe(f"{P}/state")
    bridge = make_bridge()
    bridge.on_state(STATE)
    await probe.wait_for(f"{P}/state")

    broker.restart()  # no persistence: the retained state is gone unless the bridge sends it again
    fresh = mqtt_probe(f"{P}/state", f"{P}/availability")
    await fresh.wait_for(f"{P}/availability", b"online")
    assert json.loads((await fresh.wait_for(f"{P}/state")).payload) == STATE


async def test_refused_credentials_are_logged_without_the_password(mqtt_probe, commands, caplog) -> None:
    with MosquittoBroker(users={"printer": "right-horse-battery"}) as broker:
        section = MqttSection(host=broker.host, port=broker.port, username="printer", password="wr0ng-secret")
        with watch_log("refused the connection") as refused:
            async with running_bridge(section, commands) as bridge:
                await asyncio.wait_for(refused.seen.wait(), 5)
                assert not bridge.connected

        section = MqttSection(
            host=broker.host, port=broker.port, username="printer", password="right-horse-battery"
        )
        probe = mqtt_probe(f"{P}/availability", on=broker, username="printer", password="right-horse-battery")
        async with running_bridge(section, commands):
            await probe.wait_for(f"{P}/availability", b"online")
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
            ("sensor", "file"),
            ("binary_sensor", "warning"),
            ("binary_sensor", "pause_suggested"),
            ("sensor", "detection"),
            ("sensor", "camera"),
            ("sensor", "api_calls_month"),
            ("sensor", "api_calls_month_pi"),
            ("sensor", "last_inspection"),
            ("button", "pause"),
            ("button", "resume"),
            ("button", "false_alarm"),
            ("button", "real_failure"),
            ("button", "snooze"),
            ("switch", "monitoring"),
            ("image", "snapshot"),
            ("image", "report"),
        ]
    }
    for topic in expected:
        await probe.wait_for(topic)
    configs = {m.topic: json.loads(m.payload) for m in probe.messages()}
    assert set(configs) == expected
    assert all(m.retain for m in mqtt_probe("homeassistant/#").messages())

    assert len({c["unique_id"] for c in configs.values()}) == len(expected)
    for config in configs.values():
        # Every entity goes unavailable with the agent; `Current file` also while there is no file.
        availability = config.get("availability", [{"topic": config.get("availability_topic")}])
        assert availability[0] == {"topic": f"{P}/availability"}
        assert config["device"] == {
            "identifiers": [f"layerguard_{PRINTER}"],
            "name": f"LayerGuard {PRINTER}",
            "manufacturer": "LayerGuard",
            "model": "LayerGuard print-failure guard",
            "sw_version": __version__,
            "configuration_url": DOCS_URL,
        }
    diagnostics = {t.split("/")[3] for t, c in configs.items() if c.get("entity_category") == "diagnostic"}
    assert diagnostics == {"detection", "camera", "api_calls_month", "api_calls_month_pi", "last_inspection"}
    calls = configs[f"homeassistant/sensor/{PRINTER}/api_calls_month/config"]
    # Tolerates an agent whose state has no such field yet.
    assert calls["value_template"] == "{{ value_json.api_calls_month | default(none) }}"
    last = configs[f"homeassistant/sensor/{PRINTER}/last_inspection/config"]
    # Only an inspection fills <p>/inspection: the timestamp sensor never sees a null.
    assert (last["device_class"], last["state_topic"]) == ("timestamp", f"{P}/inspection")
    # An enum sensor rejects a value missing from its options: every print state must be there.
    states = configs[f"homeassistant/sensor/{PRINTER}/print_state/config"]["options"]
    assert set(states) == {state.value for state in PrintState}
    score = configs[f"homeassistant/sensor/{PRINTER}/failure_score/config"]
    assert (score["state_topic"], score["unit_of_measurement"], score["state_class"]) == (
        f"{P}/state",
        "%",
        "measurement",
    )
    assert configs[f"homeassistant/binary_sensor/{PRINTER}/warning/config"]["device_class"] == "problem"
    assert configs[f"homeassistant/button/{PRINTER}/pause/config"]["command_topic"] == f"{P}/command/pause"
    false_alarm = configs[f"homeassistant/button/{PRINTER}/false_alarm/config"]
    assert (false_alarm["command_topic"], false_alarm["payload_press"]) == (
        f"{P}/command/label",
        "false_alarm",
    )
    assert (
        configs[f"homeassistant/switch/{PRINTER}/monitoring/config"]["command_topic"]
        == f"{P}/command/monitoring"
    )
    image = configs[f"homeassistant/image/{PRINTER}/snapshot/config"]
    assert (image["image_topic"], image["content_type"]) == (f"{P}/snapshot", "image/jpeg")
    report = configs[f"homeassistant/image/{PRINTER}/report/config"]
    assert (report["name"], report["image_topic"], report["content_type"]) == (
        "Print report",
        f"{P}/report",
        "image/png",
    )

    probe.clear()
    probe.publish("homeassistant/status", "online")
    await probe.wait_for(f"homeassistant/image/{PRINTER}/snapshot/config")


async def test_no_discovery_when_disabled(make_bridge, mqtt_probe) -> None:
    probe = mqtt_probe("homeassistant/#", f"{P}/state")
    bridge = make_bridge(discovery=False)
    bridge.on_state(STATE)
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
        async with running_bridge(section, commands):
            await probe.wait_for(f"{P}/availability", b"online")
        probe.close()


def test_a_dup_copy_of_a_received_message_is_a_repeat() -> None:
    seen = RedeliveryFilter()
    assert not seen.is_repeat(7, False, PAUSE_TOPIC, b"PRESS")
    assert seen.is_repeat(7, True, PAUSE_TOPIC, b"PRESS")
    assert seen.is_repeat(7, True, PAUSE_TOPIC, b"PRESS")  # however many times


def test_what_is_not_a_repeat() -> None:
    seen = RedeliveryFilter()
    assert not seen.is_repeat(7, True, PAUSE_TOPIC, b"PRESS")  # DUP, but its first copy never arrived
    assert not seen.is_repeat(8, False, PAUSE_TOPIC, b"PRESS")
    assert not seen.is_repeat(8, False, PAUSE_TOPIC, b"PRESS")  # an id reused without DUP: a new press
    assert not seen.is_repeat(8, True, f"{P}/command/resume", b"PRESS")  # same id, other message
    assert not seen.is_repeat(0, True, PAUSE_TOPIC, b"PRESS") and not seen.is_repeat(
        0, True, PAUSE_TOPIC, b"PRESS"
    )


def test_a_new_session_forgets_and_memory_is_bounded() -> None:
    seen = RedeliveryFilter(size=2)
    seen.is_repeat(1, False, PAUSE_TOPIC, b"x")
    seen.new_session()
    assert not seen.is_repeat(1, True, PAUSE_TOPIC, b"x")
    seen.is_repeat(2, False, PAUSE_TOPIC, b"x")
    seen.is_repeat(3, False, PAUSE_TOPIC, b"x")
    assert not seen.is_repeat(1, True, PAUSE_TOPIC, b"x")  # evicted as the oldest
    assert seen.is_repeat(3, True, PAUSE_TOPIC, b"x")


class LossyLink:
    """A TCP relay between the bridge and the broker that, once armed, swallows the bridge's
    next PUBACK and cuts the connection: Wi-Fi dropping just after a command arrived."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.broker = broker
        self.port = 0
        self.cut = asyncio.Event()
        self._armed = False
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LossyLink:
        self._server = await asyncio.start_server(self._relay, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def arm(self) -> None:
        self._armed = True

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(self.broker.host, self.broker.port)
        pumps = [
            asyncio.create_task(self._client_to_broker(client_r, broker_w)),
            asyncio.create_task(self._copy(broker_r, client_w)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for writer in (client_w, broker_w):
            writer.transport.abort()  # no FIN dance: the link is gone

    async def _client_to_broker(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(1)
                length_bytes, length = b"", 0
                for shift in range(0, 28, 7):  # MQTT's variable-length remaining length
                    byte = await reader.readexactly(1)
                    length_bytes += byte
                    length |= (byte[0] & 0x7F) << shift
                    if not byte[0] & 0x80:
                        break
                body = await reader.readexactly(length)
                if self._armed and header[0] >> 4 == PUBACK:
                    self._armed = False
                    self.cut.set()
                    return
                writer.write(header + length_bytes + body)

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)


async def test_the_broker_redelivers_a_command_whose_ack_was_lost_and_it_is_acted_on_once(
    broker, mqtt_probe, commands, caplog
) -> None:
    probe = mqtt_probe(f"{P}/availability")
    async with LossyLink(broker) as link:
        section = MqttSection(host=broker.host, port=link.port)
        with watch_log("redelivered after a reconnect") as redelivered:
            async with running_bridge(section, commands):
                await probe.wait_for(f"{P}/availability", b"online")
                link.arm()
                probe.publish(PAUSE_TOPIC, "PRESS")
                assert (await commands.next())[:2] == ("pause", "PRESS")
                await asyncio.wait_for(link.cut.wait(), 5)
                # The session survived the cut: the broker sends the pause again, flagged DUP.
                await asyncio.wait_for(redelivered.seen.wait(), 10)
                probe.publish(f"{P}/command/resume", "PRESS")
                assert (await commands.next())[:2] == ("resume", "PRESS")  # in order: no second pause
                assert commands.queue.empty()
    assert "Traceback" not in caplog.text


async def test_password_and_tls_through_settings(tmp_path, monkeypatch, mqtt_probe, commands, caplog) -> None:
    """The way a user sets it up: TOML for the broker, the password in a secret file."""
    secret = "right-horse-battery"
    with MosquittoBroker(users={"printer": secret}, tls=True) as broker:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "mqtt__password").write_text(secret + "\n")
        monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(secrets))
        config = tmp_path / "layerguard.toml"
        config.write_text(
            f'[agent]\nprinter_id = "{PRINTER}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'username = "printer"\ntls = true\nca_file = "{broker.ca_file}"\n'
        )
        settings = load_settings(config)
        assert settings.agent.printer_id == PRINTER
        probe = mqtt_probe(f"{P}/availability", on=broker, username="printer", password=secret)
        async with running_bridge(settings.mqtt, commands):
            await probe.wait_for(f"{P}/availability", b"online")
            probe.publish(f"{P}/command/monitoring", "OFF")
            assert (await commands.next())[:2] == ("monitoring", "OFF")
        probe.close()
    assert secret not in caplog.text


async def test_a_certificate_from_another_ca_is_reported_as_such(mqtt_probe, commands, caplog) -> None:
    with MosquittoBroker(tls=True) as broker, MosquittoBroker(tls=True) as other:
        section = MqttSection(host=broker.host, port=broker.port, tls=True, ca_file=other.ca_file)
        with watch_log("TLS certificate") as rejected:
            async with running_bridge(section, commands):
                await asyncio.wait_for(rejected.seen.wait(), 5)
    assert "was not accepted (self-signed certificate in certificate chain)" in caplog.text
    assert "check mqtt.ca_file" in caplog.text
    assert "Traceback" not in caplog.text


async def test_plain_mqtt_to_a_tls_port_is_reported(mqtt_probe, commands, caplog) -> None:
    with MosquittoBroker(tls=True) as broker:
        section = MqttSection(host=broker.host, port=broker.port)  # no mqtt.tls
        with watch_log("closed the connection before accepting it") as closed:
            async with running_bridge(section, commands):
                await asyncio.wait_for(closed.seen.wait(), 5)
    assert "if that port expects TLS, set mqtt.tls = true" in caplog.text


async def test_an_unusable_ca_file_leaves_mqtt_off_with_one_clear_line(tmp_path, commands, caplog) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("not a certificate\n")
    async with running_bridge(MqttSection(host=HOST, port=1, tls=True, ca_file=ca_file), commands) as bridge:
        bridge.on_state(STATE)  # MQTT is off: nothing to do, nothing raised
    assert f"MQTT off: mqtt.ca_file {ca_file} is not a usable CA file" in caplog.text


async def test_nothing_waits_on_a_broker_that_hangs(commands, caplog) -> None:
    """A listener that accepts TCP and never answers the TLS handshake holds paho's thread for its
    whole connect timeout (5 s). Publishing must not notice, and stop() must not wait it out."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        listener.settimeout(5)
        port = listener.getsockname()[1]
        bridge = MqttBridge(MqttSection(host=HOST, port=port, tls=True), PRINTER, commands)
        bridge.start(asyncio.get_running_loop())
        held, _ = await asyncio.to_thread(listener.accept)  # paho is now in the handshake
        with held:
            started = time.monotonic()
            bridge.on_state(STATE)
            bridge.on_event({"type": "print_started"})
            bridge.on_inspection(b"\xff\xd8jpeg\xff\xd9", {})
            # What these protect: nothing waits out paho's 5 s handshake. Half of it is the bound:
            # blocking would take the rest of the 5 s; scheduling on a loaded machine takes far less.
            assert time.monotonic() - started < 2.5
            started = time.monotonic()
            await bridge.stop(timeout_s=0.5)
            assert time.monotonic() - started < 2.5
    assert "did not let go within 0.5s" in caplog.text


async def test_the_device_page_links_to_the_agents_page_when_it_is_on(broker, mqtt_probe, commands) -> None:
    probe = mqtt_probe("homeassistant/#")
    section = MqttSection(host=broker.host, port=broker.port)
    bridge = MqttBridge(section, PRINTER, commands, configuration_url="http://octopi.local/")
    bridge.start(asyncio.get_running_loop())
    try:
        message = await probe.wait_for(f"homeassistant/sensor/{PRINTER}/failure_score/config")
        assert json.loads(message.payload)["device"]["configuration_url"] == "http://octopi.local/"
    finally:
        await bridge.stop()
