"""Quiet logs: a month of a broken camera is a handful of lines; a burst is one line and a count.
Time is an injected clock, so a month passes in a fraction of a second."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hardware import quiet_log
from hardware.quiet_log import BURST_WINDOW_S, BurstLog, LastingCondition, duration

DAY = 86400.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Journal:
    """A logger that writes as the agent does under systemd (journald adds the time), on a clock
    the test moves."""

    logger: logging.Logger
    stream: io.StringIO
    clock: FakeClock

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def journal() -> Iterator[Journal]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("quiet-log-test")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield Journal(logger, stream, FakeClock())
    logger.handlers.clear()


def test_a_month_long_camera_outage_fits_in_a_few_kilobytes(
    journal: Journal,
) -> None:
    clock = journal.clock
    camera = LastingCondition(journal.logger, "Camera", clock=clock)
    for _ in range(int(30 * DAY / 5)):  # a capture every 5 s, as the inspection loop retries
        camera.failed("http://cam.local/snapshot: connection refused")
        clock.now += 5
    camera.recovered()
    lines = journal.lines()
    size = len(journal.stream.getvalue().encode())
    print(f"30 days of a broken camera: {len(lines)} lines, {size} bytes")
    assert len(lines) == 35 and size < 5000
    assert lines[0] == "WARNING quiet-log-test: Camera: http://cam.local/snapshot: connection refused"
    assert lines[1].startswith("WARNING quiet-log-test: Camera: still failing after 1 min (13 attempts)")
    reminders = [line.split("after ")[1].split(" (")[0] for line in lines[1:-1]]
    assert reminders[:5] == ["1 min", "10 min", "1 h", "6 h", "1 d 6 h"]
    assert reminders[-1] == "29 d 6 h"
    assert lines[-1] == "INFO quiet-log-test: Camera: working again after 30 d (518400 failed attempts)"


def test_a_new_reason_is_told_at_once_and_a_new_episode_starts_afresh(
    journal: Journal,
) -> None:
    clock = journal.clock
    detection = LastingCondition(journal.logger, "Detection retrying", clock=clock)
    detection.recovered()  # nothing was wrong: nothing to say
    detection.failed("timeout")
    clock.now += 5
    detection.failed("timeout")
    detection.failed("HTTP 502")
    clock.now += 20
    detection.recovered()
    detection.failed("timeout")
    assert journal.lines() == [
        "WARNING quiet-log-test: Detection retrying: timeout",
        "WARNING quiet-log-test: Detection retrying: HTTP 502",
        "INFO quiet-log-test: Detection retrying: working again after 25 s (3 failed attempts)",
        "WARNING quiet-log-test: Detection retrying: timeout",
    ]


def test_a_burst_is_its_first_line_and_a_count(journal: Journal) -> None:
    clock = journal.clock
    burst = BurstLog(journal.logger, clock=clock)
    for i in range(500):
        burst.log_line(logging.WARNING, "MQTT: ignoring monitoring command %r: expected ON or OFF", f"X{i}")
        clock.now += 0.001
    burst.log_line(logging.INFO, "Ignoring command %s: the printer is %s", "pause", "idle")
    assert len(journal.lines()) == 2
    clock.now += BURST_WINDOW_S
    burst.flush()
    burst.flush()  # said once
    assert journal.lines() == [
        "WARNING quiet-log-test: MQTT: ignoring monitoring command 'X0': expected ON or OFF",
        "INFO quiet-log-test: Ignoring command pause: the printer is idle",
        "WARNING quiet-log-test: 499 more like \"MQTT: ignoring monitoring command 'X0': expected ON or OFF\""
        " in 10 s",
    ]
    burst.log_line(logging.INFO, "Ignoring command %s: the printer is %s", "resume", "idle")
    assert journal.lines()[-1] == "INFO quiet-log-test: Ignoring command resume: the printer is idle"


def test_a_flood_that_goes_on_gets_ever_longer_windows(journal: Journal) -> None:
    burst = BurstLog(journal.logger, clock=journal.clock)
    for _ in range(3 * 3600):  # a junk command every second for three hours
        burst.log_line(logging.INFO, "Ignoring command %s: the printer is %s", "pause", "idle")
        journal.clock.now += 1
    counts = [line.split(" in ")[-1] for line in journal.lines()[1:]]
    assert counts == ["10 s", "1 min", "10 min", "1 h", "1 h"]
    journal.clock.now += 3600
    burst.flush()  # the last window closes with its count; the next one has no repeat: over
    journal.clock.now += 3600
    burst.flush()
    burst.log_line(logging.INFO, "Ignoring command %s: the printer is %s", "resume", "idle")
    assert journal.lines()[-1] == "INFO quiet-log-test: Ignoring command resume: the printer is idle"
    assert len(journal.lines()) == 8


async def test_the_count_is_written_when_the_window_closes_on_the_event_loop(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The three lines below must fall in one window even if the thread is preempted between them on
    # a loaded machine (tens of ms); 1 s is far more, and the test waits for the close only once.
    monkeypatch.setattr(quiet_log, "BURST_WINDOW_S", 1.0)
    written = asyncio.Event()

    class Notify(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "more like" in record.getMessage():
                written.set()

    journal.logger.addHandler(Notify())
    burst = BurstLog(journal.logger)
    for _ in range(3):
        burst.log_line(logging.INFO, "Monitoring switched on")
    async with asyncio.timeout(30):
        await written.wait()
    assert journal.lines()[-1].startswith('INFO quiet-log-test: 2 more like "Monitoring switched on"')


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (DAY * 2 + 7200, "2 d 2 h"),
    ],
)
def test_durations_read_like_a_person_says_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text
