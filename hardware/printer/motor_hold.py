"""Motors stay powered through a pause LayerGuard made, and the firmware's timeout comes back after.

Marlin switches idle steppers off after 120 s (`DEFAULT_STEPPER_DEACTIVE_TIME`) during an `M25`
pause without parking: the head can then be pushed and a resume shifts the layers. Klipper's
`idle_timeout` (600 s) turns heaters and motors off during any pause, after which `RESUME` prints
in the wrong place. The dialect names the commands (`M84 S0` / `M84 S120`, `SET_IDLE_TIMEOUT`).
Neither firmware can be asked for its current value, so the release restores the default.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class MotorHold:
    def __init__(self, send: Callable[[str], Awaitable[list[str]]]) -> None:
        self._send = send
        self._release: str | None = None  # the command that undoes the hold, while held
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._release is not None

    async def hold(self, command: str | None, release: str | None) -> None:
        if command is None or release is None:
            return
        try:
            await self._send(command)
        except Exception as exc:  # the link's CommandFailed / LinkLost: the firmware timeout stays
            log.error("could not keep the motors on during the pause (%s): %s", command, exc)
            return
        self._release = release
        log.info("motors kept on during the pause (%s); %s restores the timeout", command, release)

    async def release(self) -> None:
        if self._task is not None and not self._task.done():  # already under way
            await asyncio.shield(self._task)
        await self._restore()

    async def _restore(self) -> None:
        command, self._release = self._release, None
        if command is None:
            return
        try:
            await self._send(command)
        except Exception as exc:
            log.warning("could not restore the motor timeout (%s): %s", command, exc)

    def release_soon(self) -> None:
        """The print left the pause on its own (panel resume, stop, end): restore in the background."""
        if self._release is not None and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._restore(), name="motor-release")
