"""Synthetic camera frames of a print that may turn into spaghetti.

The frames feed the `dir:` camera and the detection stand-in, so the demo and the tests can show a
failure without a printer. A clean frame holds only large, smooth shapes (bed, part, faint layer
lines); a failed one adds many thin tangled strands, which is what `sim.frame_scoring` looks for.
Everything is drawn from `random.Random(seed)`, so a frame is a pure function of its arguments.
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

FILAMENT = (232, 112, 28)
FILAMENT_SHADE = (214, 101, 24)
BACKGROUND_TOP = (38, 40, 46)
BACKGROUND_BOTTOM = (70, 72, 78)
BED = (120, 124, 130)
CABLE = (205, 205, 200)  # a light cable bundle: it stands out against the dark enclosure
NOISE_ALPHA = 0.04  # faint sensor noise: real cameras are never perfectly flat
MAX_STRANDS = 90  # strands once the failure has run for FULL_MESS of the print
FULL_MESS = 0.25
# Where the clutter lies (fractions of the frame): a tangle of cable in the top right corner, in view
# all print long. Thin strands, so the stand-in scores it as it would spaghetti: a false alarm.
CLUTTER_RECT = (0.76, 0.02, 0.99, 0.34)
CLUTTER_STRANDS = 30
# The mask a user would draw over it: a little larger than the tangle, as a hand draws it.
CLUTTER_MASK = (0.72, 0.0, 1.0, 0.38)


def render_frame(
    progress: float,
    failure_at: float | None,
    width: int = 640,
    height: int = 480,
    seed: int = 0,
    clutter: bool = False,
) -> bytes:
    """One JPEG of the print at `progress` (0..1); from `failure_at` on, spaghetti grows.
    `clutter` adds a tangle of cable in CLUTTER_RECT, the same in every frame."""
    progress = min(max(progress, 0.0), 1.0)
    failed = failure_at is not None and progress >= failure_at
    image = _background(width, height)
    draw = ImageDraw.Draw(image)
    _draw_bed(draw, width, height)
    # A detached part stops growing: the nozzle prints into the air from then on.
    built = failure_at if failed and failure_at is not None else progress
    top = _draw_part(draw, width, height, built)
    if failed and failure_at is not None:
        mess = min((progress - failure_at) / FULL_MESS, 1.0)
        _draw_spaghetti(draw, width, height, top, strands=1 + round(mess * (MAX_STRANDS - 1)), seed=seed)
    if clutter:
        _draw_clutter(draw, width, height)
    image = _add_noise(image, random.Random(f"{seed}:{progress:.6f}"))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def write_frames(directory: str | Path, count: int, failure_at: float | None, seed: int = 0) -> list[Path]:
    """A folder of numbered JPEGs spanning the whole print, for a `dir:` camera source."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"frame_{index:05d}.jpg"
        path.write_bytes(render_frame(index / max(count - 1, 1), failure_at, seed=seed))
        paths.append(path)
    return paths


def _background(width: int, height: int) -> Image.Image:
    """A smooth vertical gradient, like a lit enclosure."""
    column = Image.new("RGB", (1, height))
    for y in range(height):
        t = y / max(height - 1, 1)
        column.putpixel(
            (0, y),
            tuple(round(a + (b - a) * t) for a, b in zip(BACKGROUND_TOP, BACKGROUND_BOTTOM, strict=True)),
        )
    return column.resize((width, height))


def _draw_bed(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    """The build plate in perspective: a trapezoid across the lower part of the frame."""
    draw.polygon(
        [
            (width * 0.18, height * 0.62),
            (width * 0.82, height * 0.62),
            (width * 0.95, height * 0.92),
            (width * 0.05, height * 0.92),
        ],
        fill=BED,
    )


def _draw_part(draw: ImageDraw.ImageDraw, width: int, height: int, built: float) -> float:
    """A block whose height follows `built`; returns the y of its top edge."""
    left, right = width * 0.38, width * 0.62
    base = height * 0.78
    top = base - built * height * 0.45
    if built > 0:
        draw.rectangle([left, top, right, base], fill=FILAMENT)
        # Layer lines: low contrast, so a clean part stays a smooth shape.
        step = max(height // 120, 3)
        y = base - step
        while y > top:
            draw.line([(left, y), (right, y)], fill=FILAMENT_SHADE, width=1)
            y -= step
    return top


def _draw_spaghetti(
    draw: ImageDraw.ImageDraw, width: int, height: int, part_top: float, strands: int, seed: int
) -> None:
    """Thin wandering strands from the nozzle area over the part and onto the bed.

    Strand i is drawn from its own generator, so a later frame holds the earlier frames' strands.
    """
    for index in range(strands):
        rng = random.Random(f"{seed}:strand:{index}")
        x = width * rng.uniform(0.3, 0.7)
        y = part_top - height * rng.uniform(0.0, 0.15)
        heading = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        for _ in range(rng.randint(20, 40)):
            heading += rng.uniform(-0.9, 0.9)
            step = rng.uniform(4, 12) * width / 640
            x = min(max(x + step * math.cos(heading), 0), width - 1)
            y = min(max(y + step * math.sin(heading) + rng.uniform(0, 2), 0), height - 1)
            points.append((x, y))
        shade = FILAMENT if index % 3 else FILAMENT_SHADE
        draw.line(points, fill=shade, width=max(2, width // 320), joint="curve")


def _draw_clutter(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    """Thin dark wiggles within CLUTTER_RECT: a cable bundle, the same in every frame."""
    x0, y0, x1, y1 = CLUTTER_RECT
    rng = random.Random("clutter")
    for _ in range(CLUTTER_STRANDS):
        points = []
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        for _ in range(12):
            x = min(max(x + rng.uniform(-0.02, 0.02), x0), x1)
            y = min(max(y + rng.uniform(-0.03, 0.03), y0), y1)
            points.append((x * width, y * height))
        draw.line(points, fill=CABLE, width=max(2, width // 320))


def _add_noise(image: Image.Image, rng: random.Random) -> Image.Image:
    noise = Image.frombytes("L", image.size, rng.randbytes(image.width * image.height)).convert("RGB")
    return Image.blend(image, noise, NOISE_ALPHA)
