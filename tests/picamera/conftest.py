"""The Pi camera tier: marked `picamera`, left out of the default run; scripts/picamera-test.sh
runs it inside the root of scripts/picamera-root.sh, where the real picamera2 and libcamera are.
Elsewhere its tests are skipped with that hint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_ROOT = os.environ.get("LAYERGUARD_PICAMERA_ROOT") == "1"

if IN_ROOT:
    from picamera_shims import VIRTUAL_YAML, VIRTUAL_YAML_PATH, install

    VIRTUAL_YAML_PATH.parent.mkdir(parents=True, exist_ok=True)
    VIRTUAL_YAML_PATH.write_text(VIRTUAL_YAML)
    install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if IN_ROOT:
        return
    skip = pytest.mark.skip(reason="runs in the Pi camera root: sudo scripts/picamera-test.sh")
    for item in items:
        if item.path.parent == Path(__file__).parent:
            item.add_marker(skip)
