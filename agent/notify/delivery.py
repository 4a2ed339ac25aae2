"""Getting one message to every service: off the event loop, bounded in time, retried, and told.

Each attempt is a child process (`agent.notify.send`, which explains why) that is killed at
`attempt_s`. A failed attempt is retried with doubling waits until `retry_for_s` has passed; then
the failure is logged once and the status says `error: <label>` until a later message to that
service gets through. Messages reach each service in order. Nothing here is awaited by the
inspection loop: the sink hands messages over and returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.notify.message import Message, mask
from agent.notify.send import check_request, send_request
from agent.notify.services import label, url_secrets

log = logging.getLogger(__name__)

ATTEMPT_S = 30.0
RETRY_FOR_S = 300.0
FIRST_RETRY_S = 2.0
MAX_RETRY_S = 60.0
MAX_OUTPUT = 64 * 1024  # of a child's stdout/stderr kept


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    url: str


class Delivery:
    def __init__(
        self,
        urls: list[str],
        on_status: Callable[[str], None] = lambda status: None,
        attempt_s: float = ATTEMPT_S,
        retry_for_s: float = RETRY_FOR_S,
        first_retry_s: float = FIRST_RETRY_S,
        quiet: bool = False,  # the caller reports each failure itself (`notify-test`)
    ) -> None:
        self.quiet = quiet
        self.targets = [Target(label(url), url) for url in urls]
        self.secrets = [secret for url in urls for secret in url_secrets(url)]
        self.on_status = on_status
        self.attempt_s, self.retry_for_s, self.first_retry_s = attempt_s, retry_for_s, first_retry_s
        self.failing: dict[Target, str] = {}  # why its last message was lost
        self._locks: dict[Target, asyncio.Lock] = {}

    @property
    def status(self) -> str:
        """The state's `notify` field: `ok`, or `error: <label>` for the services last lost."""
        return f"error: {', '.join(sorted({t.label for t in self.failing}))}" if self.failing else "ok"

    def failure(self, service_label: str) -> str | None:
        """Why the last message to the service(s) with this label was lost, if it was."""
        return next((why for t, why in self.failing.items() if t.label == service_label), None)

    async def check(self) -> None:
        """Set aside the URLs Apprise does not understand (logged, and shown in the status)."""
        if not self.targets:
            return
        try:
            out, _, _ = await self._child(check_request([t.url for t in self.targets]), self.attempt_s)
            invalid = set(json.loads(out.splitlines()[-1])["invalid"])
        except (TimeoutError, OSError, ValueError, IndexError, KeyError) as exc:
            log.warning("Could not check notify.urls: %s", exc or "no answer")
            return
        for index in sorted(invalid):
            target = self.targets[index]
            log.error("notify.urls: %s: Apprise does not understand this URL; it is skipped", target.label)
            self.failing[target] = "invalid URL"
        self.targets = [t for i, t in enumerate(self.targets) if i not in invalid]
        if invalid:
            self.on_status(self.status)

    async def send(self, message: Message, files: Mapping[str, bytes]) -> list[tuple[str, bool]]:
        """Deliver to every service at once; returns (label, delivered) per service."""
        targets = list(self.targets)
        results = await asyncio.gather(*(self._send_one(t, message, files) for t in targets))
        return [(t.label, ok) for t, ok in zip(targets, results, strict=True)]

    async def _send_one(self, target: Target, message: Message, files: Mapping[str, bytes]) -> bool:
        """In order per service (a warning never arrives after the pause it led to); a service
        already known to be failing gets one attempt per message rather than another retry window."""
        async with self._locks.setdefault(target, asyncio.Lock()):
            retry_for_s = 0.0 if target in self.failing else self.retry_for_s
            return await self._attempts(target, message, files, retry_for_s)

    async def _attempts(
        self, target: Target, message: Message, files: Mapping[str, bytes], retry_for_s: float
    ) -> bool:
        give_up_at = time.monotonic() + retry_for_s
        wait_s = self.first_retry_s
        attempts = 0
        while True:
            attempts += 1
            why = await self._attempt(target, message, files)
            if why is None:
                self._note(target, None, message, attempts)
                return True
            if attempts == 1 and retry_for_s and not self.quiet:
                log.warning(
                    "Notification %s to %s failed (%s); retrying for up to %.0f s",
                    message.kind,
                    target.label,
                    why,
                    retry_for_s,
                )
            if time.monotonic() + wait_s > give_up_at:
                self._note(target, why, message, attempts)
                return False
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, MAX_RETRY_S)

    async def _attempt(self, target: Target, message: Message, files: Mapping[str, bytes]) -> str | None:
        """None when delivered, else why not."""
        request = send_request(target.url, message, files, self.attempt_s)
        try:
            out, err, code = await self._child(request, self.attempt_s)
        except TimeoutError:
            return f"no answer within {self.attempt_s:g} s"
        except OSError as exc:  # no process to be had (memory, process limit): try again later
            return f"cannot start the sender: {exc.strerror or exc}"
        try:
            if json.loads(out.splitlines()[-1])["delivered"]:
                return None
        except (ValueError, IndexError, KeyError):
            pass
        lines = err.decode(errors="replace").strip().splitlines()
        why = lines[-1][:200] if lines else f"the sender exited with status {code}"
        return mask(why, self.secrets)

    async def _child(self, request: bytes, timeout_s: float) -> tuple[bytes, bytes, int | None]:
        """Run `agent.notify.send` with `request` on stdin; killed at `timeout_s` (TimeoutError)."""
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent.notify.send",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout_s):
                out, err = await child.communicate(request)
        finally:
            if child.returncode is None:  # timed out, or the agent is stopping
                child.kill()
                await child.wait()
        return out[-MAX_OUTPUT:], err[-MAX_OUTPUT:], child.returncode

    def _note(self, target: Target, why: str | None, message: Message, attempts: int) -> None:
        before = self.status
        if why is None:
            if self.failing.pop(target, None) is not None:
                log.info("Notifications to %s get through again", target.label)
        else:
            log.log(
                logging.DEBUG if self.quiet else logging.ERROR,
                "Notification %s to %s LOST after %d attempt(s): %s",
                message.kind,
                target.label,
                attempts,
                why,
            )
            self.failing[target] = why
        if self.status != before:
            self.on_status(self.status)
