"""One allowance, several agents: the month's calls of every printer's agent on a Pi counted
together in one locked file, and `detection.monthly_budget` capping the Pi or one printer."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from agent.detection.pi_usage import PI_USAGE_FILE, PiUsage
from agent.detection.usage import BUDGET_ERROR, UsageMeter
from agent.detection.verdict import DetectionError
from agent.store import JsonRecord
from sim.counting_agents import MONTH, run_counters

NOV_20 = datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp()
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def meter(
    directory: Path, printer: str, clock: Callable[[], float], budget: int = 0, scope: str = "pi"
) -> UsageMeter:
    return UsageMeter(
        JsonRecord(directory / printer / "gadget-usage.json"),
        budget=budget,
        clock=clock,
        pi=partial(PiUsage, directory, printer),
        scope=scope,  # type: ignore[arg-type]
    )


def test_concurrent_agents_lose_no_call(tmp_path: Path) -> None:
    assert run_counters(tmp_path, printers=4, calls=150)[0] == [150] * 4
    record = json.loads((tmp_path / PI_USAGE_FILE).read_text())
    assert record == {"month": MONTH, "calls": 600, "printers": {f"printer-{n}": 150 for n in range(4)}}


def test_concurrent_agents_never_pass_the_pis_budget(tmp_path: Path) -> None:
    counted, _ = run_counters(tmp_path, printers=4, calls=100, limit=250)
    assert sum(counted) == 250
    record = json.loads((tmp_path / PI_USAGE_FILE).read_text())
    assert record["calls"] == 250 == sum(record["printers"].values())


def test_the_budget_caps_the_pi_and_each_printer_keeps_its_own_count(tmp_path: Path) -> None:
    now = [NOV_20]  # wall time the test moves: a month boundary without waiting for it

    def clock() -> float:
        return now[0]

    left, right = meter(tmp_path, "left", clock, budget=3), meter(tmp_path, "right", clock, budget=3)
    left.count_call()
    left.count_call()
    right.count_call()
    assert (left.calls, right.calls, left.pi_calls, right.pi_calls) == (2, 1, 3, 3)
    for stopped in (left, right):
        with pytest.raises(DetectionError) as err:
            stopped.check()
        assert err.value.error_type == BUDGET_ERROR and err.value.stopped
        assert "3 calls made by this Pi's printers together" in str(err.value)
    # Between one agent's check and its call, another took the last one: that call does not go out.
    late = meter(tmp_path, "late", clock, budget=4)
    late.check()
    left.budget = 4
    left.count_call()
    with pytest.raises(DetectionError, match="4 calls made by this Pi's printers together"):
        late.count_call()
    assert (late.calls, late.pi_calls) == (0, 4)
    # A new month: every count starts again.
    now[0] = DEC_1
    assert (left.calls, left.pi_calls) == (0, 0)
    right.count_call()
    assert (right.calls, left.pi_calls) == (1, 1)


def test_a_printer_scoped_budget_counts_only_the_printers_own_calls(tmp_path: Path) -> None:
    def clock() -> float:
        return NOV_20

    left = meter(tmp_path, "left", clock, budget=2, scope="printer")
    right = meter(tmp_path, "right", clock, budget=2, scope="printer")
    for agent in (left, right, left, right):
        agent.check()
        agent.count_call()
    assert (left.calls, right.calls, left.pi_calls) == (2, 2, 4)
    with pytest.raises(DetectionError, match="2 calls made by this printer"):
        left.check()


def test_an_unusable_shared_file_leaves_the_printers_own_count_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the shared folder should be")
    agent = UsageMeter(
        JsonRecord(tmp_path / "own.json"), clock=lambda: NOV_20, pi=partial(PiUsage, blocked, "left")
    )
    with caplog.at_level(logging.WARNING):
        agent.count_call()
        agent.count_call()
    assert (agent.calls, agent.pi_calls) == (2, 2), "the Pi's count falls back to the printer's own"
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1, "a lasting condition is told once"
    assert told[0].startswith(f"The Pi's call count ({blocked / PI_USAGE_FILE}): ")
    assert told[0].endswith("; counting this printer's calls only")


def test_the_pis_count_starts_from_the_count_of_an_agent_upgraded_mid_month(tmp_path: Path) -> None:
    """Before several printers, the agent counted alone: the Pi's count takes that over."""
    before = JsonRecord(tmp_path / "left" / "gadget-usage.json")
    before.save({"month": "2026-11", "calls": 40})
    left = meter(tmp_path, "left", lambda: NOV_20, budget=42)
    assert (left.calls, left.pi_calls) == (40, 40), "no Pi count yet: the agent's own stands for it"
    left.count_call()
    right = meter(tmp_path, "right", lambda: NOV_20, budget=42)
    right.count_call()
    assert (left.calls, right.calls, right.pi_calls) == (41, 1, 42)
    assert json.loads((tmp_path / PI_USAGE_FILE).read_text())["printers"] == {"left": 41, "right": 1}
    with pytest.raises(DetectionError, match="42 calls made by this Pi's printers together"):
        left.check()
