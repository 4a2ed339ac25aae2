"""Masks and crop: the checks, where they come from (config or the page's file), and that the
uploaded frame and the MQTT snapshot (the same bytes the history keeps) are the masked one."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from test_end_to_end import TIMING, running, until

from agent import framing
from agent.assembly import build_agent
from agent.settings import CameraSection, ConfigError, Settings, load_settings
from hardware.camera.framing import MASK_FILL, Framing
from hardware.camera.masking import apply_framing
from sim.broker import MosquittoBroker
from sim.frames import CLUTTER_MASK, render_frame
from sim.mqtt_probe import MqttProbe
from sim.world import sim_world

PREFIX = "layerguard/framing"


def test_masks_paint_flat_grey_and_crop_keeps_the_rectangle() -> None:
    frame = render_frame(0.5, None, 640, 480, clutter=True)
    out = Image.open(
        io.BytesIO(apply_framing(frame, Framing(((0.0, 0.0, 0.5, 0.5),), (0.0, 0.0, 0.75, 1.0))))
    )
    assert out.size == (480, 480)
    assert all(abs(c - m) <= 3 for c, m in zip(out.getpixel((100, 100)), MASK_FILL, strict=True))
    assert apply_framing(frame, Framing()) is frame  # nothing to do: the frame untouched


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("masks = [[0.1, 0.1, 1.2, 0.5]]", "camera.masks: a mask is in fractions of the frame, 0 to 1"),
        ("masks = [[0.5, 0.1, 0.2, 0.5]]", "camera.masks: a mask needs x0 < x1 and y0 < y1"),
        ("crop = [0.1, 0.1, 0.15, 0.9]", "camera.crop: a crop keeps at least 10% of each side"),
        ("crop = [0.1, 0.1, 0.9]", "camera.crop: a crop is [x0, y0, x1, y1], got 3 numbers"),
    ],
)
def test_a_bad_rectangle_names_the_setting(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[camera]\n{toml}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(path)


def test_the_page_saves_and_the_config_wins_key_by_key(tmp_path: Path) -> None:
    def settings(**camera: object) -> Settings:
        s = Settings()
        s.agent.state_dir = tmp_path
        s.camera = CameraSection(**camera)  # type: ignore[arg-type]
        return s

    assert framing.in_effect(settings()).describe() == "no masks, no crop"
    with pytest.raises(ValueError, match="x0 < x1"):
        framing.save(tmp_path, [[0.5, 0, 0.2, 1]], None)
    assert not (tmp_path / framing.FRAMING_FILE).exists()  # nothing written for a bad rectangle
    framing.save(tmp_path, [[0, 0, 0.2, 0.2]], [0.1, 0.0, 0.9, 1.0])
    shown = framing.in_effect(settings())
    assert shown.framing == Framing(((0, 0, 0.2, 0.2),), (0.1, 0.0, 0.9, 1.0))
    assert (shown.masks_from, shown.crop_from) == ("page", "page")
    # A key the config sets, even to nothing, wins over the page; the other still comes from it.
    configured = settings(masks=[])
    shown = framing.in_effect(configured)
    assert shown.framing == Framing((), (0.1, 0.0, 0.9, 1.0))
    assert framing.locked_by_config(configured) == {"masks"}
    assert shown.describe() == "no masks, crop [0.1, 0.0, 0.9, 1.0] from the page"
    # A damaged file is no framing, not a crash.
    (tmp_path / framing.FRAMING_FILE).write_text(json.dumps({"masks": [[2, 0, 3, 1]]}))
    assert framing.load_saved(tmp_path) == Framing()


async def test_the_service_and_the_snapshot_get_the_masked_frame(
    broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe], tmp_path: Path
) -> None:
    """A clean print with a cable in view: masked, the stand-in sees grey where the cable is,
    scores the print clean, and the retained snapshot is the very frame it was sent."""
    probe = mqtt_probe(f"{PREFIX}/#")
    with sim_world(
        file="cube.gcode",
        failure_at=None,
        print_duration_s=120.0,  # never waited out: the four calls come long before the end
        interval_s=0.5,
        heat_duration_s=0.3,
        frame_size=(320, 240),
        broker=broker,
        clutter=True,
    ) as world:
        world.service.probe = CLUTTER_MASK
        settings = world.settings(tmp_path, printer_id="framing")
        settings.mqtt.topic_prefix = "layerguard"
        framing.save(tmp_path, [list(CLUTTER_MASK)], None)  # drawn on the page
        agent = build_agent(settings, timing=TIMING)
        async with running(agent):
            await until(agent, lambda s: s.print_state == "idle")
            world.printer.panel_start("cube.gcode")
            await until(agent, lambda s: s.last_inspection is not None)
            calls = await asyncio.to_thread(world.service.wait_for_calls, 4, 20)
        uploads = [c.files[0] for c in calls if c.endpoint == "process" and c.files]
        assert uploads and all(f.probe_masked is not None and f.probe_masked > 0.97 for f in uploads)
        scores = [c.answer["Score"] for c in calls if c.endpoint == "process" and c.answer]
        assert scores and max(scores) < 30  # unmasked, the cable scores about 70
        snapshot = probe.messages(f"{PREFIX}/snapshot")[-1].payload
        assert hashlib.sha256(snapshot).hexdigest() in {f.sha256 for f in uploads}
