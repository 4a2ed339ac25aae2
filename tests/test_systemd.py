"""sd_notify over a real AF_UNIX socket, and the agent's readiness, watchdog and health file:
in-process against the simulated world, and `layerguard run` as systemd starts it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.app import Agent
from agent.assembly import build_agent
from agent.detection.timing import DetectionTiming
from agent.health import Heartbeat, check_health, supervise
from agent.settings import CameraSection, PrinterSection
from agent.systemd import SystemdNotifier
from sim.frames import write_frames
from sim.gadget_service import GadgetStandIn
from sim.virtual_printer import VirtualPrinter, default_gcode
from sim.world import SimWorld, sim_world

TIMING = DetectionTiming(request_timeout_s=5, first_success_retry_s=0.5, interval_floor_s=0.2)


class NotifyListener:
    """The service manager's end of $NOTIFY_SOCKET: a bound datagram socket whose messages are read
    as they come, as systemd reads them (`reading=False`: a manager that stopped reading)."""

    def __init__(self, address: str, *, reading: bool = True) -> None:
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.socket.settimeout(0.1)  # how often the reader looks whether it is closed
        self.messages: list[str] = []
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        if reading:
            self._reader.start()

    def env(self, **extra: str) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address, **extra}

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first message (already received or arriving within `timeout`) that matches."""

        def found() -> str | None:
            return next((message for message in self.messages if predicate(message)), None)

        with self._changed:
            if (message := self._changed.wait_for(found, timeout)) is not None:
                return message
        raise AssertionError(f"no matching notification within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self._closed.set()
        if self._reader.is_alive():
            self._reader.join()
        self.socket.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                message = self.socket.recv(4096).decode()
            except TimeoutError:
                continue
            with self._changed:
                self.messages.append(message)
                self._changed.notify_all()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    made = NotifyListener(str(tmp_path / "notify"))
    yield made
    made.close()


def test_each_message_is_one_datagram(listener: NotifyListener) -> None:
    notifier = SystemdNotifier(listener.env())
    assert notifier.enabled
    notifier.ready("printer idle")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()
    assert listener.wait_for(lambda m: m.startswith("READY")) == "READY=1\nSTATUS=printer idle"
    listener.wait_for(lambda m: m == "STOPPING=1")
    assert listener.messages == ["READY=1\nSTATUS=printer idle", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_names_work() -> None:
    abstract = NotifyListener(f"@layerguard-test-{os.getpid()}")
    try:
        SystemdNotifier(abstract.env()).watchdog()
        assert abstract.wait_for(lambda m: True) == "WATCHDOG=1"
    finally:
        abstract.close()


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative/path"}])
def test_outside_systemd_nothing_is_sent(env: dict[str, str]) -> None:
    notifier = SystemdNotifier(env)
    assert not notifier.enabled
    notifier.ready("x")  # and no error


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).watchdog()
    assert "systemd notification: 'WATCHDOG' failed" in caplog.text


def test_a_manager_that_stops_reading_never_blocks_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its queue fills (a few hundred datagrams); a blocking send would then hang the event loop,
    SIGTERM included: the hang behind the flaky "stop within 10 s" of the test below."""
    stalled = NotifyListener(str(tmp_path / "notify"), reading=False)
    notifier = SystemdNotifier(stalled.env())

    def ping() -> None:
        for _ in range(2000):  # far past any queue's length
            notifier.watchdog()

    sender = threading.Thread(target=ping, daemon=True)  # a blocked send must fail the test, not hang it
    sender.start()
    sender.join(30)
    blocked = sender.is_alive()
    stalled.close()  # (this also frees a blocked sender)
    notifier.close()
    assert not blocked, "a notification blocked when the manager's queue was full"
    failures = [r.getMessage() for r in caplog.records if "systemd notification" in r.getMessage()]
    assert len(failures) == 1 and "'WATCHDOG' failed" in failures[0], "one line for the lasting condition"


@pytest.mark.parametrize(
    ("usec", "pid", "interval"),
    [("60000000", None, 30.0), ("60000000", "own", 30.0), ("60000000", "1", None), ("0", None, None)],
)
def test_watchdog_interval_is_half_of_watchdog_sec(
    usec: str, pid: str | None, interval: float | None
) -> None:
    env = {"WATCHDOG_USEC": usec}
    if pid:
        env["WATCHDOG_PID"] = str(os.getpid()) if pid == "own" else pid
    assert SystemdNotifier(env).watchdog_interval_s == interval


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_heartbeat_stalls_only_an_active_session_past_its_due_time() -> None:
    clock = Clock()
    beat = Heartbeat(grace_s=60, clock=clock)
    beat.set_active(True)
    clock.now += 600
    assert beat.stalled() is None, "no session, nothing due"

    beat.begin()
    clock.now += 59
    assert beat.stalled() is None
    clock.now += 2
    assert beat.stalled() == "inspection overdue by 61 s (camera or detection hung?)"

    beat.scheduled(clock.now + 30)  # a verdict, next one in 30 s
    clock.now += 89
    assert beat.stalled() is None
    beat.set_active(False)  # paused for an hour: nothing is expected meanwhile
    clock.now += 3600
    assert beat.stalled() is None
    beat.set_active(True)  # resumed: the overdue inspection starts now, the grace counts from here
    clock.now += 59
    assert beat.stalled() is None
    clock.now += 2
    assert beat.stalled() is not None
    beat.finished()
    assert beat.stalled() is None


@contextlib.asynccontextmanager
async def supervised(agent: Agent, listener: NotifyListener, **options: float) -> AsyncIterator[None]:
    notifier = SystemdNotifier(listener.env())
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(supervise(agent, notifier, **options))]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        notifier.close()


@pytest.fixture
def world() -> Iterator[SimWorld]:
    with sim_world(
        file="part.gcode",
        failure_at=None,
        print_duration_s=60,
        interval_s=0.3,
        broker=None,
        heat_duration_s=0.2,
    ) as made:
        yield made


@pytest.fixture
def silent_streamer() -> Iterator[socket.socket]:
    """A webcam that accepts connections and never answers: a hung camera, as a hung
    camera-streamer or a wedged libcamera looks to the agent. Closing it resets the capture."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


async def test_a_hung_camera_stops_the_watchdog_pings(
    world: SimWorld, listener: NotifyListener, silent_streamer: socket.socket, tmp_path: Path
) -> None:
    settings = world.settings(tmp_path / "state")
    settings.camera = CameraSection(source=f"http://127.0.0.1:{silent_streamer.getsockname()[1]}/snapshot")
    agent = build_agent(settings, timing=TIMING)
    agent.heartbeat = Heartbeat(grace_s=0.5)
    async with supervised(agent, listener, interval_s=0.1):
        ready = await asyncio.to_thread(listener.wait_for, lambda m: m.startswith("READY=1"))
        assert ready == "READY=1\nSTATUS=printer idle"
        await asyncio.to_thread(listener.wait_for, lambda m: m == "WATCHDOG=1")
        world.printer.panel_start("part.gcode")
        stalled = await asyncio.to_thread(listener.wait_for, lambda m: "inspection overdue" in m)
        assert stalled.startswith("STATUS=inspection overdue by ")
        assert check_health(tmp_path / "state").startswith("the agent is stalled: inspection overdue")
        listener.messages.clear()
        with pytest.raises(AssertionError, match="no matching notification"):
            await asyncio.to_thread(listener.wait_for, lambda m: m == "WATCHDOG=1", 0.5)
        silent_streamer.close()  # the capture fails now, so the agent stops without waiting for it


async def test_ready_comes_without_a_printer_and_says_what_is_missing(
    world: SimWorld, listener: NotifyListener, tmp_path: Path
) -> None:
    settings = world.settings(tmp_path / "state")
    settings.printer = PrinterSection(port=str(tmp_path / "no-printer"))
    agent = build_agent(settings, timing=TIMING)
    async with supervised(agent, listener, interval_s=0.1, ready_wait_s=0.3):
        ready = await asyncio.to_thread(listener.wait_for, lambda m: m.startswith("READY=1"))
        assert ready == f"READY=1\nSTATUS=waiting for the printer on {tmp_path / 'no-printer'}"
        await asyncio.to_thread(listener.wait_for, lambda m: m == "WATCHDOG=1")
        assert check_health(tmp_path / "state") is None


def test_health_of_an_agent_that_never_ran_or_stopped_long_ago(tmp_path: Path) -> None:
    assert "the agent has not started" in str(check_health(tmp_path))
    (tmp_path / "health.json").write_text(
        '{"at": 100.0, "interval_s": 15.0, "pid": 7, "print_state": "idle", "stalled": null}'
    )
    assert check_health(tmp_path, now=120.0) is None
    assert check_health(tmp_path, now=1000.0) == "the agent last reported 900 s ago (pid 7): is it running?"
    (tmp_path / "health.json").write_text("{}")
    assert "not a health record" in str(check_health(tmp_path))


def test_layerguard_run_under_systemd_notifies_and_reports_health(
    tmp_path: Path, listener: NotifyListener
) -> None:
    frames = tmp_path / "frames"
    write_frames(frames, 2, failure_at=None)
    with (
        VirtualPrinter(files={"part.gcode": default_gcode()}, print_duration_s=60) as printer,
        GadgetStandIn(api_key="k", interval=5) as service,
    ):
        config = tmp_path / "layerguard.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[printer]\nport = "{printer.port}"\n'
            f'[camera]\nsource = "dir:{frames}"\n[detection]\napi_url = "{service.base_url}"\n'
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LAYERGUARD_", "NOTIFY_", "WATCHDOG_"))
        }
        env |= listener.env(WATCHDOG_USEC="400000", LAYERGUARD_SECRETS_DIR=str(tmp_path))
        command = [sys.executable, "-m", "agent"]
        agent = subprocess.Popen([*command, "run", "--config", str(config)], env=env, stderr=subprocess.PIPE)
        try:
            assert listener.wait_for(lambda m: m.startswith("READY=1")) == "READY=1\nSTATUS=printer idle"
            listener.wait_for(lambda m: m == "WATCHDOG=1")
            health = subprocess.run(
                [*command, "health", "--config", str(config)], env=env, capture_output=True, text=True
            )
            assert (health.returncode, health.stdout) == (0, "healthy\n")
        finally:
            agent.send_signal(signal.SIGTERM)
            # The figure this protects: systemd kills an agent that has not stopped within the unit's
            # TimeoutStopSec. It stops in about a second on a quiet machine; the test allows the
            # unit's whole figure, as systemd does: the earlier 10 s bound flaked under load.
            _, stderr = agent.communicate(timeout=unit_stop_timeout_s())
        assert agent.returncode == 0, stderr
        listener.wait_for(lambda m: m == "STOPPING=1")


def unit_stop_timeout_s() -> float:
    """TimeoutStopSec= of the shipped systemd unit, in seconds."""
    unit = (Path(__file__).parent.parent / "config" / "layerguard.service").read_text()
    [value] = re.findall(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    return float(value)
