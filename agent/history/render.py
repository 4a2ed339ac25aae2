"""The timeline picture of one print: the failure score over time with what happened marked on it,
and the evidence frames in a strip underneath. Drawn with matplotlib (Agg), as a PNG.

Sized for both places people look at it: a phone (the notification, the Home Assistant app) and
Home Assistant's image card. So few, large labels, and the frames big enough to see spaghetti.
Run as `python -m agent.history.render DB PRINT OUT.png` by the agent's report worker; the CLI
calls `write_report` in its own process.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.history.store import (
    EVIDENCE_DIR,
    InspectionRow,
    Timeline,
    connect_readonly,
    find_print,
    load_timeline,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN, DPI = 8.0, 150  # 1200 px wide
# Heights in inches: the header, the whole print (only above a close-up), a chart, the frames.
HEADER_IN, OVERVIEW_IN, CHART_IN, STRIP_IN = 1.15, 1.3, 3.0, 1.95
# A close-up of the eventful stretch is drawn when that stretch is less than this share of the print.
FOCUS_MAX_SHARE = 0.35
LABEL_CHAR_WIDTH = 0.0135  # of the chart's width, one character of a moment's label
DENSE_INSPECTIONS = 150
MAX_FRAMES = 4  # in the strip; more would be too small to see on a phone
THUMB_PX = 480
INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
SCORE, PROGRESS = "#3e4c59", "#2680c2"
COLORS = {
    "warning": "#f29b0c",
    "paused_by_agent": "#d64545",
    "pause_failed": "#d64545",
    "paused": "#7b8794",
    "resumed": "#3f9142",
    "finished": "#3f9142",
    "cancelled": "#7b8794",
    "lost": "#7b8794",
    "error": "#d64545",
    "running": "#2680c2",
}
OUTCOME_TEXT = {
    "paused_by_agent": "PAUSED BY LAYERGUARD",
    "pause_failed": "PAUSE FAILED",
    "running": "PRINTING",
    "finished": "FINISHED",
    "cancelled": "CANCELLED",
    "lost": "LOST",
    "error": "PRINTER ERROR",
}
ENDS = {
    "print_finished": "finished",
    "print_cancelled": "cancelled",
    "print_lost": "lost",
    "printer_error": "error",
}


@dataclass(frozen=True, slots=True)
class Marker:
    at: float
    label: str
    color: str
    style: str = "-"


def write_report(db_path: Path, print_ref: str, out: Path) -> int:
    """Draw the print `print_ref` (`last` or a number) into `out`; returns its number."""
    with connect_readonly(db_path) as conn:
        timeline = load_timeline(conn, find_print(conn, print_ref))
    figure = draw(timeline, db_path.parent / EVIDENCE_DIR)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=DPI, facecolor="white")
    return timeline.print.id


def draw(timeline: Timeline, evidence_dir: Path) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    frames = _strip(timeline.inspections, evidence_dir)
    p = timeline.print
    whole = (p.started_at, max(p.ended_at or p.last_at, p.started_at + 10))
    focus = _focus(timeline, whole)
    rows = [(HEADER_IN, None)]
    if focus is not None:
        rows += [(OVERVIEW_IN, "overview"), (CHART_IN, "focus")]
    else:
        rows.append((CHART_IN + (0.6 if frames else 0.0), "chart"))
    if frames:
        rows.append((STRIP_IN, "strip"))
    height = sum(h for h, _ in rows)
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    grid = fig.add_gridspec(
        len(rows),
        max(len(frames), 1),
        height_ratios=[h for h, _ in rows],
        hspace=0.0,
        wspace=0.06,
        left=0.09,
        right=0.9,
        top=1.0,
        bottom=0.1 / height,
    )
    _header(fig, timeline)
    for row, (_, part) in enumerate(rows):
        if part == "overview":
            ax = _inset(fig, grid[row, :], top=0.15, bottom=0.3)
            _chart(ax, timeline, whole, [], labels=False)
            assert focus is not None
            ax.axvspan(_local(focus[0]), _local(focus[1]), color=COLORS["warning"], alpha=0.12, zorder=1)
            ax.set_title("whole print", fontsize=10, color=MUTED, loc="left", pad=3)
        elif part in ("focus", "chart"):
            ax = _inset(fig, grid[row, :], top=0.08 if part == "focus" else 0.02, bottom=0.11)
            _chart(ax, timeline, focus or whole, frames, labels=True)
            if part == "focus":
                ax.set_title("close-up", fontsize=10, color=MUTED, loc="left", pad=3)
        elif part == "strip":
            for column, (number, inspection, image) in enumerate(frames):
                _frame(_inset(fig, grid[row, column], top=0.22, bottom=0.02), number, inspection, image)
    return fig


def _inset(fig: Figure, cell: Any, top: float, bottom: float) -> Axes:
    """An axes inside a grid cell, leaving room (fractions of the cell) for titles and tick labels."""
    box = cell.get_position(fig)
    return fig.add_axes((box.x0, box.y0 + bottom * box.height, box.width, box.height * (1 - top - bottom)))


def _focus(timeline: Timeline, whole: tuple[float, float]) -> tuple[float, float] | None:
    """The stretch worth a close-up: from just before the first frame kept as evidence (or the
    first flagged inspection) to the end; None when that is most of the print anyway."""
    firsts = [i.at for i in timeline.inspections if i.frame or i.warning or i.pause_suggested][:1]
    if not firsts:
        return None
    span = whole[1] - whole[0]
    before = [i.at for i in timeline.inspections if i.at < firsts[0]][-3:]
    start = min([firsts[0], *before]) - 0.02 * span
    if (whole[1] - start) / span > FOCUS_MAX_SHARE:
        return None
    return max(start, whole[0]), whole[1]


# -- the parts --------------------------------------------------------------------------------


def _header(fig: Figure, timeline: Timeline) -> None:
    p = timeline.print
    height = fig.get_figheight()
    start = _local(p.started_at)
    end = _local(p.ended_at or p.last_at)
    minutes = max(0, round(((p.ended_at or p.last_at) - p.started_at) / 60))
    duration = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    file = p.file or "(unnamed print)"
    fig.text(0.03, 1 - 0.2 / height, shorten(file, 44), fontsize=19, weight="bold", color=INK, va="top")
    peak = "-" if p.peak_score is None else p.peak_score
    details = (
        f"{start:%a %d %b %Y, %H:%M} to {end:%H:%M} ({duration})\n"
        f"peak score {peak} · {p.inspections} inspections · "
        f"{p.api_calls} API calls · #{p.id}"
    )
    fig.text(0.03, 1 - 0.62 / height, details, fontsize=11, color=MUTED, va="top", linespacing=1.45)
    fig.text(
        0.97,
        1 - 0.66 / height,
        OUTCOME_TEXT.get(p.outcome, p.outcome.upper()),
        fontsize=13,
        weight="bold",
        color="white",
        ha="right",
        va="top",
        bbox={"boxstyle": "round,pad=0.45", "facecolor": COLORS.get(p.outcome, MUTED), "edgecolor": "none"},
    )


def _chart(
    ax: Axes,
    timeline: Timeline,
    window: tuple[float, float],
    frames: list[tuple[int, InspectionRow, Any]],
    labels: bool,
) -> None:
    from matplotlib import dates

    tz = _local(window[0]).tzinfo
    margin = 0.015 * (window[1] - window[0])
    ax.set_xlim(_local(window[0] - margin), _local(window[1] + margin))
    ax.set_ylim(0, 105)
    seconds = window[1] - window[0] < 15 * 60  # a short stretch needs them to tell ticks apart
    ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M:%S" if seconds else "%H:%M", tz=tz))
    ax.xaxis.set_major_locator(dates.AutoDateLocator(tz=tz, minticks=3, maxticks=7))
    ax.tick_params(labelsize=10, colors=MUTED)
    ax.grid(axis="y", color=GRID, linewidth=1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    if labels:
        ax.set_ylabel("failure score", fontsize=11, color=INK)
    else:
        ax.set_yticks([0, 50, 100])

    inspections = timeline.inspections
    if inspections:
        times = [_local(i.at) for i in inspections]
        scores = [i.score for i in inspections]
        ax.fill_between(times, scores, color=SCORE, alpha=0.12, linewidth=0)
        dense = len(inspections) > DENSE_INSPECTIONS  # a long print: a thinner line stays readable
        ax.plot(times, scores, color=SCORE, linewidth=2.2 if labels and not dense else 1.3, zorder=3)
        if labels:
            for flag, color, size in (
                ("warning", COLORS["warning"], 40),
                ("pause_suggested", COLORS["paused_by_agent"], 55),
            ):
                flagged = [i for i in inspections if getattr(i, flag)]
                ax.scatter(
                    [_local(i.at) for i in flagged],
                    [i.score for i in flagged],
                    s=size,
                    color=color,
                    zorder=4,
                    edgecolors="white",
                    linewidths=0.8,
                )
        progress = [
            (t, i.progress) for t, i in zip(times, inspections, strict=True) if i.progress is not None
        ]
        if progress:
            twin = ax.twinx()
            twin.plot(*zip(*progress, strict=True), color=PROGRESS, linewidth=1.4, linestyle="--", alpha=0.8)
            twin.set_ylim(0, 105)
            twin.tick_params(labelsize=10, colors=PROGRESS)
            if labels:
                twin.set_ylabel("progress %", fontsize=11, color=PROGRESS)
            else:
                twin.set_yticks([0, 50, 100])
            for side in ("top", "left", "bottom"):
                twin.spines[side].set_visible(False)
            twin.spines["right"].set_color(GRID)
    elif labels:
        ax.text(
            0.5,
            0.5,
            "no inspections were recorded for this print",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=12,
            color=MUTED,
        )

    _markers(ax, _moments(timeline), window, labels)
    for number, inspection, _ in frames:
        ax.annotate(
            str(number),
            (_local(inspection.at), inspection.score),
            xytext=(0, 13),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=8,
            weight="bold",
            color="white",
            zorder=6,
            bbox={"boxstyle": "circle,pad=0.25", "facecolor": _frame_color(inspection), "edgecolor": "white"},
        )


LABEL_WORDS = {"false_alarm": "false alarm", "real_failure": "real failure"}


def _moments(timeline: Timeline) -> list[Marker]:
    """What LayerGuard and the printer did, as lines on the chart. The agent's own pause is one
    line (not also the printer's `print_paused` it caused); repeated warnings get one label; an
    alert the user labelled says how."""
    events = timeline.events
    agent_pauses = [e.at for e in events if e.type == "failure_paused"]
    markers: list[Marker] = []
    for e in events:
        said = f": {LABEL_WORDS[e.label]}" if e.label in LABEL_WORDS else ""  # the user's verdict
        if e.type == "failure_warning":
            markers.append(Marker(e.at, f"warning{said}", COLORS["warning"], "--"))
        elif e.type == "failure_paused":
            markers.append(Marker(e.at, f"paused by LayerGuard{said}", COLORS["paused_by_agent"]))
        elif e.type == "pause_failed" and not e.data.get("resume"):
            markers.append(Marker(e.at, "pause failed", COLORS["pause_failed"], "--"))
        elif e.type == "print_paused" and not any(0 <= a - e.at <= 120 for a in agent_pauses):
            markers.append(Marker(e.at, "paused", COLORS["paused"], ":"))
        elif e.type == "print_resumed":
            markers.append(Marker(e.at, "resumed", COLORS["resumed"]))
        elif e.type in ENDS:
            markers.append(Marker(e.at, ENDS[e.type], COLORS[ENDS[e.type]], "-"))
    return markers


def _markers(ax: Axes, markers: list[Marker], window: tuple[float, float], labels: bool) -> None:
    """A line per moment; a label per moment near the bottom, where the score of a print that
    is still fine leaves room, moved up a row when it would cover an earlier label."""
    from matplotlib import dates

    start, end = window
    span = max(end - start, 1.0)
    labelled: set[str] = set()
    rows: list[list[tuple[float, float]]] = []
    for m in sorted(markers, key=lambda m: m.at):
        when = dates.date2num(_local(m.at))
        ax.axvline(when, color=m.color, linestyle=m.style, linewidth=1.8, zorder=2)
        if not labels or not start <= m.at <= end or (m.label.startswith("warning") and m.label in labelled):
            continue
        labelled.add(m.label)
        x, width = (m.at - start) / span, LABEL_CHAR_WIDTH * (len(m.label) + 2)
        left = x + width <= 1.0
        extent = (x, x + width) if left else (x - width, x)
        row = next(
            (n for n, taken in enumerate(rows) if all(extent[1] < a or extent[0] > b for a, b in taken)),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append(extent)
        ax.text(
            when,
            4 + 11 * row,
            f" {m.label} ",
            ha="left" if left else "right",
            va="bottom",
            fontsize=10,
            weight="bold",
            color="white",
            zorder=7,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": m.color, "edgecolor": "none"},
        )


def _frame(ax: Axes, number: int, inspection: InspectionRow, image: Any) -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    color = _frame_color(inspection)
    for spine in ax.spines.values():
        spine.set_color(color)
        spine.set_linewidth(3)
    ax.set_title(
        f"{number}  {_local(inspection.at):%H:%M:%S}\nscore {inspection.score}",
        fontsize=9.5,
        color=INK,
        pad=4,
        linespacing=1.2,
    )


def _frame_color(inspection: InspectionRow) -> str:
    if inspection.pause_suggested:
        return COLORS["paused_by_agent"]
    return COLORS["warning"] if inspection.warning else MUTED


def _strip(inspections: list[InspectionRow], evidence_dir: Path) -> list[tuple[int, InspectionRow, Any]]:
    """Up to MAX_FRAMES readable evidence frames, spread over those kept, numbered in time order."""
    from PIL import Image, UnidentifiedImageError

    kept = [i for i in inspections if i.frame]
    if len(kept) > MAX_FRAMES:
        step = (len(kept) - 1) / (MAX_FRAMES - 1)
        kept = [kept[round(n * step)] for n in range(MAX_FRAMES)]
    frames = []
    for inspection in kept:
        assert inspection.frame is not None
        try:
            with Image.open(evidence_dir / inspection.frame) as image:
                image.thumbnail((THUMB_PX, THUMB_PX))
                frames.append((inspection, image.convert("RGB")))
        except (OSError, UnidentifiedImageError):  # pruned, or cut short by a power loss
            continue
    return [(n, inspection, image) for n, (inspection, image) in enumerate(frames, start=1)]


def _local(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp).astimezone()


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: list[str]) -> int:
    """The worker: `DB PRINT OUT`. Exit 0 with the PNG written, 1 with the reason on stderr."""
    db_path, print_ref, out = argv
    try:
        write_report(Path(db_path), print_ref, Path(out))
    except (LookupError, OSError, sqlite3.Error) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
