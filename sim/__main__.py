"""`python -m sim`: the simulated world on its own, for trying `layerguard run` by hand.

It starts a virtual printer on a pseudo-terminal, a webcam and a detection stand-in on loopback,
writes a config file for them, and then takes the printer's panel buttons from standard input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sim.world import sim_world

BUTTONS = {"start": "panel_start", "pause": "panel_pause", "resume": "panel_resume", "stop": "panel_stop"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    parser.add_argument("--failure-at", type=float, default=0.3, help="fraction of the print where it fails")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds the print takes")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="NextProcessIntervalSec the stand-in asks"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="layerguard-sim-") as tmp,
        sim_world(
            file="part.gcode",
            failure_at=args.failure_at,
            print_duration_s=args.duration,
            interval_s=args.interval,
            broker=None,
        ) as world,
    ):
        config = Path(tmp) / "layerguard.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp}/state"\n'
            f'[printer]\nport = "{world.printer.port}"\n'
            f'[camera]\nsource = "{world.webcam.url}"\n'
            f'[detection]\napi_url = "{world.service.base_url}"\napi_key = "{world.api_key}"\n'
        )
        print(f"virtual printer on {world.printer.port}; config written to {config}")
        print(f"in another terminal:  layerguard run --config {config}")
        print(f"panel buttons: {', '.join(BUTTONS)}; quit to end")
        for line in sys.stdin:
            word = line.strip().lower()
            if word in ("quit", "exit"):
                break
            if word in BUTTONS:
                getattr(world.printer, BUTTONS[word])()
                print(f"printer: {world.printer.state}, {world.printer.progress:.0f}%")
            elif word:
                print(f"unknown button {word!r}; try {', '.join(BUTTONS)}, quit")
    return 0


sys.exit(main())
