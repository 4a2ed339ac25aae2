"""The comparison: OctoPrint, what a user would run instead, idle with its bundled virtual printer
connected, measured like LayerGuard's idle window (same settle time, same window, same /proc
readings), in the same run.

OctoPrint is the pinned version the tests run against, in the same `.venv-octoprint`
(`scripts/setup.sh --for-tests` makes it; installed here from PyPI if it is missing). Plugins
that reach out to the internet (update checks, announcements, plugin repository, health check,
usage tracking) and mDNS discovery are switched off: this machine has no internet, and with them
OctoPrint would only use more. Its virtual printer runs
inside OctoPrint's own process, as a few threads; LayerGuard's is in the benchmark's process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procstat
from bench.footprint import SETTLE_S
from bench.launch import stop_process
from bench.report import Row, Skipped
from sim.octoprint_printer import OCTOPRINT_VERSION, VENV

OCTOPRINT = VENV / "bin" / "octoprint"
INSTALL_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 90.0
OPERATIONAL = 'to "Operational"'
OFFLINE_PLUGINS = "announcements, discovery, health_check, pluginmanager, softwareupdate, tracking"
CONFIG = f"""\
serial:
  autoconnect: true
  port: VIRTUAL
  baudrate: 115200
plugins:
  _disabled: [{OFFLINE_PLUGINS}]
  virtual_printer:
    enabled: true
server:
  firstRun: false
  onlineCheck:
    enabled: false
  pluginBlacklist:
    enabled: false
"""


def install() -> str | None:
    """Install OctoPrint unless it is there; returns why it could not be, or None."""
    if OCTOPRINT.exists():
        return None
    print(f"installing OctoPrint from PyPI into {VENV} (first run only)", file=sys.stderr, flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", f"octoprint=={OCTOPRINT_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return f"`pip install octoprint=={OCTOPRINT_VERSION}` failed: {last[0]}"
    except subprocess.TimeoutExpired:
        return f"`pip install octoprint=={OCTOPRINT_VERSION}` took over {INSTALL_TIMEOUT_S:g} s"
    return None


def measure(layerguard_idle: procstat.Window, window_s: float) -> list[Row | Skipped]:
    reason = install()
    if reason is not None:
        return [Skipped("OctoPrint idle (comparison)", reason)]
    with tempfile.TemporaryDirectory(prefix="layerguard-bench-octoprint-") as basedir:
        (Path(basedir) / "config.yaml").write_text(CONFIG)
        command = [
            str(OCTOPRINT),
            "serve",
            "--basedir",
            basedir,
            "--host",
            "127.0.0.1",
            "--port",
            str(_free_port()),
        ]
        if os.geteuid() == 0:
            command.append("--iknowwhatimdoing")  # it refuses to run as root otherwise
        with (Path(basedir) / "console.log").open("wb") as console:
            started = time.monotonic()
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT
            )
        try:
            connected_after = _wait_operational(Path(basedir) / "logs" / "octoprint.log", process) - started
            time.sleep(SETTLE_S)  # the same settle time as LayerGuard's idle window
            idle = procstat.watch(process.pid, window_s)
        except RuntimeError as exc:
            return [Skipped("OctoPrint idle (comparison)", str(exc))]
        finally:
            stop_process(process, timeout_s=30)
    version = subprocess.run([str(OCTOPRINT), "--version"], capture_output=True, text=True).stdout.strip()
    note = f"{version}, {window_s:g} s window, {SETTLE_S:g} s after connecting"
    return [
        Row("OctoPrint idle: start-up → printer Operational", "s", [connected_after], note=version, digits=2),
        Row(
            "OctoPrint idle: RSS",
            "MB",
            [idle.rss_mb],
            note=f"{_ratio(idle.rss_mb, layerguard_idle.rss_mb)} LayerGuard's idle RSS; {note}",
        ),
        Row(
            "OctoPrint idle: CPU",
            "% core",
            [idle.cpu_percent],
            note=f"{_ratio(idle.cpu_percent, layerguard_idle.cpu_percent)} LayerGuard's idle CPU; {note}",
            digits=2,
        ),
    ]


def _wait_operational(log: Path, process: subprocess.Popen[bytes]) -> float:
    """time.monotonic() when OctoPrint's log says the printer is Operational. OctoPrint tells
    nothing else outside its authenticated API, so its log is read every 50 ms."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"OctoPrint exited with status {process.returncode} before connecting")
        if log.exists() and OPERATIONAL in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"OctoPrint's virtual printer was not Operational within {CONNECT_TIMEOUT_S:g} s")


def _ratio(theirs: float, ours: float) -> str:
    return f"{theirs / ours:.1f}x" if ours > 0 else "n/a"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
