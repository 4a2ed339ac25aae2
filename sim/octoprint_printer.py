"""OctoPrint's virtual printer (PyPI `octoprint`, pinned) on a pseudo-terminal: a printer nobody here wrote.

Our own virtual printer (virtual_printer.py) was written from the same reference as the agent, so
it can only confirm our reading of the firmware. OctoPrint's `VirtualPrinter` is a Marlin
emulation written by others for OctoPrint's development; the agent talks to it over a real pty
with its real pyserial code, as on a Pi. It runs in its own process from OctoPrint's own virtual
environment (`.venv-octoprint`, made by `scripts/setup.sh --for-tests`), so OctoPrint's many
dependencies never mix with the agent's; sim/octoprint_bridge.py is that process.

    with OctoPrintPrinter(tmp_path, files={"cube.gcode": text}) as printer:
        ...  # point the agent at printer.port
        printer.debug("start_sd cube.gcode")  # started from the printer's side
        printer.wait_for(lambda s: s["sd"] == "paused", 10)

Where it differs from real firmware, the tests say so next to the assertion, citing the reference.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

OCTOPRINT_VERSION = "1.11.8"  # scripts/setup.sh installs exactly this one
REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-octoprint"
BRIDGE = Path(__file__).resolve().parent / "octoprint_bridge.py"
START_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 10.0
POLL_S = 0.05

# What the tests change in OctoPrint's virtual-printer settings, and why.
SETTINGS: dict[str, Any] = {
    # Real Marlin keeps the host waiting with `echo:busy: processing` every 2 s
    # (HOST_KEEPALIVE_FEATURE, on by default; serial.md "Sending"); OctoPrint's default is silence.
    "sendBusy": True,
}

Status = dict[str, Any]


class OctoPrintNotInstalled(RuntimeError):
    """`.venv-octoprint` is missing or holds another OctoPrint."""


def python() -> Path:
    """The OctoPrint environment's interpreter; raises OctoPrintNotInstalled with the fix."""
    interpreter = VENV / "bin" / "python"
    if not interpreter.exists():
        raise OctoPrintNotInstalled(f"{interpreter} is missing: run scripts/setup.sh --for-tests")
    return interpreter


class OctoPrintPrinter:
    """OctoPrint's virtual printer behind `port`, its SD card holding `files`.

    `settings` adds to SETTINGS (OctoPrint's `plugins.virtual_printer` keys). Thread-safe.
    """

    def __init__(
        self,
        workdir: Path,
        files: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = str(workdir / "ttyOctoPrint")
        self.files = dict(files or {})
        self.settings = SETTINGS | dict(settings or {})
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> OctoPrintPrinter:
        sd = self.workdir / "octoprint" / "virtualSd"
        sd.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (sd / name).write_text(text)
        command = [str(python()), str(BRIDGE), "--port", self.port]
        command += ["--basedir", str(self.workdir / "octoprint"), "--settings", json.dumps(self.settings)]
        with (self.workdir / "octoprint-bridge.log").open("w") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
            )
        answer = self._read(START_TIMEOUT_S)
        if not answer.get("ready"):
            self.stop()
            raise RuntimeError(f"OctoPrint's virtual printer did not start: {answer}")
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None and process.stdin is not None:
                process.stdin.write("quit\n")
                process.stdin.flush()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    def __enter__(self) -> OctoPrintPrinter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the printer's side -------------------------------------------------------------------

    def debug(self, command: str) -> None:
        """One of its `!!DEBUG:` commands (`start_sd FILE`, `action_pause`, `reset`, `go_awol`, ...)."""
        self._ask(f"debug {command}")

    def panel_stop(self) -> None:
        """Abort the SD print as the panel's Stop (or M524) does: no message to the host."""
        self._ask("panel_stop")

    def panel_resume(self) -> None:
        """Let a paused SD print read on, as the panel's Resume does: no message to the host.

        Not its `M24`: in 1.11.8 `M24` on a paused print clears the reader's running flag before
        releasing it, so the print ends at once with `Done printing file` (`_startSdPrint`)."""
        self._ask("panel_resume")

    def unplug(self) -> None:
        self._ask("unplug")

    def replug(self) -> None:
        self._ask("replug")

    def status(self) -> Status:
        """`sd` (idle, printing, paused), `file`, `position`, `size`, temperatures, `received`
        (the host's commands without line numbers and checksums)."""
        return self._ask("status")

    def wait_for(self, predicate: Callable[[Status], bool], timeout_s: float) -> Status:
        """Poll the status until `predicate` holds; TimeoutError with the last status if not."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"OctoPrint's printer: condition not met in {timeout_s:g} s: {status}")
            time.sleep(POLL_S)

    async def wait_for_async(self, predicate: Callable[[Status], bool], timeout_s: float) -> Status:
        return await asyncio.to_thread(self.wait_for, predicate, timeout_s)

    @property
    def progress(self) -> float:
        """0..100 by SD bytes, as the printer counts them (VirtualPrinter.progress's scale)."""
        status = self.status()
        return 100.0 * status["position"] / status["size"] if status["size"] else 0.0

    # --- the control pipe ---------------------------------------------------------------------

    def _ask(self, command: str) -> Status:
        with self._lock:
            process = self._process
            if process is None or process.stdin is None:
                raise RuntimeError("OctoPrint's virtual printer is not running")
            process.stdin.write(command + "\n")
            process.stdin.flush()
            answer = self._read(ANSWER_TIMEOUT_S)
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer

    def _read(self, timeout_s: float) -> Status:
        process = self._process
        assert process is not None and process.stdout is not None
        ready = _readable(process.stdout.fileno(), timeout_s)
        line = process.stdout.readline() if ready else ""
        if not line:
            log = (self.workdir / "octoprint-bridge.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"OctoPrint's virtual printer does not answer; its log ends:\n{log}")
        return json.loads(line)


def _readable(fd: int, timeout_s: float) -> bool:
    """One answer line per command, so nothing waits in the pipe's Python buffer: select() tells."""
    readable, _, _ = select.select([fd], [], [], timeout_s)
    return bool(readable)
