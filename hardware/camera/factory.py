"""Chooses the camera backend named by a source string (the agent's `camera.source`)."""

from __future__ import annotations

from dataclasses import dataclass

from hardware.camera.base import Camera, CameraError
from hardware.camera.folder import FolderCamera
from hardware.camera.framing import NO_FRAMING, Framing
from hardware.camera.http_snapshot import HttpSnapshotCamera
from hardware.camera.jpeg import MAX_FRAME_BYTES, fit_jpeg
from hardware.camera.masking import apply_framing
from hardware.camera.picamera import Picamera2Camera


class FittedCamera:
    """Wraps any backend so that every frame is masked and cropped (`framing`) and no frame
    exceeds what the detection service accepts.

    `framing` may be replaced at any time (the page sets it); a capture uses the value it finds.
    `camera` is the backend itself, unframed: the page's framing view, where the user draws."""

    def __init__(
        self,
        camera: Camera,
        max_bytes: int = MAX_FRAME_BYTES,
        quality: int = 85,
        framing: Framing = NO_FRAMING,
    ) -> None:
        self.camera = camera
        self.max_bytes = max_bytes
        self.quality = quality
        self.framing = framing

    def capture(self) -> bytes:
        framed = apply_framing(self.camera.capture(), self.framing, self.quality)
        return fit_jpeg(framed, self.max_bytes, self.quality)

    def close(self) -> None:
        self.camera.close()


@dataclass(frozen=True)
class CameraConfig:
    """What a camera is opened with: plain values, so that hardware/ knows nothing of the agent's
    settings. `max_bytes` is the largest frame its user accepts (the detection service's limit)."""

    source: str
    width: int = 1280
    height: int = 720
    rotation: int = 0
    hflip: bool = False
    vflip: bool = False
    jpeg_quality: int = 85
    max_bytes: int = MAX_FRAME_BYTES


def open_camera(settings: CameraConfig, framing: Framing = NO_FRAMING) -> FittedCamera:
    """The backend for `settings.source` (picamera2[:camera], an http(s):// snapshot URL, or dir:/path),
    its frames masked and cropped by `framing` (see agent.framing for where that comes from) and
    held to `settings.max_bytes`. Raises CameraError if unusable."""
    source = settings.source
    camera: Camera
    if source == "picamera2" or source.startswith("picamera2:"):
        camera = Picamera2Camera(
            settings.width,
            settings.height,
            rotation=settings.rotation,
            hflip=settings.hflip,
            vflip=settings.vflip,
            jpeg_quality=settings.jpeg_quality,
            choice=source.removeprefix("picamera2").removeprefix(":"),
        )
    elif source.startswith(("http://", "https://")):
        camera = HttpSnapshotCamera(source)
    elif source.startswith("dir:"):
        camera = FolderCamera(source.removeprefix("dir:"))
    else:
        raise CameraError(
            f"camera.source {source!r} is not picamera2[:camera], an http(s):// URL or dir:/path"
        )
    return FittedCamera(camera, settings.max_bytes, settings.jpeg_quality, framing)
