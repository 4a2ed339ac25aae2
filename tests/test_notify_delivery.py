"""Delivery over real protocols on loopback: JSON and form webhooks, SMTP; dead, slow, invalid."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Iterator

import pytest

from agent.notify.delivery import Delivery
from agent.notify.message import Message
from agent.notify.services import SNAPSHOT, InvalidUrl, open_service
from sim.frames import render_frame
from sim.loopback import free_port
from sim.mail_server import MailServer
from sim.webhook_server import WebhookServer

JPEG = render_frame(0.4, 0.2, 320, 240)
FILES = {SNAPSHOT: JPEG}
MESSAGE = Message("failure_paused", "mk3: print PAUSED, failure detected", "benchy.gcode, 40 % done\nPaused.")


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def mail() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


async def test_webhooks_and_email_receive_the_message_with_the_jpeg(
    hook: WebhookServer, mail: MailServer
) -> None:
    urls = [hook.url("json", "/j"), hook.url("form", "/f"), mail.url()]
    delivery = Delivery(urls)
    results = await delivery.send(MESSAGE, FILES)
    assert results == [("json://127.0.0.1", True), ("form://127.0.0.1", True), ("mailto://127.0.0.1", True)]
    assert delivery.status == "ok"
    by_path = {r.path: r for r in hook.wait_for(2)}
    for received in by_path.values():
        assert received.title == MESSAGE.title and received.body == MESSAGE.body
        assert received.kind == "failure"
        assert received.attachments == {"layerguard.jpg": JPEG}
    assert set(by_path) == {"/j", "/f"}
    (message,) = mail.wait_for(1)
    assert message.subject == MESSAGE.title and "benchy.gcode, 40 % done" in message.text
    assert message.to == ["maker@example.com"]
    assert message.attachments == {"layerguard.jpg": JPEG}


async def test_messages_reach_a_service_in_the_order_they_were_sent(hook: WebhookServer) -> None:
    delivery = Delivery([hook.url()])
    first, second = (Message(kind, kind, "body") for kind in ("failure_warning", "failure_paused"))
    await asyncio.gather(delivery.send(first, {}), delivery.send(second, FILES))
    assert [r.title for r in hook.wait_for(2)] == ["failure_warning", "failure_paused"]


async def test_a_dead_service_is_retried_with_backoff_then_logged_once_and_shown(
    hook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"json://127.0.0.1:{free_port()}/hook"
    statuses: list[str] = []
    # 30 s per attempt: the child that sends imports Apprise first, over 5 s on a loaded machine.
    delivery = Delivery([dead, hook.url()], statuses.append, attempt_s=30, retry_for_s=1.5, first_retry_s=0.2)
    caplog.set_level(logging.INFO, logger="agent.notify")
    started = time.monotonic()
    results = await delivery.send(MESSAGE, FILES)
    assert results == [("json://127.0.0.1", False), ("json://127.0.0.1", True)]
    # Bounded: 1.5 s of retries, each attempt a refused connection (a child's start, seconds on a
    # loaded machine). Unbounded retries would never end: 90 s tells them apart.
    assert time.monotonic() - started < 90
    assert len(hook.wait_for(1)) == 1  # the live service got it once
    assert delivery.status == "error: json://127.0.0.1" and statuses == [delivery.status]
    lost = [r for r in caplog.records if "LOST" in r.getMessage()]
    assert len(lost) == 1 and "Connection error" in lost[0].getMessage()  # Apprise's own reason
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 1
    assert dead not in caplog.text  # only scheme and host


async def test_a_service_that_comes_back_clears_the_status(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.notify")
    with WebhookServer(status=503) as refusing:
        statuses: list[str] = []
        delivery = Delivery([refusing.url("form")], statuses.append, retry_for_s=0)
        assert await delivery.send(MESSAGE, FILES) == [("form://127.0.0.1", False)]
        assert "503" in (delivery.failure("form://127.0.0.1") or "")
        refusing.status = 200
        assert await delivery.send(MESSAGE, FILES) == [("form://127.0.0.1", True)]
    assert statuses == ["error: form://127.0.0.1", "ok"]
    assert "get through again" in caplog.text


async def test_a_slow_service_is_abandoned_at_the_deadline_without_blocking_the_loop() -> None:
    with WebhookServer(delay_s=60) as slow:
        # The child imports Apprise before it calls: on a loaded machine that alone takes seconds.
        delivery = Delivery([slow.url()], attempt_s=10, retry_for_s=0)
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        try:
            results = await delivery.send(MESSAGE, FILES)
        finally:
            ticker.cancel()
        elapsed = time.monotonic() - started
        assert slow.requests == 1  # it was reached, and is still answering when the child is killed
    assert results == [("json://127.0.0.1", False)]
    # Killed at attempt_s (10 s), not when the service answers (60 s): 40 s is room for the kill
    # and the child's start on a loaded machine, and still far from 60.
    assert elapsed < 40, "the attempt is killed at attempt_s, not when the service answers"
    # Whichever ends it first: the service's socket timeout (held within attempt_s) or the kill.
    assert re.search(r"no answer within 10 s|Connection error", delivery.failure("json://127.0.0.1") or "")
    # The loop kept running meanwhile: a send that held it would leave one gap of the attempt's
    # 10 s; scheduling on a loaded 2-core machine leaves gaps of a second at most.
    gaps = [later - earlier for earlier, later in itertools.pairwise([started, *ticks, started + elapsed])]
    assert max(gaps) < 5


def test_an_invalid_url_is_named_by_its_label_only() -> None:
    with pytest.raises(InvalidUrl, match=r"^bogus://example\.com: Apprise does not understand") as caught:
        open_service("bogus://example.com/sekrit-token-123", 5)
    assert "sekrit" not in str(caught.value)
