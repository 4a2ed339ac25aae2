"""The Raspberry Pi camera through picamera2 (libcamera)."""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any

from hardware.camera.base import CameraError
from hardware.camera.jpeg import rotate_jpeg

log = logging.getLogger(__name__)


def _import_picamera2() -> tuple[Any, Any]:
    """picamera2 and libcamera come from Raspberry Pi OS packages, never PyPI: import them only
    when this backend is chosen, so the agent runs anywhere else without them."""
    try:
        from libcamera import Transform
        from picamera2 import Picamera2
    except ImportError as exc:
        hint = "install it with `sudo apt install python3-picamera2`"
        if sys.prefix != sys.base_prefix:
            hint += (
                "; this agent runs in a virtual environment, which only sees it if created "
                "with --system-site-packages"
            )
        raise CameraError(f"camera.source is picamera2, but it cannot be imported ({exc}): {hint}") from exc
    return Picamera2, Transform


class Picamera2Camera:
    """Keeps the camera open and streaming at the configured size, so a capture costs one frame
    rather than a sensor restart. A failed open or capture closes it; the next capture() reopens.

    Flips and a 180° rotation happen in the ISP (libcamera Transform); 90° and 270° are turned
    in software after capture because libcamera on the Pi cannot transpose.
    `rotation` is clockwise, applied after the flips; at 90/270 the frame is height x width.
    """

    def __init__(
        self,
        width: int,
        height: int,
        rotation: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        jpeg_quality: int = 85,
    ) -> None:
        if rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation}")
        self._picamera2_cls, self._transform_cls = _import_picamera2()
        self.size = (width, height)
        half_turn = rotation == 180
        self.hflip = hflip != half_turn
        self.vflip = vflip != half_turn
        self.software_rotation = rotation if rotation in (90, 270) else 0
        self.jpeg_quality = jpeg_quality
        self._picam2: Any = None
        # The agent captures on a worker thread and may close from the event loop.
        self._lock = threading.Lock()

    def _open(self) -> Any:
        try:
            picam2 = self._picamera2_cls()
        except (IndexError, RuntimeError) as exc:
            raise CameraError(_describe_open_error(exc)) from exc
        try:
            config = picam2.create_still_configuration(
                main={"size": self.size},
                transform=self._transform_cls(hflip=self.hflip, vflip=self.vflip),
            )
            picam2.configure(config)
            picam2.options["quality"] = self.jpeg_quality
            picam2.start()
        except (RuntimeError, ValueError) as exc:
            picam2.close()
            raise CameraError(f"cannot start the Pi camera at {self.size[0]}x{self.size[1]}: {exc}") from exc
        log.info("Pi camera started at %dx%d", *self.size)
        return picam2

    def capture(self) -> bytes:
        """One JPEG at the configured size and orientation. Raises CameraError."""
        with self._lock:
            if self._picam2 is None:
                self._picam2 = self._open()
            out = io.BytesIO()
            try:
                self._picam2.capture_file(out, format="jpeg")
            except RuntimeError as exc:
                self._close_locked()
                raise CameraError(f"Pi camera capture failed, will reopen it next time: {exc}") from exc
        data = out.getvalue()
        if self.software_rotation:
            data = rotate_jpeg(data, self.software_rotation, self.jpeg_quality)
        return data

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        picam2, self._picam2 = self._picam2, None
        if picam2 is not None:
            try:
                picam2.close()
            except RuntimeError as exc:
                log.warning("closing the Pi camera failed: %s", exc)


def _describe_open_error(exc: BaseException) -> str:
    """Picamera2() hides the cause behind "Camera __init__ sequence did not complete", raised while
    handling it: look down the exception chain for what the user can fix."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " / ".join(str(e) for e in chain).lower()
    if "busy" in text or "in use" in text:
        return (
            "the Pi camera is in use by another process (rpicam-*, a streamer such as camera-streamer "
            "or ustreamer, or another LayerGuard); stop it, or point camera.source at its snapshot URL"
        )
    if any(isinstance(e, IndexError) for e in chain):
        # picamera2 indexes the list of detected cameras, which is empty without one.
        return (
            "no Pi camera detected: check the ribbon cable (contacts the right way round, both ends "
            "latched), then run `rpicam-hello --list-cameras`"
        )
    return f"cannot open the Pi camera ({chain[-1]}); check it with `rpicam-hello --list-cameras`"
