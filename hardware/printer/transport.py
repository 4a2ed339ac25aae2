"""The serial port as lines on the asyncio loop: opened once, exclusively, read without blocking.

The port's file descriptor is watched with `loop.add_reader`, so lines are delivered on the event
loop thread and nothing blocks it; writes are non-blocking too, and what the kernel does not take
at once (a stalled USB-serial chip) waits in a buffer flushed by `loop.add_writer`. Opening resets
many boards (DTR), so the port stays open until the device really goes away; a read or write error
is reported once through `lost`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import serial

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096  # a line longer than this is noise (wrong baud rate); deliver it and move on


class LinkLost(Exception):
    """The serial device went away or failed; the message says how."""


class LineSplitter:
    """Bytes in, decoded lines out. Garbage right after opening is normal: decode leniently."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        *complete, rest = self._buffer.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            complete.append(rest)
            rest = bytearray()
        self._buffer = bytearray(rest)
        lines = (raw.decode("utf-8", errors="replace").strip("\r\x00 ") for raw in complete)
        return [line for line in lines if line]


class SerialTransport:
    """An open serial port delivering lines to `on_line` on the loop; `lost` completes on failure."""

    def __init__(self, port: serial.Serial, on_line: Callable[[str], None]) -> None:
        self._serial = port
        self._on_line = on_line
        self._splitter = LineSplitter()
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[str] = self._loop.create_future()
        self._outbox = bytearray()
        self._loop.add_reader(port.fileno(), self._on_readable)

    @classmethod
    def open(cls, port: str, baudrate: int, on_line: Callable[[str], None]) -> SerialTransport:
        """Open on the loop thread on purpose: it is quick, and a cancelled open in a worker thread
        would leak a port holding the exclusive lock. Raises LinkLost."""
        try:
            device = serial.Serial(port, baudrate, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkLost(f"cannot open {port}: {exc}") from exc
        return cls(device, on_line)

    @property
    def is_open(self) -> bool:
        return not self.lost.done()

    def write_line(self, line: str) -> None:
        """Queue one line and return at once; raises LinkLost if the port is gone."""
        if not self.is_open:
            raise LinkLost(str(self.lost.result()))
        log.debug("send: %s", line)
        waiting = bool(self._outbox)  # if so, the writer callback is already armed
        self._outbox += line.encode("ascii", errors="replace") + b"\n"
        if not waiting:
            self._flush()
        if not self.is_open:
            raise LinkLost(str(self.lost.result()))

    def close(self) -> None:
        self._fail("closed")
        try:
            self._serial.close()
        except (serial.SerialException, OSError) as exc:  # a vanished device may refuse even this
            log.debug("closing the port failed: %s", exc)

    def _flush(self) -> None:
        try:
            written = self._serial.write(bytes(self._outbox)) or 0  # write_timeout=0: never blocks
        except (serial.SerialException, OSError) as exc:
            self._fail(f"write failed: {exc}")
            return
        del self._outbox[:written]
        if self._outbox:
            self._loop.add_writer(self._serial.fileno(), self._flush)
        else:
            self._loop.remove_writer(self._serial.fileno())

    def _on_readable(self) -> None:
        try:
            data = self._serial.read(self._serial.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            self._fail(f"read failed: {exc}")
            return
        for line in self._splitter.feed(data):
            log.debug("recv: %s", line)
            self._on_line(line)
            if not self.is_open:  # the handler closed us
                return

    def _fail(self, reason: str) -> None:
        if self.lost.done():
            return
        self._loop.remove_reader(self._serial.fileno())
        self._loop.remove_writer(self._serial.fileno())
        self._outbox.clear()
        self.lost.set_result(reason)
