"""The stand-in's "model": how much thin, tangled structure a frame holds.

Spaghetti is many thin strands; a healthy print is a few large smooth shapes. A median filter wipes
out structures thinner than its window while keeping large shapes and their edges, so the
difference between a frame and its median-filtered self lights up exactly the thin strands. The
share of such pixels is the mess; it maps to a 0..100 score that rises as the mess grows.
Nothing but the pixels is used, so any JPEG (a synthetic frame, a real photo) gets a score.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter

WORK_WIDTH = 320  # score at a fixed scale so the result does not depend on the camera resolution
MEDIAN_WINDOW = 5  # wider than a strand at WORK_WIDTH, narrower than the part
RESIDUAL_THRESHOLD = 28  # grey levels: above sensor noise, JPEG ringing and layer lines
HALF_SCORE_SHARE = 0.004  # share of thin-structure pixels that scores 50


def thin_structure_share(image: Image.Image) -> float:
    """Fraction of pixels that belong to structures thinner than the median window."""
    grey = image.convert("L")
    height = max(round(grey.height * WORK_WIDTH / grey.width), 1)
    grey = grey.resize((WORK_WIDTH, height), Image.Resampling.BILINEAR)
    residual = ImageChops.difference(grey, grey.filter(ImageFilter.MedianFilter(MEDIAN_WINDOW)))
    histogram = residual.histogram()
    return sum(histogram[RESIDUAL_THRESHOLD + 1 :]) / (grey.width * grey.height)


def score_image(image: Image.Image) -> int:
    """0 (clean) .. 100 (a mess): a saturating curve of the thin-structure share."""
    share = thin_structure_share(image)
    return min(100, round(100 * share / (share + HALF_SCORE_SHARE)))
