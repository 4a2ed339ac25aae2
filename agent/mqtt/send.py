"""One command sent to the running agent over the broker, from another process (the CLI)."""

from __future__ import annotations

import os
import threading

from agent.mqtt.topics import Topics
from agent.settings import Settings

SEND_TIMEOUT_S = 10.0  # the whole call: connect, publish, the broker's acknowledgement


def send_command(
    settings: Settings, name: str, payload: str, timeout_s: float = SEND_TIMEOUT_S
) -> str | None:
    """Publish `payload` on `<p>/command/<name>` (QoS 1, not retained); None once the broker
    acknowledged it, else why it could not be sent."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    m = settings.mqtt
    topic = Topics.for_printer(m.topic_prefix, settings.agent.printer_id).command(name)
    acked = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"layerguard-cli-{os.getpid()}")
    if m.username:
        client.username_pw_set(m.username, m.password.get_secret_value())
    if m.tls:
        client.tls_set(ca_certs=str(m.ca_file) if m.ca_file else None)
    client.on_connect = lambda c, *_: c.publish(topic, payload.encode(), qos=1)
    client.on_publish = lambda *_: acked.set()
    try:
        client.connect(m.host, m.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return f"cannot reach the broker {m.host}:{m.port}: {getattr(exc, 'strerror', None) or exc}"
    client.loop_start()
    try:
        if not acked.wait(timeout_s):
            return f"the broker {m.host}:{m.port} did not acknowledge within {timeout_s:g} s"
        return None
    finally:
        client.disconnect()
        client.loop_stop()
