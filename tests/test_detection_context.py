"""A print's context kept in the state directory: continued after a restart, replaced when it should be."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.detection.client import GadgetClient
from agent.detection.context import PrintKey
from agent.detection.timing import DetectionTiming
from agent.detection.verdict import DetectionError
from agent.store import JsonRecord
from sim.frames import render_frame
from sim.gadget_service import GadgetStandIn, Reply

KEY = "lg-test-key-context-42"
TIMING = DetectionTiming(first_success_retry_s=0.25, interval_floor_s=0.5, context_max_age_s=3600)
CLEAN = render_frame(0.5, None, width=320, height=240)
INTERVAL = 30  # long, so that the wait a restarted client returns is clearly measurable

Factory = Callable[..., GadgetClient]


@pytest.fixture
def service() -> Iterator[GadgetStandIn]:
    with GadgetStandIn(api_key=KEY, interval=INTERVAL) as running:
        yield running


@pytest.fixture
def record(tmp_path: Path) -> JsonRecord:
    return JsonRecord(tmp_path / "state" / "gadget-context.json")


@pytest.fixture
async def agent_run(service: GadgetStandIn, record: JsonRecord) -> AsyncIterator[Factory]:
    """Makes clients sharing one state directory: each is the agent after a restart."""
    made: list[GadgetClient] = []

    def make(clock: Callable[[], float] = time.time) -> GadgetClient:
        made.append(GadgetClient(service.base_url, KEY, timing=TIMING, context_record=record, clock=clock))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


def endpoints(service: GadgetStandIn) -> list[str | None]:
    return [call.endpoint for call in service.calls]


async def test_a_restart_mid_print_continues_the_context_and_its_pace(
    service: GadgetStandIn, agent_run: Factory
) -> None:
    before = agent_run()
    assert await before.open_context(PrintKey("benchy.gcode")) == 0.0
    await before.process(CLEAN)
    after = agent_run()  # the agent restarted; the same print is found running
    wait_s = await after.open_context(PrintKey("benchy.gcode"))
    assert INTERVAL - 5 < wait_s <= INTERVAL  # the interval still runs from the last call
    await after.process(CLEAN)
    assert endpoints(service) == ["createcontext", "process", "process"]
    assert service.calls[2].context_id == service.calls[1].context_id


async def test_an_unnamed_print_is_found_again_by_its_sd_size_and_position(
    service: GadgetStandIn, agent_run: Factory
) -> None:
    # Klipper and OctoPrint's printer name the file when it opens, never when it is found running.
    before = agent_run()
    await before.open_context(PrintKey("cube.gcode", sd_size=5000, sd_position=40))
    before.note_position(2000)
    await before.process(CLEAN)  # keeps the position with the context
    after = agent_run()
    wait_s = await after.open_context(PrintKey(None, sd_size=5000, sd_position=2300))
    assert INTERVAL - 5 < wait_s <= INTERVAL
    assert service.contexts_created == 1


@pytest.mark.parametrize(
    "found",
    [
        PrintKey(None, sd_size=4999, sd_position=2300),  # another file
        PrintKey(None, sd_size=5000, sd_position=100),  # the same file printed again
        PrintKey("vase.gcode", sd_size=5000, sd_position=2300),  # named otherwise
        PrintKey(None),  # nothing to tell it by
    ],
)
async def test_a_print_not_shown_to_be_the_same_gets_a_new_context_on_the_kept_schedule(
    service: GadgetStandIn, agent_run: Factory, found: PrintKey
) -> None:
    before = agent_run()
    await before.open_context(PrintKey("cube.gcode", sd_size=5000, sd_position=40))
    before.note_position(2000)
    await before.process(CLEAN)
    wait_s = await agent_run().open_context(found)
    assert service.contexts_created == 2
    assert INTERVAL - 5 < wait_s <= INTERVAL  # a mistaken "new print" is never asked about early


async def test_a_record_from_before_sd_positions_were_kept_is_still_continued(
    service: GadgetStandIn, agent_run: Factory, record: JsonRecord
) -> None:
    before = agent_run()
    await before.open_context(PrintKey("benchy.gcode"))
    old = record.load()
    assert old is not None
    record.save({k: v for k, v in old.items() if k not in ("sd_size", "sd_position")})
    await agent_run().open_context(PrintKey("benchy.gcode"))
    assert service.contexts_created == 1


async def test_a_call_whose_answer_never_came_back_still_holds_the_pace(
    service: GadgetStandIn, agent_run: Factory
) -> None:
    now = [1_000_000.0]
    before = agent_run(clock=lambda: now[0])
    await before.open_context(PrintKey("benchy.gcode"))
    await before.process(CLEAN)
    now[0] += INTERVAL
    service.inject(Reply.stall(10))
    call = asyncio.create_task(before.process(CLEAN))
    await asyncio.to_thread(service.wait_for_calls, 3, 30)  # it reached the service...
    call.cancel()  # ...and the agent stopped before the answer came
    with contextlib.suppress(asyncio.CancelledError):
        await call
    now[0] += 1
    wait_s = await agent_run(clock=lambda: now[0]).open_context(PrintKey("benchy.gcode"))
    assert wait_s == INTERVAL - 1


async def test_a_continued_context_stays_on_its_fallback(service: GadgetStandIn, agent_run: Factory) -> None:
    before = agent_run()
    await before.open_context(PrintKey("benchy.gcode"))
    service.inject(Reply.raw(503), region="primary")
    with pytest.raises(DetectionError, match="SERVER_ERROR"):
        await before.process(CLEAN)
    after = agent_run()
    await after.open_context(PrintKey("benchy.gcode"))
    await after.process(CLEAN)
    assert service.calls[-1].region == "fallback"


async def test_a_new_print_gets_a_new_context(service: GadgetStandIn, agent_run: Factory) -> None:
    client = agent_run()
    await client.open_context(PrintKey("benchy.gcode"))
    await client.process(CLEAN)
    await agent_run().open_context(PrintKey("vase.gcode"))
    assert endpoints(service) == ["createcontext", "process", "createcontext"]


async def test_an_ended_print_is_not_continued(
    service: GadgetStandIn, agent_run: Factory, record: JsonRecord
) -> None:
    client = agent_run()
    await client.open_context(PrintKey("benchy.gcode"))
    client.end_context()
    assert not record.path.exists()
    await agent_run().open_context(PrintKey("benchy.gcode"))  # printed again: a new print
    assert service.contexts_created == 2


async def test_an_expired_context_is_not_continued(service: GadgetStandIn, agent_run: Factory) -> None:
    await agent_run().open_context(PrintKey("benchy.gcode"))
    later = agent_run(clock=lambda: time.time() + TIMING.context_max_age_s + 1)
    assert await later.open_context(PrintKey("benchy.gcode")) == 0.0
    assert service.contexts_created == 2


async def test_a_continued_context_the_service_forgot_is_replaced(
    service: GadgetStandIn, agent_run: Factory, record: JsonRecord
) -> None:
    before = agent_run()
    await before.open_context(PrintKey("benchy.gcode"))
    await before.process(CLEAN)
    service.forget_contexts()  # e.g. the service lost it while the agent was down
    after = agent_run()
    await after.open_context(PrintKey("benchy.gcode"))
    with pytest.raises(DetectionError, match="OE_BAD_ARGS"):
        await after.process(CLEAN)
    await after.process(CLEAN)
    assert endpoints(service) == ["createcontext", "process", "process", "createcontext", "process"]
    saved = record.load()
    assert saved is not None and saved["context_id"] == service.calls[-1].context_id


@pytest.mark.parametrize(
    "content", ["not json", "[1, 2]", json.dumps({"context_id": "x"}), json.dumps({"file": 3})]
)
async def test_a_damaged_record_means_a_new_context(
    service: GadgetStandIn, agent_run: Factory, record: JsonRecord, content: str
) -> None:
    record.path.parent.mkdir(parents=True)
    record.path.write_text(content)
    assert await agent_run().open_context(PrintKey("benchy.gcode")) == 0.0
    assert service.contexts_created == 1


def test_the_record_is_replaced_atomically(record: JsonRecord) -> None:
    record.save({"a": 1})
    record.save({"a": 2})
    assert record.load() == {"a": 2}
    assert [p.name for p in record.path.parent.iterdir()] == [record.path.name]  # no temporary left
