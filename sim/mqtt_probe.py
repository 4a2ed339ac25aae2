"""A separate MQTT client that records what a broker carries: the eyes of the tests and the demo.

It plays the part of Home Assistant or `mosquitto_sub`: whatever it sees went over a real broker.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# A deadline for an event that comes: costs nothing when it does, so sized for a loaded 2-core machine.
WAIT_TIMEOUT_S = 30.0
PayloadMatch = bytes | Callable[[bytes], bool] | None


def _matches(expected: PayloadMatch, payload: bytes) -> bool:
    if expected is None:
        return True
    if isinstance(expected, bytes):
        return payload == expected
    return expected(payload)


class MqttProbe:
    """A separate MQTT client that records every message on its subscriptions, for assertions.

    Messages are kept from creation (or the last `clear()`), so a wait never misses one that
    arrived before it started. It re-subscribes by itself after the broker restarts, although
    paho waits a second before reconnecting; a fresh probe is quicker in such tests.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self._cond = threading.Condition()
        self._messages: list[mqtt.MQTTMessage] = []
        self._acked: set[int] = set()
        self._filters: list[str] = []
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:12]}")
        if username:
            self._client.username_pw_set(username, password)
        if ca_file is not None:
            self._client.tls_set(ca_certs=str(ca_file))
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._connected.wait(WAIT_TIMEOUT_S):
            self.close()
            raise TimeoutError(f"probe could not connect to {host}:{port}")

    def subscribe(self, *topic_filters: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        """Subscribe and return once the broker acknowledged, so later publishes are seen."""
        for topic_filter in topic_filters:
            self._filters.append(topic_filter)
            _, mid = self._client.subscribe(topic_filter, qos=1)
            with self._cond:
                if not self._cond.wait_for(lambda mid=mid: mid in self._acked, timeout_s):
                    raise TimeoutError(f"no SUBACK for {topic_filter} within {timeout_s}s")

    def publish(
        self, topic: str, payload: str | bytes, *, retain: bool = False, timeout_s: float = WAIT_TIMEOUT_S
    ) -> None:
        """Publish at QoS 1 and return once the broker acknowledged it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"publish on {topic} not acknowledged within {timeout_s}s")

    def wait_for_blocking(
        self,
        topic_filter: str,
        payload: PayloadMatch = None,
        *,
        timeout_s: float = WAIT_TIMEOUT_S,
        since: int = 0,
    ) -> mqtt.MQTTMessage:
        """The first recorded message matching the filter and `payload` (bytes to equal, or a
        predicate on the bytes; None takes any), after the `mark()` given as `since`; for sync tests."""
        with self._cond:
            found = self._cond.wait_for(lambda: self._find(topic_filter, payload, since), timeout_s)
        if found is None:
            seen = [(m.topic, m.payload[:60]) for m in self.messages()]
            raise TimeoutError(
                f"no message on {topic_filter} (payload {payload!r}) within {timeout_s}s; seen {seen}"
            )
        return found

    async def wait_for(
        self, topic_filter: str, payload: PayloadMatch = None, *, timeout_s: float = WAIT_TIMEOUT_S
    ) -> mqtt.MQTTMessage:
        """`wait_for_blocking` without blocking the event loop the code under test runs on."""
        return await asyncio.to_thread(self.wait_for_blocking, topic_filter, payload, timeout_s=timeout_s)

    def messages(self, topic_filter: str = "#") -> list[mqtt.MQTTMessage]:
        """Every recorded message matching the filter, oldest first."""
        with self._cond:
            return [m for m in self._messages if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def mark(self) -> int:
        """A position in the record, for `wait_for_blocking(since=...)`; `clear()` voids it."""
        with self._cond:
            return len(self._messages)

    def clear(self) -> None:
        """Forget what was recorded, to wait for what comes next."""
        with self._cond:
            self._messages.clear()

    def close(self) -> None:
        """Disconnect; calling it again does nothing."""
        self._client.disconnect()
        self._client.loop_stop()

    def _find(self, topic_filter: str, payload: PayloadMatch, since: int = 0) -> mqtt.MQTTMessage | None:
        for message in self._messages[since:]:
            if mqtt.topic_matches_sub(topic_filter, message.topic) and _matches(payload, message.payload):
                return message
        return None

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        for topic_filter in self._filters:  # only after a reconnect: subscribe() adds them later
            client.subscribe(topic_filter, qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: object, props: object
    ) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()
