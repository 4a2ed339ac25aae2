"""The heater policy of a pause the agent made: cool down after a while, heat up before resuming.

Marlin's `M25` (and Klipper's usual PAUSE macro) leaves the hotend at temperature, and without
head parking the nozzle rests on the part, cooking it and oozing. So `after_s` seconds into a
pause that LayerGuard sent, the hotend is switched off (the bed too, only if configured: a cold
bed lets the part come loose). Resuming through LayerGuard heats back to the saved targets and
waits for them before the firmware's resume command. The link owns one HeaterPolicy:

    arm()                after the agent's pause is confirmed: starts the timer
    cancel()             the print left the pause some other way, or the link went down
    forget()             the print resumed or ended: saved targets mean nothing any more
    await restore()      before the agent's resume: heat to the saved targets and wait
    on_temperatures(..)  every temperature report, so restore() sees the heaters rise
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hardware.printer.base import PauseFailed

log = logging.getLogger(__name__)

REACHED_MARGIN_C = 2.0  # within this of the target counts as reached, as the firmware's M109 does


class HeaterPolicy:
    def __init__(
        self,
        send: Callable[[str], Awaitable[list[str]]],
        on_cooled: Callable[[dict[str, float]], None],
        *,
        after_s: float,
        bed: bool,
        reheat_timeout_s: float,
    ) -> None:
        self._send = send
        self._on_cooled = on_cooled
        self.after_s = after_s
        self.bed = bed
        self.reheat_timeout_s = reheat_timeout_s
        self.saved: dict[str, float] = {}  # heater -> target it had before the cooldown
        self._temperatures: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    @property
    def cooled(self) -> bool:
        return bool(self.saved)

    def arm(self) -> None:
        if self.after_s <= 0 or self._timer is not None:
            return
        self._timer = asyncio.create_task(self._cool_later(), name="heater-cooldown")

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def forget(self) -> None:
        self.cancel()
        self.saved = {}

    def on_temperatures(self, values: dict[str, float]) -> None:
        self._temperatures = values
        self._changed.set()

    async def restore(self) -> None:
        """Heat back to the saved targets and wait for them; raises PauseFailed if they are not reached."""
        if not self.saved:
            return
        targets = ", ".join(f"{heater} {target:g} °C" for heater, target in self.saved.items())
        log.info("reheating before the resume: %s", targets)
        self._temperatures = {}  # only readings taken from now on can say the heaters are back
        try:
            for heater, target in self.saved.items():
                await self._send(f"{'M140' if heater == 'bed' else 'M104'} S{target:g}")
            async with asyncio.timeout(self.reheat_timeout_s):
                while not self._reached():
                    self._changed.clear()
                    await self._changed.wait()
        except Exception as exc:  # TimeoutError, or the link's CommandFailed / LinkLost
            detail = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise PauseFailed(
                f"resume: heating back to {targets} failed within {self.reheat_timeout_s:g} s ({detail})"
            ) from exc

    def _reached(self) -> bool:
        """Read after the heat command (the target is back) and within the margin of it."""
        now = self._temperatures
        return all(
            now.get(f"{name}_target") == goal and now.get(name, 0.0) >= goal - REACHED_MARGIN_C
            for name, goal in self.saved.items()
        )

    async def _cool_later(self) -> None:
        await asyncio.sleep(self.after_s)
        self._timer = None
        heaters = ("hotend", "bed") if self.bed else ("hotend",)
        targets = {h: self._temperatures.get(f"{h}_target", 0.0) for h in heaters}
        targets = {h: t for h, t in targets.items() if t > 0}
        if not targets:
            return
        try:
            for heater, target in targets.items():
                await self._send("M140 S0" if heater == "bed" else "M104 S0")
                self.saved[heater] = target
        except Exception as exc:  # the link's CommandFailed / LinkLost: that heater stays on
            log.error("could not switch the heaters off during the pause: %s", exc)
        if not self.saved:
            return
        log.warning("paused %g s: switched off %s", self.after_s, ", ".join(self.saved))
        self._on_cooled(dict(self.saved))
