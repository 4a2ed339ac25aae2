"""The small interface the inspection loop needs from a failure detector."""

from __future__ import annotations

from typing import Protocol

from agent.detection.verdict import Verdict


class Detector(Protocol):
    async def start_context(self) -> None:
        """Begin a new print: the service forgets the previous print's history. Raises DetectionError."""

    async def process(self, jpeg: bytes) -> Verdict:
        """Inspect one frame in the current context. Raises DetectionError."""

    async def aclose(self) -> None:
        """Release connections."""
