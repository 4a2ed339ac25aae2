"""The `layerguard` command: run, demo, doctor, health, notify-test, history, report, password.

Exit codes: 0 ok, 2 invalid configuration, 1 other."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.settings import ConfigError, env_warnings, load_settings, require_for_run

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
    config_help = "config file (default: $LAYERGUARD_CONFIG or /etc/layerguard/layerguard.toml)"
    run = sub.add_parser("run", help="guard the printer (what the service runs)")
    run.add_argument("--config", metavar="FILE", help=config_help)
    demo = sub.add_parser("demo", help="a simulated print that fails and gets paused, no hardware needed")
    demo.add_argument(
        "--keep-open",
        action="store_true",
        help="then keep the page up (its address and password shown) until Ctrl-C",
    )
    doctor = sub.add_parser("doctor", help="check config, camera, printer, broker, API key and notify URLs")
    doctor.add_argument("--config", metavar="FILE", help=config_help)
    health = sub.add_parser("health", help="exit 0 if the running agent is healthy (Docker HEALTHCHECK)")
    health.add_argument("--config", metavar="FILE", help=config_help)
    notify = sub.add_parser("notify-test", help="send a test notification with a fresh frame to every URL")
    notify.add_argument("--config", metavar="FILE", help=config_help)
    history = sub.add_parser("history", help="list the prints, newest first")
    history.add_argument("--config", metavar="FILE", help=config_help)
    history.add_argument("--json", action="store_true", help="as JSON, for scripts")
    history.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N prints (20)")
    report = sub.add_parser("report", help="write the timeline picture of a print as a PNG")
    report.add_argument(
        "print_ref", nargs="?", default="last", metavar="PRINT", help="number, or last (default)"
    )
    report.add_argument("--config", metavar="FILE", help=config_help)
    report.add_argument("--out", required=True, type=Path, metavar="FILE.png", help="where to write it")
    password = sub.add_parser("password", help="the page's address and password; --reset makes a new one")
    password.add_argument("--config", metavar="FILE", help=config_help)
    password.add_argument("--reset", action="store_true", help="generate a new password (logs everyone out)")
    password.add_argument(
        "--hash", action="store_true", help="read a password, print its web.password_hash line"
    )
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return int(text)


# Heavy modules are imported per command, so that `layerguard --help` answers at once on a Pi Zero.
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        if args.command == "password":
            from agent.web.password import run_password

            return run_password(args.config, args.reset, args.hash)
        if args.command in ("history", "report"):
            from agent.history import commands

            if args.command == "history":
                return commands.history(args.config, args.json, args.limit)
            return commands.report(args.config, args.print_ref, args.out)
        from agent.doctor import run_doctor

        return run_doctor(args.config)
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
