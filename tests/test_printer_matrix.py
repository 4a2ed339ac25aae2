"""The firmware-profile x situation matrix of docs/printer.md: SerialPrinter against the virtual
printer emulating each firmware VERSION (sim/firmware_profiles.py) over a real pty."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from test_printer_link import LONG_PRINT_S, Events, end_now, running, start_print

from hardware.printer.base import PauseFailed
from hardware.printer.dialects import DIALECTS
from hardware.printer.events import PrinterEventKind as K
from hardware.printer.events import PrintState
from sim.firmware_profiles import PROFILES
from sim.virtual_printer import DEFAULT_FILE, VirtualPrinter

# What proves LayerGuard's own pause on each profile (the link logs it).
PROOF = {
    "marlin-2.0.9": "Not SD printing while",
    "marlin-2.1.1": "Not SD printing while",
    "marlin-2.1.2": "SD byte",
    "marlin-bugfix": "SD byte",
    "marlin-park": "echo:busy: paused for user",
    "creality-s1": "Not SD printing while",
    "prusa-3.13": "//action:paused",
    "prusa-3.14": "//action:paused",
    "klipper": "SD byte",
}
assert set(PROOF) == set(PROFILES)
LINK = {"cool_down_after_s": 0.0, "stall_s": 0.3}  # cooldown has its own cell below


def dialect_of(profile: str) -> str:
    return PROFILES[profile].dialect


@pytest.fixture(params=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def vp(profile: str) -> Iterator[VirtualPrinter]:
    with VirtualPrinter(
        print_duration_s=LONG_PRINT_S, heat_duration_s=0.1, pause_delay_s=0.1, profile=profile
    ) as printer:
        yield printer


def options(**extra: Any) -> dict[str, Any]:
    return LINK | extra


async def test_idle_at_connect(profile: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **options()) as printer:
        await events.wait_for(K.CONNECTED)
        await vp.wait_for_async(lambda: len(vp.received) >= 8, 30.0)  # several polls answered
        assert printer.print_state is PrintState.IDLE
    assert {e.kind for e in events.seen} <= {K.CONNECTED, K.TEMPERATURE}, "state only, no event"


async def test_start_progress_finish(profile: str, events: Events) -> None:
    # 10 s: Prusa's M73 reports every tenth, so the progress of two of them comes within 2 s.
    with VirtualPrinter(print_duration_s=10.0, heat_duration_s=0.1, profile=profile) as vp:
        async with running(vp.port, events, **options()):
            connected = await events.wait_for(K.CONNECTED)
            vp.panel_start()
            await events.wait_for(K.PROGRESS, count=2)
            end_now(vp)
            await events.wait_for(K.FINISHED)
    assert connected.dialect == dialect_of(profile)
    kinds = events.kinds()
    assert kinds[1] is K.PRINT_STARTED and kinds[-1] is K.FINISHED
    assert events.of(K.PRINT_STARTED)[0].file == DEFAULT_FILE
    progress = [event.progress or 0.0 for event in events.of(K.PROGRESS)]
    assert len(progress) >= 2 and progress == sorted(progress)
    if dialect_of(profile) == "prusa":  # M73's percentages win over bytes
        assert all(value % 10 == 0 for value in progress)


async def test_panel_pause_resume(profile: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **options()):
        await start_print(vp, events)
        await vp.wait_for_async(lambda: vp.state == "printing", 30.0)
        vp.panel_pause()
        paused = await events.wait_for(K.PAUSED)
        vp.panel_resume()
        await events.wait_for(K.RESUMED)
    assert K.UNKNOWN not in events.kinds()
    if not PROFILES[profile].host_actions and PROFILES[profile].paused_status == "frozen":
        assert dialect_of(profile) == "klipper" or paused.message.startswith("M31 print time")


async def test_panel_stop(profile: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **options()):
        await start_print(vp, events)
        vp.panel_stop()
        cancelled = await events.wait_for(K.CANCELLED)
    assert cancelled.file == DEFAULT_FILE
    assert K.FINISHED not in events.kinds()


async def test_reset_mid_print(profile: str, vp: VirtualPrinter, events: Events) -> None:
    async with running(vp.port, events, **options(confirm_window_s=0.15)) as printer:
        await start_print(vp, events)
        vp.reset()
        error = await events.wait_for(K.ERROR)
        vp.panel_start()
        await events.wait_for(K.PRINT_STARTED, count=2)
        await vp.wait_for_async(lambda: vp.state == "printing", 30.0)
        await printer.pause()  # the link renumbered and talks to the rebooted firmware
    assert "restarted" in error.message


async def test_unplug_and_replug(profile: str, events: Events) -> None:
    with VirtualPrinter(print_duration_s=LONG_PRINT_S, heat_duration_s=0.1, profile=profile) as vp:
        async with running(vp.port, events, **options()):
            await start_print(vp, events)
            vp.vanish()
            gone = await events.wait_for(K.DISCONNECTED)
            vp.reappear()
            await events.wait_for(K.CONNECTED, count=2)
            end_now(vp)
            finished = await events.wait_for(K.FINISHED)
    assert gone.state is PrintState.OFFLINE and gone.unseen_print
    assert finished.file == DEFAULT_FILE  # the held print kept its name, Klipper's too
    assert events.kinds().count(K.CONNECTED) == 2, "reopened once, when the device came back"
    assert events.kinds().count(K.PRINT_STARTED) == 1, "the same print went on"
    assert K.CANCELLED not in events.kinds() and K.ERROR not in events.kinds()


async def test_kill(profile: str, vp: VirtualPrinter, events: Events) -> None:
    reason = "Thermal Runaway, system stopped!"
    if profile == "klipper":
        reason = "MCU 'mcu' shutdown: Thermal runaway"
    async with running(vp.port, events, **options()):
        await start_print(vp, events)
        vp.kill(reason)
        error = await events.wait_for(K.ERROR)
    assert reason in error.message
    assert K.DISCONNECTED not in events.kinds(), "a halted printer is no reason to reopen the port"
    assert events.kinds().count(K.ERROR) == 1, "one fault, one event, however many lines say it"


async def test_agent_pause_confirmed(
    profile: str, vp: VirtualPrinter, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hardware.printer.link")
    dialect = DIALECTS[dialect_of(profile)]
    async with running(vp.port, events, **options(confirm_window_s=0.15)) as printer:
        await start_print(vp, events)
        await vp.wait_for_async(lambda: vp.state == "printing", 30.0)
        await printer.pause()
        assert vp.state == "paused"
        assert vp.parked == (profile == "marlin-park" or dialect.name == "prusa")
        await printer.pause()  # already paused: nothing sent
        if profile == "marlin-park":  # M25 waits for the user at the display: nothing else is sent
            with pytest.raises(PauseFailed, match="waits for the user"):
                await printer.resume()
            vp.panel_resume()
            await events.wait_for(K.RESUMED)
    sent = vp.received[vp.received.index(dialect.pause) :]
    assert vp.received.count(dialect.pause) == 1
    assert events.kinds().count(K.PAUSED) == 1
    assert f"pause confirmed: {PROOF[profile]}" in caplog.text
    if profile != "marlin-park":
        assert "M400" in sent, "the queue drains before any evidence counts"
    # The motors stay on through LayerGuard's pause (not where the line is held by a parked M25).
    assert (dialect.hold_motors in sent) == (dialect.hold_motors is not None and profile != "marlin-park")


async def test_agent_pause_not_confirmed(profile: str, events: Events) -> None:
    pause = DIALECTS[dialect_of(profile)].pause
    with VirtualPrinter(
        print_duration_s=LONG_PRINT_S, heat_duration_s=0.0, profile=profile, ignore={pause}
    ) as vp:
        async with running(
            vp.port, events, **options(confirm_timeout_s=0.5, confirm_window_s=0.15)
        ) as printer:
            await start_print(vp, events)
            with pytest.raises(PauseFailed, match="second attempt"):
                await printer.pause()
    assert vp.received.count(pause) == 2, "sent once more before giving up"
    assert K.PAUSED not in events.kinds()


@pytest.mark.parametrize("stall", ["heat", "move", "dwell", "home"])
async def test_a_stall_is_never_taken_for_a_pause(profile: str, stall: str, events: Events) -> None:
    """The pause command is lost (ignored) and the print stands still for another reason."""
    pause = DIALECTS[dialect_of(profile)].pause
    with VirtualPrinter(
        print_duration_s=LONG_PRINT_S,
        heat_duration_s=0.1,
        busy_interval_s=0.05,
        profile=profile,
        ignore={pause},
    ) as vp:
        async with running(
            vp.port, events, **options(confirm_timeout_s=0.6, confirm_window_s=0.15)
        ) as printer:
            await start_print(vp, events)
            await vp.wait_for_async(lambda: vp.state == "printing", 30.0)
            vp.stall(0.8, stall)
            with pytest.raises(PauseFailed):
                await printer.pause()
            vp.stall(1.0, stall)  # and a stall with no pause at all is no pause either
            await vp.wait_for_async(lambda: vp.progress > 0 and not vp.stalled, 30.0)
            await printer.send("M105")
    assert K.PAUSED not in events.kinds()
    assert printer.print_state is PrintState.PRINTING


async def test_resume_after_cooldown(profile: str, vp: VirtualPrinter, events: Events) -> None:
    if profile == "marlin-park":
        pytest.skip("a parked Marlin waits at its display and resumes there (test_agent_pause_confirmed)")
    dialect = DIALECTS[dialect_of(profile)]
    async with running(vp.port, events, **options(cool_down_after_s=0.2, confirm_window_s=0.15)) as printer:
        await start_print(vp, events)
        await vp.wait_for_async(lambda: vp.state == "printing", 30.0)
        await printer.pause()
        if dialect.pause_keeps_hotend_hot:
            off = await events.wait_for(K.HEATERS_OFF)
            assert off.temperatures == {"hotend": 205.0}
        assert await vp.wait_for_async(lambda: vp.temperatures["hotend_target"] == 0, 30.0)
        assert vp.temperatures["bed_target"] == 60.0, "the bed is left on"
        await printer.resume()
        assert vp.state == "printing"
        assert vp.temperatures["hotend"] >= 203.0, "resumed only once hot again"
    sent = vp.received[vp.received.index(dialect.pause) :]
    if dialect.pause_keeps_hotend_hot:
        assert sent.index("M104 S0") < sent.index("M104 S205") < sent.index(dialect.resume)
    else:  # Prusa's M601 cools and M602 reheats by themselves
        assert "M104 S0" not in sent and "M104 S205" not in sent
    if dialect.release_motors:  # the firmware's own motor timeout is back after the resume
        assert (
            sent.index(dialect.hold_motors) < sent.index(dialect.resume) < sent.index(dialect.release_motors)
        )


async def test_a_mute_printer_is_reported_and_followed_again(
    profile: str, vp: VirtualPrinter, events: Events
) -> None:
    silence_s = 4.0
    async with running(vp.port, events, **options(silence_s=silence_s)) as printer:
        await start_print(vp, events)
        muted_at = asyncio.get_running_loop().time()
        vp.mute()
        silent = await events.wait_for(K.SILENT, timeout_s=30.0)
        # The figure protected: printer.silence_s. By design SILENT comes a third of it after the
        # last line plus two probes of a fifth (2.9 s here, polls being 0.05 s apart); the 2 s past
        # silence_s are scheduling slack on a loaded machine, 3 s beyond the design's figure.
        elapsed = asyncio.get_running_loop().time() - muted_at
        assert elapsed <= silence_s + 2.0, "reported within silence_s"
        assert printer.print_state is PrintState.UNKNOWN and silent.unseen_print
        vp.unmute()
        await events.wait_for(K.RESPONDING, timeout_s=30.0)
        await events.wait_for(K.CONTINUED, timeout_s=30.0)
    assert events.kinds().count(K.PRINT_STARTED) == 1
    assert not {K.CANCELLED, K.LOST, K.FINISHED, K.PAUSED} & set(events.kinds())
