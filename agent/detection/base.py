"""The small interface the inspection loop needs from a failure detector."""

from __future__ import annotations

from typing import Protocol

from agent.detection.context import PrintKey
from agent.detection.usage import UsageMeter
from agent.detection.verdict import Verdict

# The largest frame the service accepts (reference/gadget-api.md): the capture path holds every
# frame to it (agent/camera.py), so a detector only checks it.
MAX_IMAGE_BYTES = 6 * 1024 * 1024


class Detector(Protocol):
    usage: UsageMeter  # this month's calls, for the published state

    async def open_context(self, print_key: PrintKey) -> float:
        """A print began or was found running: continue its kept context or create one. Returns the
        seconds the first Process call must still wait. Raises DetectionError."""

    def note_position(self, sd_position: int | None) -> None:
        """The print read on to this SD position (what tells it from another after a restart)."""

    async def process(self, jpeg: bytes) -> Verdict:
        """Inspect one frame in the current context. Raises DetectionError."""

    def end_context(self) -> None:
        """The print is over: its context is not continued."""

    async def aclose(self) -> None:
        """Release connections."""
