"""`python -m bench`: every figure of issue 7 in one run of a few minutes, printed as a table.

Run it on a quiet machine: the figures are about LayerGuard, not about whatever else is busy.
`--quick` is a smoke test of the harness (seconds per figure, numbers not worth quoting).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import (
    false_alarms,
    fleet,
    footprint,
    history,
    hostile,
    masking,
    octoprint,
    overview,
    page,
    pi_count,
    reaction,
    startup,
    upload,
)
from bench.procstat import Window
from bench.report import Row, Skipped, render
from sim.broker import MosquittoBroker, MosquittoNotFound

FIGURES = (
    "upload",
    "startup",
    "reaction",
    "footprint",
    "hostile",
    "octoprint",
    "fleet",
    "pi",
    "history",
    "masking",
    "false_alarms",
    "page",
    "overview",
)
LOG_PATH = Path(tempfile.gettempdir()) / "layerguard-bench.log"


@dataclass(frozen=True, slots=True)
class Plan:
    runs: int  # start-ups; `layerguard --help` gets two more
    pauses: int
    phases: footprint.Phases
    octoprint_window_s: float
    fleet_sizes: tuple[int, ...]
    fleet_window_s: float
    pi_sizes: tuple[int, ...]  # printers on one Pi
    pi_count_calls: int  # per agent, all at once
    hostile_drip: bool  # the slow answer takes the whole 30 s deadline
    history_hours: int  # of simulated monitoring
    renders: int  # of the report worker, after one that builds the font cache
    frames: int  # framed (masked and cropped) frames timed


FULL = Plan(
    runs=5,
    pauses=7,
    phases=footprint.Phases(idle_s=20, cycles=8, unmonitored_s=20),
    octoprint_window_s=20,
    fleet_sizes=(10, 50),
    fleet_window_s=30,
    pi_sizes=(1, 2, 4),
    pi_count_calls=500,
    hostile_drip=True,
    history_hours=4,
    renders=5,
    frames=200,
)
QUICK = Plan(
    runs=2,
    pauses=2,
    phases=footprint.Phases(idle_s=3, cycles=2, unmonitored_s=3),
    octoprint_window_s=3,
    fleet_sizes=(3,),
    fleet_window_s=8,
    pi_sizes=(2,),
    pi_count_calls=50,
    hostile_drip=False,
    history_hours=1,
    renders=1,
    frames=10,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny runs, numbers not to quote")
    parser.add_argument(
        "--only", metavar="FIGURES", help=f"comma-separated subset of {','.join(FIGURES)} (default: all)"
    )
    args = parser.parse_args(argv)
    chosen = FIGURES if not args.only else tuple(f.strip() for f in args.only.split(","))
    unknown = sorted(set(chosen) - set(FIGURES))
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    plan = QUICK if args.quick else FULL
    # The in-process agent logs as under journald, at INFO, to a file rather than over the table.
    logging.basicConfig(filename=LOG_PATH, filemode="w", level=logging.INFO)

    started = time.monotonic()
    print(_machine(), flush=True)
    rows: list[Row | Skipped] = []
    failed = False
    idle: list[Window] = []
    for name in chosen:
        print(f"measuring {name} …", file=sys.stderr, flush=True)
        try:
            rows += _FIGURES[name](plan, idle)
        except MosquittoNotFound as exc:
            rows.append(Skipped(name, str(exc)))
        except Exception as exc:  # one broken figure must not hide the others
            failed = True
            traceback.print_exc()
            first_line = next(iter(str(exc).splitlines()), "")
            rows.append(Skipped(name, f"FAILED: {type(exc).__name__} {first_line}".rstrip()))
    print()
    print(render(rows))
    print(f"\n{time.monotonic() - started:.0f} s; load average after: {_load()}; log: {LOG_PATH}")
    return 1 if failed else 0


def _upload(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    return list(upload.measure())


def _startup(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    with MosquittoBroker() as broker:
        return startup.measure(broker, plan.runs)


def _reaction(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    with MosquittoBroker() as broker:
        return list(reaction.measure(broker, plan.pauses))


def _footprint(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    with MosquittoBroker() as broker:
        rows, window = footprint.measure(broker, plan.phases)
    idle.append(window)
    return list(rows)


def _hostile(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    with MosquittoBroker() as broker:
        return list(hostile.measure(broker, drip=plan.hostile_drip))


def _octoprint(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    if not idle:
        return [
            Skipped("OctoPrint idle (comparison)", "needs the footprint figure's idle window: add footprint")
        ]
    return octoprint.measure(idle[-1], plan.octoprint_window_s)


def _fleet(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    rows: list[Row | Skipped] = []
    for agents in plan.fleet_sizes:
        with MosquittoBroker() as broker:  # a fresh broker per size: nothing retained from before
            rows += fleet.measure(broker, agents, plan.fleet_window_s)
    return rows


def _pi(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    """Several printers on one Pi: each agent's footprint, and their shared call count."""
    rows: list[Row | Skipped] = []
    for printers in plan.pi_sizes:
        with MosquittoBroker() as broker:
            rows += fleet.measure(broker, printers, plan.fleet_window_s, one_pi=True)
    return rows + pi_count.measure((*plan.pi_sizes, 8), plan.pi_count_calls)


def _history(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    return list(history.measure(plan.history_hours, plan.renders))


def _masking(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    return list(masking.measure(plan.frames))


def _false_alarms(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    return list(false_alarms.measure())


def _page(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    with MosquittoBroker() as broker:
        return list(page.measure(broker, plan.phases.idle_s))


def _overview(plan: Plan, idle: list[Window]) -> list[Row | Skipped]:
    with MosquittoBroker() as broker:
        return list(overview.measure(broker, plan.phases.idle_s))


_FIGURES: dict[str, Callable[[Plan, list[Window]], list[Row | Skipped]]] = {
    "upload": _upload,
    "startup": _startup,
    "reaction": _reaction,
    "footprint": _footprint,
    "hostile": _hostile,
    "octoprint": _octoprint,
    "fleet": _fleet,
    "pi": _pi,
    "history": _history,
    "masking": _masking,
    "false_alarms": _false_alarms,
    "page": _page,
    "overview": _overview,
}


def _machine() -> str:
    """What the figures were measured on, for the README next to the table."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, {mem_kib / 1024**2:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average before: {_load()}"
    )


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
