"""The camera interface every backend implements."""

from __future__ import annotations

from typing import Protocol


class CameraError(Exception):
    """A capture failed; the message says why in words a user can act on."""


class Camera(Protocol):
    def capture(self) -> bytes:
        """Return one JPEG frame. Blocking: the agent calls it off the event loop. Raises CameraError."""

    def close(self) -> None:
        """Release the device; capture() may reopen it. Blocking too: called off the event loop."""
