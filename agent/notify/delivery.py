"""Getting one message to every service: off the event loop, bounded in time, retried, and told.

Each attempt runs in a thread of its own small pool and is abandoned after `attempt_s` (the
service's socket timeouts are set within it, so the thread ends soon after). A failed attempt is
retried with doubling waits until `retry_for_s` has passed; then the failure is logged once and
the service's status says `error: <label>` until a later message gets through. Nothing here is
awaited by the inspection loop: the sink hands messages over and returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agent.notify.message import Message
from agent.notify.services import Service

log = logging.getLogger(__name__)

ATTEMPT_S = 30.0
RETRY_FOR_S = 300.0
FIRST_RETRY_S = 2.0
MAX_RETRY_S = 60.0


class Delivery:
    def __init__(
        self,
        services: list[Service],
        on_status: Callable[[str], None] = lambda status: None,
        attempt_s: float = ATTEMPT_S,
        retry_for_s: float = RETRY_FOR_S,
        first_retry_s: float = FIRST_RETRY_S,
    ) -> None:
        self.services = services
        self.on_status = on_status
        self.attempt_s, self.retry_for_s, self.first_retry_s = attempt_s, retry_for_s, first_retry_s
        self.failing: dict[str, str] = {}  # label -> why its last message was lost
        # One thread per service: a hung service can hold up only its own deliveries.
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(services)), thread_name_prefix="notify")

    @property
    def status(self) -> str:
        """The state's `notify` field: `ok`, or `error: <label>` for the services last lost."""
        return f"error: {', '.join(sorted(self.failing))}" if self.failing else "ok"

    async def send(self, message: Message, jpeg: bytes | None) -> list[tuple[str, bool]]:
        """Deliver to every service at once; returns (label, delivered) per service."""
        results = await asyncio.gather(*(self._send_one(s, message, jpeg) for s in self.services))
        return [(s.label, ok) for s, ok in zip(self.services, results, strict=True)]

    async def _send_one(self, service: Service, message: Message, jpeg: bytes | None) -> bool:
        give_up_at = time.monotonic() + self.retry_for_s
        wait_s = self.first_retry_s
        attempts = 0
        while True:
            attempts += 1
            why = await self._attempt(service, message, jpeg)
            if why is None:
                self._note(service.label, None, message, attempts)
                return True
            if attempts == 1 and self.retry_for_s:
                log.warning(
                    "Notification %s to %s failed (%s); retrying for up to %.0f s",
                    message.kind,
                    service.label,
                    why,
                    self.retry_for_s,
                )
            if time.monotonic() + wait_s > give_up_at:
                self._note(service.label, why, message, attempts)
                return False
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, MAX_RETRY_S)

    async def _attempt(self, service: Service, message: Message, jpeg: bytes | None) -> str | None:
        """None when delivered, else why not."""
        loop = asyncio.get_running_loop()
        m = message
        call = loop.run_in_executor(self._pool, service.send, m.title, m.body, jpeg, m.alert)
        call.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved if abandoned
        try:
            async with asyncio.timeout(self.attempt_s):
                delivered = await asyncio.shield(call)
        except TimeoutError:
            return f"no answer within {self.attempt_s:g} s"
        except Exception as exc:  # a plugin bug must not end the agent's deliveries
            return f"{type(exc).__name__}: {exc}"
        return None if delivered else "the service refused it or could not be reached"

    def _note(self, label: str, why: str | None, message: Message, attempts: int) -> None:
        before = self.status
        if why is None:
            if self.failing.pop(label, None) is not None:
                log.info("Notifications to %s get through again", label)
        else:
            log.error(
                "Notification %s to %s LOST after %d attempts over %.0f s: %s",
                message.kind,
                label,
                attempts,
                self.retry_for_s,
                why,
            )
            self.failing[label] = why
        if self.status != before:
            self.on_status(self.status)

    def close(self) -> None:
        """Let go of the threads; one still stuck in a service ends with its socket timeout."""
        self._pool.shutdown(wait=False, cancel_futures=True)
