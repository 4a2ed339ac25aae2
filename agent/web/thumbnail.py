"""Smaller copies of a camera frame, for the live view and the Pi's overview."""

from __future__ import annotations

import io


def reduced(jpeg: bytes, width: int, quality: int, max_bytes: int = 0) -> bytes:
    """The frame at most `width` pixels wide and high, as JPEG; with `max_bytes`, the quality
    steps down (and then the size) until it fits, so a busy scene cannot blow a byte budget."""
    from PIL import Image

    image = Image.open(io.BytesIO(jpeg))
    image.draft("RGB", (width, width))  # JPEG decoded at a fraction: cheap on a Pi
    image = image.convert("RGB")
    image.thumbnail((width, width))
    while True:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, optimize=bool(max_bytes))
        if not max_bytes or out.tell() <= max_bytes or image.width < 64:
            return out.getvalue()
        if quality > 30:
            quality -= 15
        else:
            image.thumbnail((image.width * 3 // 4, image.height * 3 // 4))
