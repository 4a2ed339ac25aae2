"""Figure 1, reaction time: Process answer → pause bytes on the serial port → pause confirmed.

The real agent (`build_agent`, MQTT on) runs in this process against the simulated world, so
`PauseClock` can timestamp both edges. The print fails from its first layer and the stand-in
suggests a pause after 4 bad frames (pause_confidence 1); each time the agent has paused it,
the printer's panel resumes it, the next frame is still spaghetti, and the agent pauses again.
The virtual printer drains at once (no move queue), so the second figure is the protocol's
round trip plus the evidence the firmware needs (on Marlin 2.1.2 the SD byte frozen over the
confirm window, 3 s), not a real printer's deceleration.

Then, per firmware profile (sim/firmware_profiles.py), the link alone: `SerialPrinter.pause()`
from its call to its return (command, `M400`, evidence), with the default confirm window and
the virtual printer draining at once: what each firmware's own evidence costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent.app import Agent
from agent.assembly import build_agent
from agent.detection.timing import DetectionTiming
from agent.state import AgentState
from bench.instrument import PauseClock
from bench.report import Row, below
from hardware.printer.events import PrinterEvent, PrinterEventKind
from hardware.printer.link import SerialPrinter
from sim.broker import MosquittoBroker
from sim.firmware_profiles import PROFILES
from sim.virtual_printer import VirtualPrinter
from sim.world import sim_world

FILE = "reaction.gcode"
# Only the waiting is shortened; none of it is inside the measured spans.
TIMING = DetectionTiming(
    request_timeout_s=5,
    first_success_retry_s=0.5,
    interval_floor_s=0.5,
    interval_ceiling_s=60,
    default_retry_s=1,
)
STEP_TIMEOUT_S = 30.0


def measure(broker: MosquittoBroker, pauses: int) -> list[Row]:
    clock, confirmed = asyncio.run(_pause_repeatedly(broker, pauses))
    reactions = clock.reactions()
    confirmations = [c - w for w, c in zip(clock.written_at, confirmed, strict=False)]
    return [
        Row(
            "reaction: Process answer → pause bytes written",
            "ms",
            [1000 * r for r in reactions],
            below(50, "ms"),
            "the agent's own share; in-process agent with MQTT on",
        ),
        Row(
            "reaction: pause bytes → pause confirmed",
            "ms",
            [1000 * c for c in confirmations],
            note="Marlin 2.1.2 profile; virtual printer drains at once; a real one first drains its moves",
        ),
        *asyncio.run(_confirm_per_profile(PROFILE_SAMPLES)),
    ]


PROFILE_SAMPLES = 2


async def _confirm_per_profile(samples: int) -> list[Row]:
    """All profiles at once (each on its own pty), so the figure costs a few seconds in all."""
    timings = await asyncio.gather(*(_confirm_times(name, samples) for name in PROFILES))
    return [
        Row(
            f"pause confirmed, {name}",
            "ms",
            [1000 * t for t in times],
            digits=0,
            note="SerialPrinter.pause() call → return; virtual printer drains at once",
        )
        for name, times in zip(PROFILES, timings, strict=True)
    ]


async def _confirm_times(profile: str, samples: int) -> list[float]:
    times: list[float] = []
    connected, started, resumed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def on_event(event: PrinterEvent) -> None:
        if event.kind is PrinterEventKind.CONNECTED:
            connected.set()
        if event.kind is PrinterEventKind.PRINT_STARTED:
            started.set()
        if event.kind is PrinterEventKind.RESUMED:
            resumed.set()

    with VirtualPrinter(print_duration_s=600, heat_duration_s=0.2, pause_delay_s=0.0, profile=profile) as vp:
        printer = SerialPrinter(vp.port, 115200, "auto", on_event, cool_down_after_s=0)
        task = asyncio.create_task(printer.run())
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S * (samples + 1)):
                await connected.wait()
                vp.panel_start()
                await started.wait()
                for _ in range(samples):
                    await vp.wait_for_async(lambda: vp.state == "printing", STEP_TIMEOUT_S)
                    begun = time.monotonic()
                    await printer.pause()
                    times.append(time.monotonic() - begun)
                    resumed.clear()
                    vp.panel_resume()
                    await resumed.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return times


async def _pause_repeatedly(broker: MosquittoBroker, pauses: int) -> tuple[PauseClock, list[float]]:
    confirmed: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="layerguard-bench-") as tmp,
        sim_world(
            file=FILE,
            failure_at=0.0,
            print_duration_s=40 + 2 * pauses,
            interval_s=1,
            broker=broker,
            heat_duration_s=0.2,
            pause_delay_s=0.0,
        ) as world,
        PauseClock() as clock,
    ):
        settings = world.settings(
            Path(tmp), printer_id="bench-reaction", pause_confidence=1, resume_grace_s=0
        )
        agent = build_agent(settings, timing=TIMING)
        task = asyncio.create_task(agent.run())
        try:
            await _until(agent, lambda s: s.print_state == "idle")
            world.printer.panel_start(FILE)
            for _ in range(pauses):
                confirmed.append(await _until(agent, lambda s: s.paused_by == "agent"))
                world.printer.panel_resume()
                await _until(agent, lambda s: s.print_state == "printing" and s.paused_by is None)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return clock, confirmed


async def _until(agent: Agent, predicate: Callable[[AgentState], bool]) -> float:
    """Wait for `predicate` on the agent's state; returns time.monotonic() when it first held,
    taken inside the agent's own state update rather than when this task woke up."""
    seen: list[float] = []

    def check(state: AgentState) -> bool:
        if not seen and predicate(state):
            seen.append(time.monotonic())
        return bool(seen)

    async with asyncio.timeout(STEP_TIMEOUT_S):
        await agent.wait_for(check)
    return seen[0]
