"""Logging: plain lines for journald, a timeline for the demo, and secrets masked everywhere."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

MASK = "********"


class SecretMask(logging.Filter):
    """Replaces secret values wherever they would appear in a record's final message.

    The code never logs a secret on purpose; this is the net under a library that might
    (an exception text quoting a URL or a header).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
        if masked != message or record.exc_info:
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                for secret in self.secrets:
                    text = text.replace(secret, MASK)
                masked = f"{masked}\n{text}"
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = masked, None
        return True


class TimelineFormatter(logging.Formatter):
    """`+12.3s  message`: seconds since start, for reading a run as a story."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        elapsed = time.monotonic() - self.start
        marker = {logging.WARNING: "!", logging.ERROR: "✗", logging.CRITICAL: "✗"}.get(record.levelno, " ")
        return f"{elapsed:+7.1f}s {marker} {super().format(record)}"


def setup_logging(level: str, secrets: Iterable[str] = (), timeline: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr if not timeline else sys.stdout)
    if timeline:
        handler.setFormatter(TimelineFormatter())
    else:
        # journald adds its own timestamp; the level and logger name are what a reader needs.
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretMask(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (HTTP requests, paho internals) only when debugging.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
