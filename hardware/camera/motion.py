"""Does the scene move? Each frame compared with the last at low resolution.

The frame is decoded at 1/8 scale (libjpeg's DCT scaling: a few ms, as the frame check does),
reduced to THUMB_WIDTH pixels across, in colour (an orange part over a grey bed differs in hue
more than in brightness). Two thumbnails differ when at least CHANGED_SHARE of their pixel
channels moved by more than CHANGED_LEVELS levels: sensor noise and JPEG artefacts,
averaged over a block of the full frame, stay far below that; a print head, a growing part or a
hand in view exceed it. A lighting change counts as movement too: wrongly "moving" only costs an
inspection, wrongly "still" would stop them.
"""

from __future__ import annotations

import io

from PIL import Image, ImageChops

THUMB_WIDTH = 64
CHANGED_LEVELS = 8
CHANGED_SHARE = 0.002  # of the thumbnail's pixel channels: 14 of 64x36x3


def thumbnail(jpeg: bytes) -> Image.Image | None:
    """The frame small, or None for a frame that does not decode."""
    try:
        image = Image.open(io.BytesIO(jpeg), formats=["JPEG"])
        image.draft("RGB", (image.width // 8, image.height // 8))
        small = image.convert("RGB")
    except (OSError, SyntaxError, Image.DecompressionBombError):
        return None
    height = max(1, round(small.height * THUMB_WIDTH / small.width))
    return small.resize((THUMB_WIDTH, height), Image.Resampling.BOX)


def changed(before: Image.Image, after: Image.Image) -> bool:
    if before.size != after.size:
        return True  # the camera's resolution or the crop changed: no comparison is fair
    histogram = ImageChops.difference(before, after).histogram()
    moved = sum(
        sum(histogram[band + CHANGED_LEVELS + 1 : band + 256]) for band in range(0, len(histogram), 256)
    )
    return moved >= CHANGED_SHARE * before.width * before.height * len(before.getbands())
