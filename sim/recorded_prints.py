"""A recorded set of prints for the false-alarm figure: some fail, some have clutter in view (a
cable the stand-in scores as spaghetti), some both. Each print is a fixed sequence of frames
(sim.frames, deterministic), run through the stand-in's model (sim.frame_scoring scores a frame,
sim.gadget_model turns the scores into warnings and pauses) with or without masks.

Each print's alert episodes are labelled as a user would: an alert before the print failed (or on
a print that never failed) is a false alarm, one after is a real failure; the figures are counted
by the history's own code (agent.history.labels).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from agent.history.labels import FALSE_ALARM, REAL_FAILURE, Episode, Figures, figures
from hardware.camera.framing import Framing
from hardware.camera.masking import apply_framing
from sim.frame_scoring import score_image
from sim.frames import CLUTTER_MASK, render_frame
from sim.gadget_model import ContextModel

FRAMES = 24  # inspections per print
SIZE = (320, 240)
MASKED = Framing(masks=(CLUTTER_MASK,))


@dataclass(frozen=True, slots=True)
class RecordedPrint:
    name: str
    failure_at: float | None  # fraction of the print; None: it succeeds
    clutter: bool  # a cable in view


PRINTS = (
    RecordedPrint("benchy", None, False),
    RecordedPrint("vase", 0.5, False),
    RecordedPrint("bracket-cable", None, True),
    RecordedPrint("gear-cable", None, True),
    RecordedPrint("tower-cable", 0.6, True),
    RecordedPrint("clip", 0.4, False),
)


def episodes(recorded: RecordedPrint, framing: Framing, number: int) -> list[Episode]:
    """The print's alert episodes as the stand-in raises them (an episode: a run of frames with a
    warning or pause suggested), labelled as the user would."""
    model = ContextModel(f"recorded-{recorded.name}")
    found: list[Episode] = []
    open_at: int | None = None
    paused = False
    peak = 0
    for index in range(FRAMES + 1):
        answer: dict[str, object] = {}
        if index < FRAMES:
            progress = index / (FRAMES - 1)
            frame = render_frame(progress, recorded.failure_at, *SIZE, seed=index, clutter=recorded.clutter)
            with Image.open(io.BytesIO(apply_framing(frame, framing))) as image:
                answer = model.observe(score_image(image), None)
        alert = bool(answer.get("WarningSuggested") or answer.get("PauseSuggested"))
        if alert:
            open_at = index if open_at is None else open_at
            paused = paused or bool(answer.get("PauseSuggested"))
            peak = max(peak, int(answer.get("Score", 0)))  # type: ignore[call-overload]
        elif open_at is not None:
            failed_by = None if recorded.failure_at is None else recorded.failure_at * (FRAMES - 1)
            label = REAL_FAILURE if failed_by is not None and open_at >= failed_by else FALSE_ALARM
            found.append(Episode(number, float(open_at), (), paused, peak, label))
            open_at, paused, peak = None, False, 0
    return found


def false_alarm_figures(framing: Framing) -> tuple[Figures, dict[str, list[str]]]:
    """The figures over the whole set, and each print's labels."""
    labels: dict[str, list[str]] = {}
    found: list[Episode] = []
    for number, recorded in enumerate(PRINTS, 1):
        mine = episodes(recorded, framing, number)
        labels[recorded.name] = [e.label or "" for e in mine]
        found += mine
    return figures(found), labels
