"""A second process using the Pi camera, for tests/picamera/: `hold` opens it, captures, says
"held" and keeps it until stdin closes; `capture` captures once and prints the outcome."""

from __future__ import annotations

import io
import sys

from picamera_shims import install
from PIL import Image

install()

from hardware.camera.base import CameraError  # noqa: E402
from hardware.camera.picamera import Picamera2Camera  # noqa: E402


def main(action: str, choice: str) -> None:
    camera = Picamera2Camera(800, 600, choice=choice)
    try:
        frame = camera.capture()
    except CameraError as exc:
        print(f"CameraError: {exc}", flush=True)
        return
    size = Image.open(io.BytesIO(frame)).size
    print(f"{'held' if action == 'hold' else 'captured'} {size[0]}x{size[1]}", flush=True)
    if action == "hold":
        sys.stdin.read()
    camera.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
