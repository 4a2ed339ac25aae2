"""The `layerguard` command: run, demo, doctor, health, notify-test, history, report, label, adapters,
password.

Exit codes: 0 ok, 2 invalid configuration, 1 other."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.settings import (
    INSTANCE_ENV,
    INSTANCE_PATTERN,
    ConfigError,
    env_warnings,
    load_settings,
    require_for_run,
)

if TYPE_CHECKING:
    from agent.app import Agent

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("agent")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerguard", description="Watches a 3D print and pauses the printer when it fails."
    )
    parser.add_argument("--version", action="version", version=f"layerguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _configured(sub.add_parser("run", help="guard the printer (what the service runs)"))
    demo = sub.add_parser("demo", help="a simulated print that fails and gets paused, no hardware needed")
    demo.add_argument(
        "--keep-open",
        action="store_true",
        help="then keep the page up (its address and password shown) until Ctrl-C",
    )
    doctor = sub.add_parser("doctor", help="check config, camera, printer, broker, API key and notify URLs")
    _configured(doctor).add_argument(
        "--all", action="store_true", help="every agent configured in /etc/layerguard, one after the other"
    )
    _configured(sub.add_parser("health", help="exit 0 if the running agent is healthy (Docker HEALTHCHECK)"))
    _configured(
        sub.add_parser("notify-test", help="send a test notification with a fresh frame to every URL")
    )
    history = _configured(sub.add_parser("history", help="list the prints, newest first"))
    history.add_argument("--json", action="store_true", help="as JSON, for scripts")
    history.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N prints (20)")
    adapters = sub.add_parser(
        "adapters", help="list the USB serial adapters present, with the printer.port to configure"
    )
    adapters.add_argument("--json", action="store_true", help="as JSON, for scripts")
    adapters.add_argument(
        "--udev",
        action="append",
        default=[],
        metavar="NAME=DEVICE",
        help="print a udev rule giving DEVICE (e.g. ttyUSB0) the link /dev/layerguard-NAME; repeatable",
    )
    history.add_argument(
        "--figures", action="store_true", help="only the alert figures: false alarms, real failures, rate"
    )
    label = _configured(
        sub.add_parser("label", help="label the last alert of a print: real (failure) or false-alarm")
    )
    label.add_argument(
        "print_ref", nargs="?", default="last", metavar="PRINT", help="number, or last (default)"
    )
    label.add_argument("verdict", metavar="real|false-alarm", help="what the alert was")
    report = sub.add_parser("report", help="write the timeline picture of a print as a PNG")
    report.add_argument(
        "print_ref", nargs="?", default="last", metavar="PRINT", help="number, or last (default)"
    )
    _configured(report)
    report.add_argument("--out", required=True, type=Path, metavar="FILE.png", help="where to write it")
    password = _configured(
        sub.add_parser("password", help="the page's address and password; --reset makes a new one")
    )
    password.add_argument("--reset", action="store_true", help="generate a new password (logs everyone out)")
    password.add_argument(
        "--hash", action="store_true", help="read a password, print its web.password_hash line"
    )
    return parser


def _configured(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--config, and --printer for one of several printers' agents on this Pi."""
    command.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $LAYERGUARD_CONFIG, /etc/layerguard/NAME.toml with --printer, "
        "or /etc/layerguard/layerguard.toml)",
    )
    command.add_argument(
        "--printer",
        metavar="NAME",
        type=_printer_name,
        help="as the agent of layerguard@NAME.service: its config, state dir, secrets and printer_id",
    )
    return command


def _printer_name(text: str) -> str:
    if not re.fullmatch(INSTANCE_PATTERN.strip("^$"), text):
        raise argparse.ArgumentTypeError(f"{text!r}: a printer's name has letters, digits, - and _ only")
    return text


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return int(text)


# Heavy modules are imported per command, so that `layerguard --help` answers at once on a Pi Zero.
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "printer", None):
        os.environ[INSTANCE_ENV] = args.printer  # its defaults follow, as under its unit
    try:
        if args.command == "run":
            return run(args.config)
        if args.command == "demo":
            from sim.demo import run_demo

            return run_demo(args.keep_open)
        if args.command == "health":
            return health(args.config)
        if args.command == "notify-test":
            from agent.notify.command import run_notify_test

            return run_notify_test(args.config)
        if args.command == "adapters":
            from agent.adapters import run_adapters

            return run_adapters(args.udev, args.json)
        if args.command == "password":
            from agent.web.password import run_password

            return run_password(args.config, args.reset, args.hash)
        if args.command in ("history", "report", "label"):
            from agent.history import commands

            if args.command == "history":
                return commands.history(args.config, args.json, args.limit, args.figures)
            if args.command == "label":
                return commands.label(args.config, args.print_ref, args.verdict)
            return commands.report(args.config, args.print_ref, args.out)
        from agent import doctor

        if args.all:
            if args.config or args.printer:
                raise ConfigError(
                    "--all checks every config in /etc/layerguard: leave out --config and --printer"
                )
            return doctor.run_doctor_all()
        return doctor.run_doctor(args.config)
    except ConfigError as exc:
        print(f"layerguard: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def run(config: str | None) -> int:
    settings = load_settings(config)
    require_for_run(settings)
    from agent.assembly import build_agent, secrets_of
    from agent.logs import setup_logging
    from hardware.camera.base import CameraError

    setup_logging(settings.agent.log_level, secrets_of(settings))
    log.info("LayerGuard %s starting for printer %s", __version__, settings.agent.printer_id)
    for warning in env_warnings(os.environ):
        log.warning("%s", warning)
    try:
        asyncio.run(_serve(build_agent(settings)))
    except CameraError as exc:
        log.error("Camera: %s", exc)
        return EXIT_FAILURE
    except Exception:
        log.exception("LayerGuard stopped on an unexpected error")
        return EXIT_FAILURE
    log.info("LayerGuard stopped")
    return EXIT_OK


def health(config: str | None) -> int:
    from agent.health import check_health

    problem = check_health(load_settings(config).agent.state_dir)
    print(f"unhealthy: {problem}" if problem else "healthy")
    return EXIT_FAILURE if problem else EXIT_OK


async def _serve(agent: Agent) -> None:
    """Run the agent until SIGTERM or SIGINT, then let it shut down cleanly; systemd hears of
    readiness, progress (watchdog) and stopping through agent.health."""
    from agent.health import supervise
    from agent.systemd import SystemdNotifier

    task = asyncio.current_task()
    assert task is not None
    notifier = SystemdNotifier()

    def stop() -> None:
        notifier.stopping()
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    supervisor = asyncio.create_task(supervise(agent, notifier), name="supervisor")
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()
    finally:
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
        notifier.close()
