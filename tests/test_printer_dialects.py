"""The dialect-by-situation matrix of docs/printer.md: SerialPrinter against the virtual Marlin
(with and without host actions and auto-reports), Prusa MK3 and Klipper over a real pty."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_printer_link import Events, running, start_print

from hardware.printer.base import PauseFailed
from hardware.printer.dialects import DIALECTS
from hardware.printer.events import PrinterEventKind as K
from sim.virtual_printer import DEFAULT_FILE, VirtualPrinter

# name -> (virtual printer options, link options)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "marlin": ({"dialect": "marlin"}, {}),
    "marlin-park": ({"dialect": "marlin", "park_on_pause": True}, {}),
    "marlin-plain": ({"dialect": "marlin", "host_actions": False, "autoreport": False}, {}),
    "prusa": ({"dialect": "prusa"}, {}),
    "klipper": ({"dialect": "klipper"}, {"stall_s": 0.3}),
}
LINK = {"cool_down_after_s": 0.0}  # cooldown has its own test below


def dialect_of(case: str) -> str:
    return str(CASES[case][0]["dialect"])


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def vp(case: str) -> Iterator[VirtualPrinter]:
    options = CASES[case][0]
    with VirtualPrinter(print_duration_s=4.0, heat_duration_s=0.1, pause_delay_s=0.1, **options) as printer:
        yield printer


def link_options(case: str, **extra: Any) -> dict[str, Any]:
    return LINK | CASES[case][1] | extra


async def test_start_progress_finish(case: str, events: Events) -> None:
    with VirtualPrinter(print_duration_s=0.4, heat_duration_s=0.1, **CASES[case][0]) as vp:
        async with running(vp.port, events, **link_options(case)):
            connected = await events.wait_for(K.CONNECTED)
            vp.panel_start()
            await events.wait_for(K.FINISHED)
    assert connected.dialect == dialect_of(case)
    kinds = events.kinds()
    assert kinds[1] is K.PRINT_STARTED and kinds[-1] is K.FINISHED
    assert events.of(K.PRINT_STARTED)[0].file == DEFAULT_FILE
    progress = [event.progress or 0.0 for event in events.of(K.PROGRESS)]
    assert len(progress) >= 2 and progress == sorted(progress)
    if case == "prusa":  # M73's percentages win over bytes
        assert all(value % 10 == 0 for value in progress)


async def test_panel_pause_resume(case: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **link_options(case)):
        await start_print(vp, events)
        await vp.wait_for_async(lambda: vp.state == "printing", 2.0)
        vp.panel_pause()
        await events.wait_for(K.PAUSED)
        vp.panel_resume()
        await events.wait_for(K.RESUMED)
    assert K.UNKNOWN not in events.kinds()


async def test_panel_stop(case: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **link_options(case)):
        await start_print(vp, events)
        vp.panel_stop()
        cancelled = await events.wait_for(K.CANCELLED)
    assert cancelled.file == DEFAULT_FILE
    assert K.FINISHED not in events.kinds()


async def test_reset_mid_print(case: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **link_options(case)) as printer:
        await start_print(vp, events)
        vp.reset()
        error = await events.wait_for(K.ERROR)
        vp.panel_start()
        await events.wait_for(K.PRINT_STARTED, count=2)
        await printer.pause()  # the link renumbered and talks to the rebooted firmware
    assert "restarted" in error.message


async def test_unplug_and_replug(case: str, events: Events) -> None:
    with VirtualPrinter(print_duration_s=0.5, heat_duration_s=0.1, **CASES[case][0]) as vp:
        async with running(vp.port, events, **link_options(case)):
            await start_print(vp, events)
            vp.vanish()
            await events.wait_for(K.DISCONNECTED)
            vp.reappear()
            await events.wait_for(K.CONNECTED, count=2)
            finished = await events.wait_for(K.FINISHED)
    # Klipper never names the file it prints; the agent's lifecycle remembers it.
    assert finished.file == (None if case == "klipper" else DEFAULT_FILE)
    assert events.kinds().count(K.CONNECTED) == 2, "reopened once, when the device came back"
    assert K.CANCELLED not in events.kinds() and K.ERROR not in events.kinds()


async def test_kill(case: str, vp: VirtualPrinter, events: Events) -> None:
    reason = "Thermal Runaway, system stopped!"
    if case == "klipper":
        reason = "MCU 'mcu' shutdown: Thermal runaway"
    async with running(vp.port, events, **link_options(case)):
        await start_print(vp, events)
        vp.kill(reason)
        error = await events.wait_for(K.ERROR)
    assert reason in error.message
    assert K.DISCONNECTED not in events.kinds(), "a halted printer is no reason to reopen the port"
    assert events.kinds().count(K.ERROR) == 1, "one fault, one event, however many lines say it"


async def test_agent_pause_confirmed(case: str, vp: VirtualPrinter, events: Events) -> None:
    pause = DIALECTS[dialect_of(case)].pause
    async with running(vp.port, events, **link_options(case)) as printer:
        await start_print(vp, events)
        await printer.pause()
        assert vp.state == "paused"
        assert vp.parked == (case in ("marlin-park", "prusa"))
        await printer.pause()  # already paused: nothing sent
    assert vp.received.count(pause) == 1
    assert events.kinds().count(K.PAUSED) == 1


async def test_agent_pause_not_confirmed(case: str, events: Events) -> None:
    pause = DIALECTS[dialect_of(case)].pause
    options = CASES[case][0] | {"ignore": {pause}}
    with VirtualPrinter(print_duration_s=5.0, heat_duration_s=0.0, **options) as vp:
        async with running(vp.port, events, **link_options(case, confirm_timeout_s=0.25)) as printer:
            await start_print(vp, events)
            with pytest.raises(PauseFailed, match="second attempt"):
                await printer.pause()
    assert vp.received.count(pause) == 2, "sent once more before giving up"
    assert K.PAUSED not in events.kinds()


async def test_resume_after_cooldown(case: str, vp: VirtualPrinter, events: Events) -> None:
    dialect = DIALECTS[dialect_of(case)]
    async with running(vp.port, events, **link_options(case, cool_down_after_s=0.2)) as printer:
        await start_print(vp, events)
        await vp.wait_for_async(lambda: vp.state == "printing", 2.0)
        await printer.pause()
        if dialect.pause_keeps_hotend_hot:
            off = await events.wait_for(K.HEATERS_OFF)
            assert off.temperatures == {"hotend": 205.0}
        assert await vp.wait_for_async(lambda: vp.temperatures["hotend_target"] == 0, 2.0)
        assert vp.temperatures["bed_target"] == 60.0, "the bed is left on"
        await printer.resume()
        assert vp.state == "printing"
        assert vp.temperatures["hotend"] >= 203.0, "resumed only once hot again"
    sent = vp.received[vp.received.index(dialect.pause) :]
    if dialect.pause_keeps_hotend_hot:
        assert sent.index("M104 S0") < sent.index("M104 S205") < sent.index(dialect.resume)
    else:  # Prusa's M601 cools and M602 reheats by themselves
        assert "M104 S0" not in sent and "M104 S205" not in sent
