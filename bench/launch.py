"""`layerguard run` started as a user starts it (config file, SIGTERM to stop), pointed at the
simulated world, for the figures that need the agent in a process of its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt

from sim.broker import MosquittoBroker
from sim.frames import render_frame
from sim.mqtt_probe import MqttProbe, PayloadMatch

API_KEY = "bench-key-0123456789"
STOP_TIMEOUT_S = 15.0
# The default camera settings (camera.width, camera.height; render_frame encodes at quality 85).
CAMERA_SIZE = (1280, 720)


def layerguard_command() -> list[str]:
    """The `layerguard` console script of this interpreter's environment, as a user runs it."""
    script = Path(sys.executable).with_name("layerguard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def state_is(key: str, value: object) -> Callable[[bytes], bool]:
    """A predicate on a `<p>/state` payload, for MqttProbe.wait_for_blocking."""
    return lambda payload: bool(json.loads(payload)[key] == value)


def write_camera_frames(directory: Path, count: int = 4) -> Path:
    """A `dir:` camera of clean frames at the default size: capture is a file read, which keeps
    the camera's own cost out of the agent's footprint, as the goal asks."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        frame = render_frame(0.2 + index / 10, None, *CAMERA_SIZE, seed=index)
        (directory / f"frame_{index:03d}.jpg").write_bytes(frame)
    return directory


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class NotifySocket:
    """A NOTIFY_SOCKET like systemd's: records when READY=1 arrived (time.monotonic())."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready_at: float | None = None
        self._ready = threading.Event()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._thread = threading.Thread(target=self._receive, name="bench-notify", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> float | None:
        self._ready.wait(timeout_s)
        return self.ready_at

    def close(self) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(timeout=2)

    def _receive(self) -> None:
        while True:
            try:
                message = self._socket.recv(4096)
            except OSError:
                return
            if not message:
                return
            if b"READY=1" in message.split(b"\n") and self.ready_at is None:
                self.ready_at = time.monotonic()
                self._ready.set()


class AgentProcess:
    """One `layerguard run` with its own config and state under `directory`; its log goes to a
    file there (a pipe nobody reads would block it). `started_at` is taken just before spawning."""

    def __init__(
        self,
        directory: Path,
        *,
        printer_id: str,
        printer_port: str,
        camera: str,
        api_url: str,
        broker: MosquittoBroker,
        notify_socket: Path | None = None,
        notify_urls: tuple[str, ...] = (),
        shared_state_dir: Path | None = None,
        web_listen: str | None = None,
    ) -> None:
        """`shared_state_dir`: agents given the same one are printers of one Pi (one call count)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.printer_id = printer_id
        self.state_dir = directory / "state"
        self.config = directory / "layerguard.toml"
        shared = f'shared_state_dir = "{shared_state_dir}"\n' if shared_state_dir else ""
        self.config.write_text(
            f'[agent]\nprinter_id = "{printer_id}"\nstate_dir = "{self.state_dir}"\n{shared}'
            f'[printer]\nport = "{printer_port}"\n'
            f'[camera]\nsource = "{camera}"\n'
            f'[detection]\napi_url = "{api_url}"\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            + (f"[notify]\nurls = {json.dumps(list(notify_urls))}\n" if notify_urls else "")
            # The page is off unless a figure measures it: the other figures stay comparable.
            + (f'[web]\nlisten = "{web_listen}"\n' if web_listen else "[web]\nenabled = false\n")
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("LAYERGUARD_") and k != "NOTIFY_SOCKET"
        }
        env["LAYERGUARD_DETECTION__API_KEY"] = API_KEY
        if notify_socket is not None:
            env["NOTIFY_SOCKET"] = str(notify_socket)
        self.log_path = directory / "agent.log"
        with self.log_path.open("wb") as log:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                [*layerguard_command(), "run", "--config", str(self.config)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def terminate(self) -> None:
        """SIGTERM, as systemd stops it, without waiting (to stop many at once)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        return stop_process(self.process)

    def wait_for_state(
        self, probe: MqttProbe, match: PayloadMatch = None, timeout_s: float = 30.0
    ) -> mqtt.MQTTMessage:
        """The first `<p>/state` message the probe saw that matches; on a timeout, the error
        carries the agent's log, which says why better than the timeout does."""
        try:
            return probe.wait_for_blocking(f"layerguard/{self.printer_id}/state", match, timeout_s=timeout_s)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\nagent log:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def watched_agent(
    directory: Path, *, printer_id: str, broker: MosquittoBroker, **options: Any
) -> Iterator[tuple[AgentProcess, MqttProbe]]:
    """An AgentProcess (`options` are its keyword arguments) and a probe on its state topic;
    leaving stops it, and a status other than 0 (after a clean run) is an error that carries the
    agent's log."""
    probe = MqttProbe(broker.host, broker.port)
    try:
        probe.subscribe(f"layerguard/{printer_id}/state")
        with AgentProcess(directory, printer_id=printer_id, broker=broker, **options) as agent:
            yield agent, probe
            status = agent.stop()
            if status != 0:
                raise RuntimeError(f"layerguard run exited {status}:\n{agent.log_tail()}")
    finally:
        probe.close()
