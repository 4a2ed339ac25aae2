"""JPEG checks and post-processing shared by the camera backends: every frame is checked to decode
before it is paid for, held within the size limits, and rotated in software when the camera cannot.

Memory stays bounded whatever a camera delivers: frames are refused above MAX_CAMERA_FRAME_BYTES
and MAX_FRAME_PIXELS, and decoded at reduced size (libjpeg's DCT scaling, Pillow's draft mode)
wherever the full size is not needed.
"""

from __future__ import annotations

import io
import math

from PIL import Image

from hardware.camera.base import CameraError

# Every JPEG starts with the SOI marker.
JPEG_MAGIC = b"\xff\xd8"
# The default most a fitted frame may be; the agent passes its detector's own limit
# (agent.detection.base.MAX_IMAGE_BYTES, the service's), hardware/ knowing no service.
MAX_FRAME_BYTES = 6 * 1024 * 1024
# The largest frame accepted from a camera at all (twice what the service takes): past this a
# camera or streamer is set to a resolution no detector needs, and the frame is a camera error.
MAX_CAMERA_FRAME_BYTES = 12 * 1024 * 1024
# The most pixels a frame may declare: above the largest Pi camera sensor (64 MP). A JPEG of a
# flat colour is tiny in bytes however many pixels it claims, so bytes alone are no bound.
MAX_FRAME_PIXELS = 64_000_000
# A frame that must be re-encoded is decoded at the DCT scale (1/2, 1/4, 1/8) that brings it to at
# most this many pixels: 12 MB of RGB, more detail than the detector uses.
FIT_DECODE_PIXELS = 4_000_000
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


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, int]:
    """The frame decoded completely, at the largest DCT scale that gives at most `max_pixels`
    (down to 1/8 per side), and its pixel count at full size. Raises CameraError for anything that
    is not a whole JPEG within MAX_FRAME_PIXELS."""
    try:
        image = Image.open(io.BytesIO(data), formats=["JPEG"])
        pixels = image.width * image.height
        if pixels > MAX_FRAME_PIXELS:
            raise CameraError(
                f"the camera returned a {image.width}x{image.height} frame, over the "
                f"{MAX_FRAME_PIXELS // 1_000_000} MP cap; lower the camera's resolution"
            )
        scale = next((s for s in (1, 2, 4) if pixels <= max_pixels * s * s), 8)
        if scale > 1:
            image.draft(image.mode, (image.width // scale, image.height // scale))
        image.load()
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CameraError(f"the camera returned an image that cannot be decoded: {exc}") from exc
    # JPEG can also hold CMYK or YCCK, which the detector should never see.
    return (image if image.mode in ("RGB", "L") else image.convert("RGB")), pixels


def _encode(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def fit_jpeg(data: bytes, max_bytes: int = MAX_FRAME_BYTES, quality: int = 85) -> bytes:
    """Return `data` if it is a JPEG that decodes completely and is at most `max_bytes`, else a
    re-encoded frame that is. Raises CameraError for a broken or oversized frame.

    This is the check before a frame is paid for: a truncated or mislabelled frame fails here, not
    at the service. A small frame is decoded at 1/8 scale only (a few ms) and comes back untouched.
    A big one is decoded at reduced size, re-encoded at `quality` and lower (down to QUALITY_FLOOR),
    then scaled down until it fits.
    """
    if len(data) > MAX_CAMERA_FRAME_BYTES:
        raise CameraError(frame_too_large(len(data)))
    if len(data) <= max_bytes:
        _decode(data, max_pixels=1)
        return data
    image, full_pixels = _decode(data, FIT_DECODE_PIXELS)
    # Encoded size grows roughly with the pixel count: what the reduced image would take at full quality.
    size = len(data) * image.width * image.height // full_pixels
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


def orient_jpeg(
    data: bytes, quality: int, hflip: bool = False, vflip: bool = False, degrees: int = 0
) -> bytes:
    """Flip a JPEG, then rotate it clockwise by 0, 90, 180 or 270 degrees: what a camera could not
    do itself."""
    image, _ = _decode(data, MAX_FRAME_PIXELS)
    if hflip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if vflip:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if degrees:
        image = image.transpose(_CLOCKWISE[degrees])
    return _encode(image, quality)


def frame_too_large(size: int | None) -> str:
    """The camera error for a frame over MAX_CAMERA_FRAME_BYTES (`size` None: not known, as its
    reading stopped at the cap), the same from every backend."""
    what = f"is {size} bytes, over" if size is not None else "runs past"
    return (
        f"the camera frame {what} the {MAX_CAMERA_FRAME_BYTES} bytes accepted; "
        "lower the camera's resolution or JPEG quality"
    )
