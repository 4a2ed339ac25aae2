"""The Raspberry Pi camera through picamera2 (libcamera)."""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any

from hardware.camera.base import CameraError
from hardware.camera.jpeg import orient_jpeg

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


# A capture that takes longer is a stuck camera (libcamera delivering no frames), not a slow one:
# picamera2 itself would wait for ever.
CAPTURE_TIMEOUT_S = 10.0


class Picamera2Camera:
    """Keeps the camera open and streaming at the configured size, so a capture costs one frame
    rather than a sensor restart. A failed open or capture closes it; the next capture() reopens.

    Flips and a 180° rotation are asked of libcamera (the Pi's ISP does them); what the camera
    cannot do (90° and 270°, which libcamera cannot transpose; flips a USB webcam refuses) is done
    in software after capture. `rotation` is clockwise, applied after the flips; at 90/270 the
    frame is height x width. `choice` picks one of several cameras: "" the first, a number its
    index in picamera2's list, anything else a substring of its model or id.
    """

    def __init__(
        self,
        width: int,
        height: int,
        rotation: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        jpeg_quality: int = 85,
        choice: str = "",
    ) -> None:
        if rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation}")
        self._picamera2_cls, self._transform_cls = _import_picamera2()
        self.size = (width, height)
        half_turn = rotation == 180
        self.hflip = hflip != half_turn
        self.vflip = vflip != half_turn
        self.rotation = rotation if rotation in (90, 270) else 0
        self.jpeg_quality = jpeg_quality
        self.choice = choice
        # The flips libcamera refused, done in software with the rotation; set by each open.
        self._software_flips = (False, False)
        self._picam2: Any = None
        # The agent captures on a worker thread and may close from the event loop.
        self._lock = threading.Lock()

    def _open(self) -> Any:
        try:
            picam2 = self._picamera2_cls(camera_num=self._camera_num())
        except RuntimeError as exc:
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
        # What libcamera made of the request (it adjusts what a camera cannot do): picamera2 keeps it
        # in camera_config, not in the dictionary it was given.
        done = picam2.camera_config["transform"]
        self._software_flips = (self.hflip and not done.hflip, self.vflip and not done.vflip)
        size = tuple(picam2.camera_config["main"]["size"])
        if size != self.size:
            log.warning(
                "the camera cannot deliver camera.width x camera.height = %dx%d; it sends %dx%d",
                *self.size,
                *size,
            )
        log.info("Pi camera started at %dx%d", *size)
        return picam2

    def _camera_num(self) -> int:
        """The index picamera2 takes for `choice`; raises CameraError when no camera matches."""
        cameras = self._picamera2_cls.global_camera_info()
        if not cameras:
            raise CameraError(_NO_CAMERA)
        names = ", ".join(f"{i}: {c.get('Model', '?')} ({c['Id']})" for i, c in enumerate(cameras))
        if not self.choice:
            return 0
        if self.choice.isdigit():
            if int(self.choice) < len(cameras):
                return int(self.choice)
            raise CameraError(f"camera.source picamera2:{self.choice}: no such camera; found {names}")
        wanted = self.choice.lower()
        matches = [i for i, c in enumerate(cameras) if wanted in f"{c.get('Model', '')} {c['Id']}".lower()]
        if len(matches) == 1:
            return matches[0]
        what = "no camera" if not matches else "more than one camera"
        raise CameraError(
            f"camera.source picamera2:{self.choice}: {what} has that in its model or id; found {names}"
        )

    def capture(self) -> bytes:
        """One JPEG at the configured size and orientation. Raises CameraError."""
        with self._lock:
            if self._picam2 is None:
                self._picam2 = self._open()
            out = io.BytesIO()
            try:
                self._picam2.capture_file(out, format="jpeg", wait=CAPTURE_TIMEOUT_S)
            except TimeoutError as exc:
                self._close_locked()
                raise CameraError(
                    f"the Pi camera delivered no frame within {CAPTURE_TIMEOUT_S:.0f} s; "
                    "will reopen it next time"
                ) from exc
            except RuntimeError as exc:
                self._close_locked()
                raise CameraError(f"Pi camera capture failed, will reopen it next time: {exc}") from exc
            hflip, vflip = self._software_flips
        data = out.getvalue()
        if hflip or vflip or self.rotation:
            data = orient_jpeg(data, self.jpeg_quality, hflip, vflip, self.rotation)
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


_NO_CAMERA = (
    "no Pi camera detected: check the ribbon cable (contacts the right way round, both ends "
    "latched), then run `rpicam-hello --list-cameras`"
)


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
    return f"cannot open the Pi camera ({chain[-1]}); check it with `rpicam-hello --list-cameras`"
