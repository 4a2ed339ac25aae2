"""Where the frame's masks and crop come from, and how the page saves them.

Two places may hold them: the config file (or environment), `camera.masks` / `camera.crop`, and
`framing.json` in the state directory, which the page writes when the user draws a rectangle over
the live frame. The config wins, key by key, whenever it sets the key (even to `[]`): a fleet
provisioned by configuration management stays as provisioned, and the page shows such a key as
set in the config. A key the config leaves out comes from the saved file, so what the user drew
survives a restart. `layerguard doctor` says which source is in effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.settings import Settings
from agent.store import JsonRecord
from hardware.camera.framing import Framing, check_crop, check_rect

FRAMING_FILE = "framing.json"  # in agent.state_dir


@dataclass(frozen=True, slots=True)
class FramingInEffect:
    framing: Framing
    masks_from: str  # "config", "page" (the saved file) or "none"
    crop_from: str

    def describe(self) -> str:
        f = self.framing
        masks = f"{len(f.masks)} mask(s) from the {self.masks_from}" if f.masks else "no masks"
        crop = f"crop {list(f.crop)} from the {self.crop_from}" if f.crop else "no crop"
        return f"{masks}, {crop}"


def record(state_dir: Path) -> JsonRecord:
    return JsonRecord(state_dir / FRAMING_FILE)


def load_saved(state_dir: Path) -> Framing:
    """What the page saved; nothing (or a file that does not hold valid rectangles) is no framing."""
    value = record(state_dir).load() or {}
    try:
        masks = tuple(check_rect(tuple(rect), "mask") for rect in value.get("masks") or ())
        crop = check_crop(tuple(value["crop"])) if value.get("crop") else None
    except (TypeError, ValueError):
        return Framing()
    return Framing(masks, crop)


def save(state_dir: Path, masks: list[Any], crop: Any | None) -> Framing:
    """Check and save what the page drew (ValueError says what is wrong, nothing is written);
    returns it as a Framing. The config's keys still win over it (see `in_effect`)."""
    framing = Framing(
        tuple(check_rect(tuple(rect), "mask") for rect in masks),
        check_crop(tuple(crop)) if crop else None,
    )
    record(state_dir).save({"masks": [list(m) for m in framing.masks], "crop": _list(framing.crop)})
    return framing


def in_effect(settings: Settings) -> FramingInEffect:
    """The framing the capture path applies, and where each part came from."""
    camera = settings.camera
    saved = load_saved(settings.agent.state_dir)
    if "masks" in camera.model_fields_set:
        masks, masks_from = tuple(camera.masks), "config"
    else:
        masks, masks_from = saved.masks, "page"
    if "crop" in camera.model_fields_set:
        crop, crop_from = camera.crop, "config"
    else:
        crop, crop_from = saved.crop, "page"
    return FramingInEffect(
        Framing(masks, crop),
        masks_from if masks else "none",
        crop_from if crop else "none",
    )


def save_and_apply(settings: Settings, camera: Any, masks: list[Any], crop: Any | None) -> FramingInEffect:
    """What the page calls when the user has drawn: save (ValueError, nothing saved, for a bad
    rectangle), then hand the framing now in effect to the running agent's camera
    (hardware.camera.factory.FittedCamera), which applies it from the next capture on."""
    save(settings.agent.state_dir, masks, crop)
    framing = in_effect(settings)
    camera.framing = framing.framing
    return framing


def locked_by_config(settings: Settings) -> set[str]:
    """The keys the page cannot change: the config file or the environment sets them."""
    return {"masks", "crop"} & settings.camera.model_fields_set


def _list(rect: tuple[float, ...] | None) -> list[float] | None:
    return None if rect is None else list(rect)
