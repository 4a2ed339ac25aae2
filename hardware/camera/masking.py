"""Masks and a crop, applied to every frame before anything else sees it.

A mask paints a rectangle of the frame in a flat colour (a bed clip, a logo, a cable the detector
takes for spaghetti); the crop keeps one rectangle (cuts away what is not the bed). Rectangles are
fractions of the frame, (x0, y0, x1, y1) with 0 at the left/top, so they survive a change of
resolution. The masked, cropped frame is the one the service sees, the one kept as evidence and
the one shown: it is made once, in the capture path.

The rectangles themselves (plain values, no Pillow) are in `hardware.camera.framing`.
"""

from __future__ import annotations

import io

from PIL import Image

from hardware.camera.base import CameraError
from hardware.camera.framing import MASK_FILL, Framing, Rect


def _box(rect: Rect, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = rect
    return (round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))


def apply_framing_image(image: Image.Image, framing: Framing) -> Image.Image:
    """The decoded frame with its masks painted (in place) and then cropped."""
    # A flat fill by paste, not ImageDraw: that would load ImageFont and FreeType (~2 MB) for
    # rectangles.
    fill = MASK_FILL if image.mode == "RGB" else MASK_FILL[0]
    for rect in framing.masks:
        image.paste(fill, _box(rect, image.width, image.height))
    if framing.crop is not None:
        image = image.crop(_box(framing.crop, image.width, image.height))
    return image


def apply_framing(jpeg: bytes, framing: Framing, quality: int = 85) -> bytes:
    """`jpeg` masked and cropped, re-encoded at `quality`; untouched when there is nothing to do.
    Raises CameraError for a frame that does not decode."""
    if framing.empty:
        return jpeg
    try:
        image = Image.open(io.BytesIO(jpeg), formats=["JPEG"])
        image.load()
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CameraError(f"the camera returned an image that cannot be decoded: {exc}") from exc
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    apply_framing_image(image, framing).save(out, format="JPEG", quality=quality)
    return out.getvalue()
