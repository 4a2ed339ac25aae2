"""Figure: what masks and a crop cost per 1280x720 frame (decode, paint, crop, re-encode).

Rows: the painting alone (the goal: < 5 ms), the whole framing step as the capture path runs it
(decode and re-encode included: what a frame really costs), the frame check the capture path
makes anyway (decode at 1/8), for comparison, and the stillness watch's motion check per frame."""

from __future__ import annotations

import io
import time

from PIL import Image

from bench.launch import CAMERA_SIZE
from bench.report import Row, below
from hardware.camera.framing import Framing
from hardware.camera.jpeg import fit_jpeg
from hardware.camera.masking import apply_framing, apply_framing_image
from hardware.camera.motion import changed, thumbnail
from sim.frames import render_frame

# Three clutter masks (a clip, a logo, a cable run) and a crop to the bed.
FRAMING = Framing(
    masks=((0.0, 0.0, 0.15, 0.2), (0.8, 0.05, 0.98, 0.25), (0.0, 0.7, 0.3, 1.0)),
    crop=(0.1, 0.05, 0.9, 1.0),
)


def measure(repeats: int) -> list[Row]:
    frame = render_frame(0.6, 0.5, *CAMERA_SIZE, seed=1)
    decoded = Image.open(io.BytesIO(frame))
    decoded.load()
    paint = _timed(lambda: apply_framing_image(decoded.copy(), FRAMING), repeats)
    copy = _timed(decoded.copy, repeats)  # subtracted: the painting works on a copy only here
    whole = _timed(lambda: apply_framing(frame, FRAMING), repeats)
    check = _timed(lambda: fit_jpeg(frame), repeats)
    first = thumbnail(frame)
    assert first is not None
    motion = _timed(lambda: changed(first, thumbnail(frame) or first), repeats)
    size = f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}"
    return [
        Row(
            f"masks + crop, painting ({size})",
            "ms",
            [max(0.0, p - c) for p, c in zip(paint, copy, strict=True)],
            goal=below(5, "ms", of="median"),
            digits=2,
        ),
        Row(f"masks + crop, decode..encode ({size})", "ms", whole, note="what a framed capture adds"),
        Row(f"frame check without framing ({size})", "ms", check, digits=2),
        Row(f"motion check, thumbnail + compare ({size})", "ms", motion, digits=2, note="off the loop"),
    ]


def _timed(work: object, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return samples
