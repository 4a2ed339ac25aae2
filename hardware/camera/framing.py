"""A frame's masks and crop as plain values, and their checks (no Pillow: settings import this).

Rectangles are fractions of the frame, (x0, y0, x1, y1) with 0 at the left/top, so they survive a
change of resolution. `hardware.camera.masking` applies them to the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

Rect = tuple[float, float, float, float]
# Mid grey: no edges inside it, and no colour the detector could take for a part or a strand.
MASK_FILL = (128, 128, 128)
# The smallest crop kept, as a share of each side: below it the frame is no picture of a print.
MIN_CROP_SIDE = 0.1


@dataclass(frozen=True, slots=True)
class Framing:
    masks: tuple[Rect, ...] = ()
    crop: Rect | None = None

    @property
    def empty(self) -> bool:
        return not self.masks and self.crop is None


NO_FRAMING = Framing()


def check_rect(rect: Rect, what: str = "rectangle") -> Rect:
    """`rect` as four floats within 0..1 with x0 < x1 and y0 < y1; ValueError says what is wrong."""
    if len(rect) != 4:
        raise ValueError(f"a {what} is [x0, y0, x1, y1], got {len(rect)} numbers")
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
        raise ValueError(f"a {what} is in fractions of the frame, 0 to 1, got {list(rect)}")
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"a {what} needs x0 < x1 and y0 < y1, got {list(rect)}")
    return (x0, y0, x1, y1)


def check_crop(rect: Rect) -> Rect:
    x0, y0, x1, y1 = check_rect(rect, "crop")
    if x1 - x0 < MIN_CROP_SIDE or y1 - y0 < MIN_CROP_SIDE:
        raise ValueError(f"a crop keeps at least {MIN_CROP_SIDE:.0%} of each side, got {list(rect)}")
    return (x0, y0, x1, y1)
