"""OctoPrint's own virtual printer on a pseudo-terminal: the process behind sim/octoprint_printer.py.

Run by the Python of the OctoPrint virtual environment (`.venv-octoprint`, made by
`scripts/setup.sh --for-tests`), never imported by LayerGuard: it needs only the standard library
and OctoPrint. OctoPrint's `VirtualPrinter` is a file-like object (write bytes in, `readline()`
out) meant to sit behind OctoPrint's serial layer; here two threads relay between it and the
master side of a pty, so the agent opens the slave side with pyserial exactly as a USB port.
Nothing of LayerGuard's is in between: the printer's answers, timings and quirks are OctoPrint's.

    python sim/octoprint_bridge.py --port PATH --basedir DIR [--settings JSON]

`--settings` overrides the plugin's settings (`plugins.virtual_printer.*` in OctoPrint's
config.yaml); the SD card is `DIR/virtualSd`. Control, one command a line on stdin, one JSON
answer a line on stdout:

- `debug <command>`: `!!DEBUG:<command>` into the printer's input, between two of the host's
  lines (its debug commands: `start_sd <file>`, `action_pause`, `go_awol`, `reset`, ...);
- `panel_stop`: the print is aborted as `M524` / the panel's Stop do, with no message to the host;
- `panel_resume`: a paused SD print reads on, as the panel's Resume does, with no message to the
  host (its `M24` would end the print instead: see OctoPrintPrinter.panel_resume);
- `status`: the SD print as the printer holds it, its temperatures, and the host's commands so far;
- `unplug` / `replug`: the pty closes (the agent's port fails) / a new pty appears at `--port`;
- `quit`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import select
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Any

from octoprint.plugin import plugin_manager, plugin_settings
from octoprint.plugins.virtual_printer import VirtualPrinterPlugin
from octoprint.plugins.virtual_printer.virtual import VirtualPrinter
from octoprint.settings import settings as octoprint_settings

POLL_S = 0.05
_FRAMING = re.compile(r"^N\d+\s+|\*\d+$")


class _NoProfiles:
    """The printer-profile manager; the virtual printer asks it only for `M115`'s area report (off)."""

    def get_current_or_default(self) -> dict[str, Any]:
        return {}


class Bridge:
    def __init__(self, port: str, basedir: Path, overrides: dict[str, Any]) -> None:
        self.port = port
        basedir.mkdir(parents=True, exist_ok=True)
        (basedir / "config.yaml").write_text(json.dumps({"plugins": {"virtual_printer": overrides}}))
        octoprint_settings(init=True, basedir=str(basedir))
        # Only the hook lookup of the printer's constructor needs it: no plugin is loaded.
        plugin_manager(init=True, plugin_folders=[], plugin_entry_points=[], plugin_disabled_list=[])
        defaults = VirtualPrinterPlugin().get_settings_defaults()
        data = basedir / "data"
        data.mkdir(exist_ok=True)
        self.printer = VirtualPrinter(
            plugin_settings("virtual_printer", defaults=defaults), _NoProfiles(), data_folder=str(data)
        )
        self.received: list[str] = []
        self._input_lock = threading.Lock()  # one whole line at a time into the printer
        self._pty_lock = threading.Lock()
        self._master = self._slave = -1
        self._running = True
        self.plug()
        threading.Thread(target=self._host_to_printer, name="host-to-printer", daemon=True).start()
        threading.Thread(target=self._printer_to_host, name="printer-to-host", daemon=True).start()

    # --- the pty ------------------------------------------------------------------------------

    def plug(self) -> None:
        with self._pty_lock:
            if self._master >= 0:
                return
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing: bytes pass as on a USB-serial link
            os.set_blocking(master, False)
            link = f"{self.port}.new"
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(os.ttyname(slave), link)
            os.replace(link, self.port)
            self._master, self._slave = master, slave

    def unplug(self) -> None:
        with self._pty_lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
            if os.path.lexists(self.port):
                os.unlink(self.port)

    def _host_to_printer(self) -> None:
        pending = b""
        while self._running:
            master = self._master
            if master < 0:
                pending = b""
                time.sleep(POLL_S)  # unplugged
                continue
            try:
                readable, _, _ = select.select([master], [], [], POLL_S)
                chunk = os.read(master, 4096) if readable else b""
            except OSError:  # unplugged meanwhile, or nobody has the port open
                chunk = b""
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._feed(line + b"\n")

    def _printer_to_host(self) -> None:
        while self._running:
            try:
                line = self.printer.readline()
            except (AttributeError, TypeError):  # the printer was closed
                return
            if not line:
                continue
            if not line.endswith(b"\n"):  # most of its lines come without one: OctoPrint reads line by line
                line += b"\n"
            with self._pty_lock:
                if self._master < 0:
                    continue  # the cable is out: the firmware talks to nobody
                with contextlib.suppress(OSError):  # nobody reads, the pty is full: lost, as on a UART
                    os.write(self._master, line)

    def _feed(self, line: bytes) -> None:
        text = line.decode("ascii", errors="replace").strip()
        if text:
            self.received.append(_FRAMING.sub("", text).strip())
        with self._input_lock:
            self.printer.write(line)

    # --- control ------------------------------------------------------------------------------

    def handle(self, command: str) -> dict[str, Any]:
        verb, _, argument = command.strip().partition(" ")
        if verb == "debug":
            with self._input_lock:
                self.printer.write(f"!!DEBUG:{argument}\n".encode())
        elif verb == "panel_stop":
            if self.printer._sdPrinter is not None:
                self.printer._cancelSdPrint()
        elif verb == "panel_resume":
            if self.printer._sdPrinter is not None:
                self.printer._sdPrintingSemaphore.set()
        elif verb == "unplug":
            self.unplug()
        elif verb == "replug":
            self.plug()
        elif verb == "status":
            return self.status()
        elif verb == "quit":
            self._running = False
            self.unplug()
            self.printer.close()
        else:
            return {"error": f"unknown command {verb!r}"}
        return {"ok": True}

    def status(self) -> dict[str, Any]:
        p = self.printer
        running = p._sdPrinter is not None
        sd = ("printing" if p._sdPrintingSemaphore.is_set() else "paused") if running else "idle"
        selected = p._selectedSdFile
        return {
            "sd": sd,
            "file": os.path.basename(selected) if selected else None,
            "position": p._selectedSdFilePos or 0,
            "size": p._selectedSdFileSize or 0,
            "hotend": p.temp[0],
            "hotend_target": p.targetTemp[0],
            "bed": p.bedTemp,
            "bed_target": p.bedTargetTemp,
            "received": list(self.received),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="the path the pty's slave side is linked at")
    parser.add_argument(
        "--basedir", required=True, type=Path, help="OctoPrint's base folder (SD card inside)"
    )
    parser.add_argument("--settings", default="{}", help="JSON: plugins.virtual_printer overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    bridge = Bridge(args.port, args.basedir, json.loads(args.settings))
    print(json.dumps({"ready": True, "port": args.port}), flush=True)
    for command in sys.stdin:
        print(json.dumps(bridge.handle(command)), flush=True)
        if command.strip() == "quit":
            break
    else:
        bridge.handle("quit")
    os._exit(0)  # the printer's own threads (SD reader, timers) are not daemons


if __name__ == "__main__":
    main()
