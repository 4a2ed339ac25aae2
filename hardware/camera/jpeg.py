"""JPEG post-processing shared by the camera backends: size limit and software rotation."""

from __future__ import annotations

import io
import math

from PIL import Image

from hardware.camera.base import CameraError

# Every JPEG starts with the SOI marker.
JPEG_MAGIC = b"\xff\xd8"
# The detection service rejects larger uploads.
MAX_FRAME_BYTES = 6 * 1024 * 1024
# Below this, JPEG artefacts start to look like the stringy defects the detector is meant to find;
# past it, losing pixels costs less than losing quality.
QUALITY_FLOOR = 60
_QUALITY_STEP = 15
# Smallest side worth sending: a frame that only fits below this is a misconfiguration, not a photo.
_MIN_SIDE = 64

# Clockwise degrees, as users state a camera's rotation; Pillow's ROTATE_* turn counter-clockwise.
_CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def _decode(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise CameraError(f"the camera returned an image that cannot be decoded: {exc}") from exc
    # JPEG can also hold CMYK or YCCK, which the detector should never see.
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def _encode(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def fit_jpeg(data: bytes, max_bytes: int = MAX_FRAME_BYTES, quality: int = 85) -> bytes:
    """Return `data` if it is at most `max_bytes`, else a re-encoded frame that is.

    Small frames come back untouched, so the usual case costs nothing. A big one is re-encoded at
    `quality` and lower (down to QUALITY_FLOOR), then scaled down until it fits.
    """
    if len(data) <= max_bytes:
        return data
    image = _decode(data)
    size = len(data)
    ladder = [*range(quality, QUALITY_FLOOR, -_QUALITY_STEP), min(quality, QUALITY_FLOOR)]
    for q in ladder:
        # Quality alone seldom halves a frame: far over the limit, skip straight to scaling.
        if size > 2 * max_bytes:
            break
        out = _encode(image, q)
        if len(out) <= max_bytes:
            return out
        size = len(out)
    while True:
        # Encoded size grows roughly with the pixel count; aim a little under the limit.
        scale = math.sqrt(max_bytes / size) * 0.9
        width, height = int(image.width * scale), int(image.height * scale)
        if min(width, height) < _MIN_SIDE:
            raise CameraError(f"cannot fit a camera frame into {max_bytes} bytes; lower the resolution")
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        out = _encode(image, ladder[-1])
        if len(out) <= max_bytes:
            return out
        size = len(out)


def rotate_jpeg(data: bytes, degrees: int, quality: int) -> bytes:
    """Rotate a JPEG clockwise by 90, 180 or 270 degrees, for cameras that cannot do it themselves."""
    return _encode(_decode(data).transpose(_CLOCKWISE[degrees]), quality)
