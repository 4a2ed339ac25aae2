"""What inspections cost: the month's calls counted and persisted, the budget, the free allowance."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.detection.client import GadgetClient
from agent.detection.context import PrintKey
from agent.detection.timing import DetectionTiming
from agent.detection.usage import BUDGET_ERROR, FREE_USAGE_ERROR, ROLLOVER_MARGIN_S, UsageMeter
from agent.detection.verdict import DetectionError
from agent.settings import ConfigError, load_settings
from agent.store import JsonRecord
from sim.frames import render_frame
from sim.gadget_service import GadgetStandIn

KEY = "lg-test-key-usage-77"
TIMING = DetectionTiming(first_success_retry_s=0.25, interval_floor_s=0.5)
CLEAN = render_frame(0.5, None, width=320, height=240)
NOV_20 = datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp()
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


class Clock:
    """Wall time the test moves: month boundaries without waiting a month."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def record(tmp_path: Path) -> JsonRecord:
    return JsonRecord(tmp_path / "gadget-usage.json")


@pytest.fixture
def service() -> Iterator[GadgetStandIn]:
    with GadgetStandIn(api_key=KEY, interval=2) as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(NOV_20)


@pytest.fixture
async def client(service: GadgetStandIn, record: JsonRecord, clock: Clock) -> AsyncIterator[GadgetClient]:
    gadget = GadgetClient(
        service.base_url, KEY, timing=TIMING, usage=UsageMeter(record, budget=3, clock=clock), clock=clock
    )
    await gadget.open_context(PrintKey("benchy.gcode"))
    yield gadget
    await gadget.aclose()


def test_calls_are_counted_per_month_and_survive_a_restart(record: JsonRecord, clock: Clock) -> None:
    meter = UsageMeter(record, clock=clock)
    for _ in range(3):
        meter.count_call()
    assert UsageMeter(record, clock=clock).calls == 3  # the agent restarted
    clock.now = DEC_1
    assert meter.calls == 0
    assert UsageMeter(record, clock=clock).calls == 0  # a new month starts from zero


def test_spreading_makes_the_calls_left_last_the_month(clock: Clock) -> None:
    meter = UsageMeter(budget=100, spread_hours_per_day=6, clock=clock)
    # 11.5 days left, a quarter of them printing, 100 calls: one call every 2484 s.
    assert meter.spread_interval_s() == pytest.approx((DEC_1 - NOV_20) / 4 / 100)
    assert UsageMeter(budget=100, clock=clock).spread_interval_s() == 0.0  # asked for no spreading


async def test_spreading_lengthens_the_interval(service: GadgetStandIn, clock: Clock) -> None:
    meter = UsageMeter(budget=1000, spread_hours_per_day=1, clock=clock)
    gadget = GadgetClient(service.base_url, KEY, timing=TIMING, usage=meter, clock=clock)
    verdict = await gadget.process(CLEAN)
    await gadget.aclose()
    # 11.5 days left, one hour of printing each, 999 calls left: far longer than the service's 2 s.
    assert verdict.next_interval_s == pytest.approx((DEC_1 - NOV_20) / 24 / 999)


def test_spreading_needs_a_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYERGUARD_SECRETS_DIR", str(tmp_path / "none"))
    config = tmp_path / "layerguard.toml"
    config.write_text("[detection]\nbudget_spread_hours_per_day = 4\n")
    with pytest.raises(ConfigError, match=r"^detection\.budget_spread_hours_per_day: .*monthly_budget"):
        load_settings(config)
    config.write_text("[detection]\nmonthly_budget = -1\n")
    with pytest.raises(ConfigError, match=r"^detection\.monthly_budget:"):
        load_settings(config)


async def test_the_budget_stops_inspections_until_the_next_month(
    service: GadgetStandIn, client: GadgetClient, clock: Clock
) -> None:
    for _ in range(3):
        await client.process(CLEAN)
    with pytest.raises(DetectionError) as caught:
        await client.process(CLEAN)
    error = caught.value
    assert (error.error_type, error.stopped) == (BUDGET_ERROR, True)
    assert error.retry_after_s == DEC_1 + ROLLOVER_MARGIN_S - NOV_20 and "2026-12-01" in error.message
    assert len(service.calls) == 4  # Create Context and three Process calls, no fourth
    clock.now = DEC_1
    await client.process(CLEAN)
    assert client.usage.calls == 1


async def test_every_process_request_counts_even_a_failed_one(
    service: GadgetStandIn, client: GadgetClient
) -> None:
    service.inject("OE_INTERNAL_ERROR")
    with pytest.raises(DetectionError):
        await client.process(CLEAN)
    await client.process(CLEAN)
    assert client.usage.calls == 2


async def test_the_free_allowance_stops_until_the_next_month_whatever_the_print(
    service: GadgetStandIn, client: GadgetClient, clock: Clock
) -> None:
    service.inject(FREE_USAGE_ERROR)
    errors = []
    for _ in range(2):
        with pytest.raises(DetectionError) as caught:
            await client.process(CLEAN)
        errors.append(caught.value)
        await client.open_context(PrintKey("next-print.gcode"))  # a new context does not help
    assert {(e.error_type, e.stopped, e.retry_after_s) for e in errors} == {
        (FREE_USAGE_ERROR, True, DEC_1 + ROLLOVER_MARGIN_S - NOV_20)
    }
    assert [c.endpoint for c in service.calls].count("process") == 1  # the repeat stayed local
    clock.now = DEC_1 + 1
    await client.process(CLEAN)
    assert client.usage.calls == 1
