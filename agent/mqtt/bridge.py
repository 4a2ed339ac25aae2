"""The agent's MQTT link: state, events, snapshots and reports out, commands in, over paho-mqtt 2.x.

paho runs its network thread; its callbacks only hand what happened to the agent's event
loop, and all the bridge's own logic (announcing, command parsing, status logging) runs
there. So the bridge has no locks, and nothing ever publishes while paho holds its own.
The broker being down is a normal state: starting, publishing and stopping never block on
it or raise; the last state is re-published whenever the connection comes back.

MQTT 5, for one thing 3.1.1 cannot say: keep the session for `SESSION_EXPIRY_S` after the
connection drops. A command sent during a Wi-Fi blip then still arrives, and one whose
acknowledgement was lost arrives again flagged DUP (see redelivery.py). The first connection
of each run starts clean, so commands meant for an earlier run are never replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.mqtt.diagnosis import Diagnosis, closed_before_connack, connect_failure
from agent.mqtt.discovery import discovery_configs, status_topic
from agent.mqtt.redelivery import RedeliveryFilter
from agent.mqtt.topics import COMMANDS, Topics
from agent.outputs import Sink
from agent.settings import MqttSection
from hardware.quiet_log import BurstLog

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
# How long the broker keeps our subscriptions and unacknowledged commands after a drop.
SESSION_EXPIRY_S = 60
# paho doubles its wait after each failed attempt up to this: a restarted broker (Home
# Assistant's add-on after an update) is found again within half a minute.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
# QoS 1 events wait in memory while the broker is away; beyond this many they are dropped.
MAX_QUEUED_MESSAGES = 500
STOP_TIMEOUT_S = 3.0
MONITORING_PAYLOADS = ("ON", "OFF")

CommandHandler = Callable[[str, str], None]


class MqttBridge(Sink):
    """Publishes one printer's state, events and snapshots and receives its commands.

    `on_command(name, payload)` is called on the event loop given to `start()`, with `name`
    one of `COMMANDS` and `payload` the stripped text (`ON`/`OFF` for monitoring). Retained,
    empty, malformed and redelivered commands never reach it.
    """

    name = "mqtt"

    def __init__(
        self,
        settings: MqttSection,
        printer_id: str,
        on_command: CommandHandler,
        *,
        client_id: str | None = None,
        configuration_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.printer_id = printer_id
        self.topics = Topics.for_printer(settings.topic_prefix, printer_id)
        self._on_command = on_command
        self._configuration_url = configuration_url  # the page, for Home Assistant's device page
        # Stable by default so a restarted agent takes over its old session instead of adding one.
        self._client_id = client_id or f"layerguard-{printer_id}"
        self._status_topic = status_topic(settings.discovery_prefix)
        self._where = f"{settings.host}:{settings.port}"
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_state: str | None = None
        self._last_snapshot: bytes | None = None
        self._last_inspection: str | None = None
        self._last_report: bytes | None = None
        self._link = ""  # the last connection status logged, so each change is logged once
        self._connected = False
        self._stopping = False
        self._redelivery = RedeliveryFilter()
        self._dropped_events = 0
        self._ignored = BurstLog(log)  # 500 junk commands are one line and a count, not 500

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the connection (as last seen on the event loop)."""
        return self._connected

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin connecting in paho's thread and return at once, whether or not the broker is up.

        A CA file that cannot be loaded leaves MQTT off with one error line: the guard goes on.
        """
        settings = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv5)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if settings.username:
            client.username_pw_set(settings.username, settings.password.get_secret_value() or None)
        if settings.tls:
            try:
                client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                log.error("MQTT off: mqtt.ca_file %s is not a usable CA file (%s)", settings.ca_file, exc)
                return
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._loop = loop
        self._stopping = False
        self._client = client
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = SESSION_EXPIRY_S
        client.connect_async(
            settings.host,
            settings.port,
            keepalive=KEEPALIVE_S,
            clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=session,
        )
        client.loop_start()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Say `offline` (retained: a clean disconnect does not fire the last will) and disconnect.

        Returns within about `timeout_s` whatever the broker does: paho's thread may be stuck in
        a TCP connect or TLS handshake for its own connect timeout, and is then left behind.
        """
        client = self._client
        if client is None:
            return
        self._stopping = True
        was_connected = self._connected
        info = client.publish(self.topics.availability, "offline", qos=1, retain=True)

        def shut_down() -> bool:
            published = was_connected and _wait_published(info, timeout_s)
            # Session expiry 0: nobody will resume this session, the broker can drop it now.
            goodbye = Properties(PacketTypes.DISCONNECT)
            goodbye.SessionExpiryInterval = 0
            client.disconnect(properties=goodbye)
            client.loop_stop()
            return published

        done = _in_daemon_thread(shut_down)
        try:
            async with asyncio.timeout(timeout_s + 1):
                published = await asyncio.shield(done)
        except TimeoutError:
            log.warning("MQTT: %s did not let go within %gs; exiting without it", self._where, timeout_s)
            published = False
        if was_connected and not published:
            log.warning("MQTT: could not confirm that 'offline' reached the broker within %gs", timeout_s)
        self._client = None
        if self._connected:
            self._connected = False
            log.info("MQTT: disconnected from %s", self._where)

    def on_state(self, state: Mapping[str, Any]) -> None:
        """Publish the printer state (retained) and remember it for every reconnect."""
        self._last_state = json.dumps(state, default=_json_default)
        self._publish(self.topics.state, self._last_state, qos=0, retain=True)

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Publish one event, not retained, QoS 1: queued in memory while the broker is away.

        `event` needs a `type`; `at` (ISO 8601) is filled in with the current time if missing.
        """
        payload = json.dumps({"at": datetime.now(UTC).isoformat(), **event}, default=_json_default)
        info = self._publish(self.topics.event, payload, qos=1, retain=False)
        if info is not None and info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            if not self._dropped_events:  # one line per outage; the count comes on reconnect
                log.warning(
                    "MQTT: %d events already wait for the broker at %s; dropping new ones until it is back",
                    MAX_QUEUED_MESSAGES,
                    self._where,
                )
            self._dropped_events += 1

    def on_inspection(self, jpeg: bytes, inspection: Mapping[str, Any]) -> None:
        """Publish the last inspected frame and its verdict (both retained) and remember them for
        every reconnect."""
        self._last_snapshot = jpeg
        self._last_inspection = json.dumps(inspection, default=_json_default)
        self._publish(self.topics.snapshot, jpeg, qos=0, retain=True)
        self._publish(self.topics.inspection, self._last_inspection, qos=0, retain=True)

    def on_report(self, png: bytes, print_id: str | None = None) -> None:
        """Publish a print's timeline picture (retained) and remember it for every reconnect."""
        self._last_report = png
        self._publish(self.topics.report, png, qos=0, retain=True)

    def _publish(
        self, topic: str, payload: str | bytes, *, qos: int, retain: bool
    ) -> mqtt.MQTTMessageInfo | None:
        # paho only queues the packet for its own thread: this never blocks, and while
        # disconnected a QoS 0 message is dropped rather than raising.
        if self._client is None or self._stopping:
            return None
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    # paho's thread: hand everything over to the event loop, nothing more.

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._to_loop(self._handle_connect, reason, bool(getattr(flags, "session_present", False)))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this from inside its `except OSError` around the connection attempt, so
        # the exception (refused, timeout, TLS verification...) is still the one being handled.
        self._to_loop(self._handle_connect_fail, sys.exc_info()[1])

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._to_loop(self._handle_disconnect, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._to_loop(
            self._handle_message, message.topic, message.payload, message.retain, message.mid, message.dup
        )

    def _to_loop(self, handler: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        # A closed loop means the agent is exiting without stop(): nothing is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(handler, *args)

    # The event loop's thread.

    def _handle_connect(self, reason: ReasonCode, session_present: bool) -> None:
        if self._stopping:
            return
        if reason.is_failure:
            self._report(
                f"refused:{reason}",
                logging.ERROR,
                f"MQTT: the broker at {self._where} refused the connection: {reason} "
                "(check mqtt.username and mqtt.password); retrying in the background",
            )
            return
        self._connected = True
        self._report("connected", logging.INFO, f"MQTT: connected to {self._where}")
        if not session_present:
            self._redelivery.new_session()
        if self._dropped_events:
            log.warning("MQTT: %d events were dropped while the broker was away", self._dropped_events)
            self._dropped_events = 0
        self._subscribe()
        self._announce()

    def _handle_connect_fail(self, exc: BaseException | None) -> None:
        if not self._stopping:
            self._report_failure(connect_failure(exc, self._where, self.settings.tls))

    def _handle_disconnect(self, reason: ReasonCode) -> None:
        was_connected, self._connected = self._connected, False
        if self._stopping:
            return
        if was_connected:
            message = f"MQTT: lost the connection to {self._where} ({reason}); reconnecting"
            self._report("lost", logging.WARNING, message)
        elif not self._link.startswith("refused:"):
            # paho also reports a refused CONNACK as a disconnect, already said; otherwise the
            # broker hung up on our CONNECT, which is what a TLS listener does to plain MQTT.
            self._report_failure(closed_before_connack(self._where, self.settings.tls))

    def _report_failure(self, diagnosis: Diagnosis) -> None:
        self._report(diagnosis.key, logging.WARNING, f"MQTT: {diagnosis.message}; retrying in the background")

    def _report(self, status: str, level: int, message: str) -> None:
        if status != self._link:
            self._link = status
            log.log(level, message)

    def _subscribe(self) -> None:
        assert self._client is not None
        # Retained messages only with a new subscription: a resumed session must not replay
        # a stale retained command (ignored anyway) or Home Assistant's retained status.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        topics = [(self.topics.command(name), options) for name in COMMANDS]
        if self.settings.discovery:
            topics.append((self._status_topic, options))
        self._client.subscribe(topics)

    def _announce(self) -> None:
        """Everything a fresh broker or a restarted Home Assistant needs to know about us.

        QoS 0 is enough because this runs again on every reconnect, and it keeps paho's bounded
        QoS 1 queue for events: a backlog of them after an outage must not crowd out `online`.
        """
        self._publish(self.topics.availability, "online", qos=0, retain=True)
        if self.settings.discovery:
            for config in discovery_configs(
                self.settings.discovery_prefix, self.printer_id, self.topics, self._configuration_url
            ):
                self._publish(config.topic, json.dumps(config.payload), qos=0, retain=True)
        if self._last_state is not None:
            self._publish(self.topics.state, self._last_state, qos=0, retain=True)
        if self._last_snapshot is not None:
            self._publish(self.topics.snapshot, self._last_snapshot, qos=0, retain=True)
        if self._last_inspection is not None:
            self._publish(self.topics.inspection, self._last_inspection, qos=0, retain=True)
        if self._last_report is not None:
            self._publish(self.topics.report, self._last_report, qos=0, retain=True)

    def _handle_message(self, topic: str, payload: bytes, retain: bool, mid: int, dup: bool) -> None:
        if self._stopping:
            return
        if topic == self._status_topic:
            # A retained `online` arrives on every subscribe, right after we announced anyway.
            if payload == b"online" and not retain:
                log.info("MQTT: Home Assistant came online, re-sending discovery")
                self._announce()
            return
        name = self.topics.command_name(topic)
        if name is None:
            return
        if self._redelivery.is_repeat(mid, dup, topic, payload):
            self._ignored.log_line(
                logging.INFO,
                "MQTT: ignoring the %s command redelivered after a reconnect: already received",
                name,
            )
            return
        text = payload.decode("utf-8", "replace").strip()
        if retain:
            self._ignored.log_line(
                logging.WARNING,
                "MQTT: ignoring the retained %s command on %s: commands must not be retained "
                "(clear it with an empty retained message)",
                name,
                topic,
            )
            return
        if not text:
            # What subscribers see when someone clears a retained command: not a request.
            self._ignored.log_line(logging.INFO, "MQTT: ignoring an empty %s command on %s", name, topic)
            return
        if name == "monitoring":
            text = text.upper()
            if text not in MONITORING_PAYLOADS:
                self._ignored.log_line(
                    logging.WARNING, "MQTT: ignoring monitoring command %r: expected ON or OFF", text[:40]
                )
                return
        self._on_command(name, text)


def _in_daemon_thread(work: Callable[[], bool]) -> asyncio.Future[bool]:
    """`work()`'s result, computed in a daemon thread.

    Unlike asyncio.to_thread, a call left stuck behind cannot hold up the interpreter's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()

    def deliver(result: bool) -> None:
        if not future.done():
            future.set_result(result)

    def run() -> None:
        result = False
        try:
            result = work()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed while we were stuck
                loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=run, name="mqtt-stop", daemon=True).start()
    return future


def _wait_published(info: mqtt.MQTTMessageInfo, timeout_s: float) -> bool:
    """Block (in a worker thread) until paho has sent `info`'s message; False if it could not."""
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError):
        return False
    return info.is_published()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
