"""The agent's camera: `camera.*` settings mapped onto the hardware layer's plain values, every frame
held to what the detection service accepts (the capture path prepares the frame, not the client)."""

from __future__ import annotations

from agent.detection.base import MAX_IMAGE_BYTES
from agent.settings import CameraSection
from hardware.camera.factory import CameraConfig, FittedCamera
from hardware.camera.factory import open_camera as open_backend
from hardware.camera.framing import NO_FRAMING, Framing


def open_camera(settings: CameraSection, framing: Framing = NO_FRAMING) -> FittedCamera:
    """The camera named by `camera.source`, its frames masked and cropped by `framing` (what
    agent.framing says is in effect). Raises CameraError if unusable."""
    return open_backend(
        CameraConfig(
            source=settings.source,
            width=settings.width,
            height=settings.height,
            rotation=settings.rotation,
            hflip=settings.hflip,
            vflip=settings.vflip,
            jpeg_quality=settings.jpeg_quality,
            max_bytes=MAX_IMAGE_BYTES,
        ),
        framing,
    )
