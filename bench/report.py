"""The benchmark's rows and the table they print as: median, min and max of each figure's samples."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Goal:
    text: str  # as printed, e.g. "< 50 ms"
    met: Callable[[float, float, float], bool]  # (median, min, max) -> met?


def below(limit: float, unit: str, of: str = "max") -> Goal:
    """Met when the median or the max (`of`) stays under `limit`."""
    index = {"median": 0, "max": 2}[of]
    label = "median " if of == "median" else ""
    return Goal(f"{label}< {limit:g} {unit}", lambda *stats: stats[index] < limit)


def at_least(limit: float, unit: str) -> Goal:
    """Met when even the smallest sample reaches `limit` (e.g. slack never negative)."""
    return Goal(f"never < {limit:g} {unit}", lambda median, low, high: low >= limit)


@dataclass(slots=True)
class Row:
    figure: str
    unit: str
    samples: list[float]
    goal: Goal | None = None
    note: str = ""
    digits: int = 1
    extra_goals: list[Goal] = field(default_factory=list)

    @property
    def stats(self) -> tuple[float, float, float]:
        return statistics.median(self.samples), min(self.samples), max(self.samples)

    def verdict(self) -> str:
        goals = [g for g in (self.goal, *self.extra_goals) if g is not None]
        if not goals:
            return ""
        if not self.samples:
            return "not measured"
        return "met" if all(g.met(*self.stats) for g in goals) else "MISSED"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A figure that could not be measured here, and exactly why."""

    figure: str
    reason: str


def render(rows: Sequence[Row | Skipped]) -> str:
    """A Markdown table, readable in a terminal and pasteable into the README."""
    header = ["figure", "median", "min", "max", "n", "goal", "", "note"]
    lines = [header]
    for row in rows:
        if isinstance(row, Skipped):
            lines.append([row.figure, "—", "—", "—", "0", "", "skipped", row.reason])
            continue
        cells = [_number(value, row.digits, row.unit) for value in row.stats] if row.samples else ["—"] * 3
        goals = " and ".join(g.text for g in (row.goal, *row.extra_goals) if g is not None)
        lines.append([row.figure, *cells, str(len(row.samples)), goals, row.verdict(), row.note])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for number, line in enumerate(lines):
        padded = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)] + [line[-1]]
        out.append("| " + " | ".join(padded) + " |")
        if number == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in [*widths, len(line[-1])]) + "|")
    return "\n".join(out)


def _number(value: float, digits: int, unit: str) -> str:
    if round(value, digits) == 0:
        value = 0.0  # no "-0 ms"
    return f"{value:.{digits}f} {unit}".rstrip()
