"""Figure: the false-alarm rate over the simulated world's recorded prints (sim/recorded_prints.py),
without masks and with a mask over the cable in view, labels counted by the history's code."""

from __future__ import annotations

from bench.report import Row
from hardware.camera.framing import NO_FRAMING
from sim.recorded_prints import MASKED, PRINTS, false_alarm_figures


def measure() -> list[Row]:
    rows = []
    for name, framing in (("no masks", NO_FRAMING), ("cable masked", MASKED)):
        figures, _ = false_alarm_figures(framing)
        rate = figures.false_alarm_rate or 0.0
        rows.append(
            Row(
                f"false-alarm rate, {len(PRINTS)} recorded prints, {name}",
                "%",
                [100 * rate],
                note=f"{figures.alerts} alerts: {figures.false_alarms} false alarms, "
                f"{figures.real_failures} real failures",
                digits=0,
            )
        )
    return rows
