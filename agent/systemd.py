"""Talking to systemd's service manager (sd_notify): readiness, watchdog pings, status, stopping.

The protocol is one datagram per message on the AF_UNIX socket named in $NOTIFY_SOCKET, so the
standard library is enough. The socket never blocks: a manager that stops reading fills its queue,
and a blocking send would then hold the event loop (and with it SIGTERM) for good; such a message
is dropped and logged instead. Outside systemd (no $NOTIFY_SOCKET) every call does nothing, which
keeps `layerguard run` the same in a terminal, in Docker and under the unit.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from hardware.quiet_log import LastingCondition

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends `KEY=value` messages to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval_s = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        if self._address is not None:
            kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            self._socket = socket.socket(socket.AF_UNIX, kind)
        self._failing = LastingCondition(log, "systemd notification")  # a watchdog ping per tick

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def ready(self, status: str) -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def notify(self, message: str) -> None:
        """Send one message; a lost message is logged, never raised: the agent matters more."""
        if self._socket is None or self._address is None:
            return
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:  # BlockingIOError too: the manager's queue is full
            self._failing.failed(f"{message.split('=')[0]!r} failed: {exc}")
        else:
            self._failing.recovered()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(value: str) -> str | bytes | None:
    """A path, or `@name` for the abstract namespace (a leading NUL byte on the wire)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value if value.startswith("/") else None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of `WatchdogSec=`, as sd_watchdog_enabled() advises; None when the watchdog is off or
    meant for another process (WATCHDOG_PID names the process it is for)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
