"""Synthetic frames and the stand-in's scorer: clean prints score low, spaghetti high and rising."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import pytest
from PIL import Image

from sim.frame_scoring import score_image
from sim.frames import render_frame, write_frames

PROGRESS = [step / 10 for step in range(11)]
SMALL = {"width": 320, "height": 240}  # sweeps at a small size keep the suite fast; the scorer scales


def score(jpeg: bytes) -> int:
    return score_image(Image.open(io.BytesIO(jpeg)))


@pytest.mark.parametrize("seed", [0, 7])
def test_clean_frames_score_low_across_the_whole_print(seed: int) -> None:
    scores = [score(render_frame(progress, None, seed=seed, **SMALL)) for progress in PROGRESS]
    assert max(scores) < 20, scores


@pytest.mark.parametrize("seed", [0, 7])
def test_spaghetti_scores_high_and_rises_as_the_mess_grows(seed: int) -> None:
    failure_at = 0.3
    before = [score(render_frame(progress, failure_at, seed=seed, **SMALL)) for progress in (0.0, 0.15, 0.29)]
    after = [
        score(render_frame(failure_at + step * 0.05, failure_at, seed=seed, **SMALL)) for step in range(2, 15)
    ]
    assert max(before) < 20, before
    assert min(after) > 70, after
    # The onset rises steeply; once saturated, overlapping strands may cost a point or two.
    onset = [
        score(render_frame(progress, failure_at, seed=seed, **SMALL)) for progress in (0.3, 0.31, 0.33, 0.35)
    ]
    assert onset == sorted(onset) and onset[0] < after[0], onset
    assert all(later >= earlier - 3 for earlier, later in pairwise(after)), after


@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480), (1280, 720)])
def test_scores_do_not_depend_on_the_camera_resolution(width: int, height: int) -> None:
    assert score(render_frame(0.6, None, width=width, height=height)) < 20
    assert score(render_frame(0.6, 0.3, width=width, height=height)) > 70


def test_frames_are_deterministic_given_the_seed() -> None:
    assert render_frame(0.5, 0.3, seed=3) == render_frame(0.5, 0.3, seed=3)
    assert render_frame(0.5, 0.3, seed=3) != render_frame(0.5, 0.3, seed=4)


def test_render_frame_makes_a_jpeg_of_the_requested_size() -> None:
    image = Image.open(io.BytesIO(render_frame(0.2, None, width=320, height=240)))
    assert (image.format, image.size) == ("JPEG", (320, 240))


def test_write_frames_makes_a_numbered_folder_for_a_dir_camera(tmp_path: Path) -> None:
    paths = write_frames(tmp_path / "frames", 5, failure_at=0.5)
    assert [p.name for p in paths] == sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert len(paths) == 5
    assert score(paths[0].read_bytes()) < 20
    assert score(paths[-1].read_bytes()) > 70
