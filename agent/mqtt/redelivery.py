"""Recognising a command the broker delivers a second time, so the agent acts on it once.

The bridge keeps its MQTT session for a short while across reconnects (see bridge.py), so a
command whose PUBACK was lost with the connection is sent again after the reconnect, with the
same packet id and the DUP flag set (MQTT 5, 4.4). A pause acted on twice is harmless; a
resume replayed after the agent paused a failing print is not.

A copy that is not flagged DUP cannot be told from a new command (a publisher's own retry goes
through the broker as a fresh message): the agent makes its commands idempotent for those.
"""

from __future__ import annotations

from collections import OrderedDict

# Packet ids are reused after 65535 messages; remembering the last few covers any realistic
# backlog of unacknowledged commands (the broker sends at most its receive maximum at once).
REMEMBERED = 64


class RedeliveryFilter:
    """Remembers the packet ids of the last commands received in the current session."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._size = size
        self._seen: OrderedDict[int, tuple[str, bytes]] = OrderedDict()

    def is_repeat(self, mid: int, dup: bool, topic: str, payload: bytes) -> bool:
        """Whether this message is a redelivery of one already received; records it if not.

        QoS 0 messages (mid 0) are never redelivered. A message without DUP that reuses a
        packet id is new: the broker only reuses an id once the earlier message was acknowledged.
        """
        if mid == 0:
            return False
        if dup and self._seen.get(mid) == (topic, payload):
            return True
        self._seen[mid] = (topic, payload)
        self._seen.move_to_end(mid)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return False

    def new_session(self) -> None:
        """The broker started a fresh session: its packet ids say nothing about earlier ones."""
        self._seen.clear()
