"""hardware/camera/picamera.py, unchanged, against the real picamera2 0.3.38 and libcamera 0.7
with two virtual cameras (picamera_shims.VIRTUAL_YAML). picamera2 lists them by id, reversed:
camera 0 is "Test Lines Cam" (800x600, moving lines), camera 1 "Test Bars Cam" (static colour
bars, three sizes)."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from picamera_shims import VIRTUAL_YAML_PATH
from PIL import Image, ImageChops, ImageStat

from agent.assembly import build_agent
from agent.camera import open_camera
from agent.detection.timing import DetectionTiming
from agent.settings import CameraSection
from hardware.camera import picamera
from hardware.camera.base import CameraError
from hardware.camera.picamera import Picamera2Camera
from sim.world import sim_world

pytestmark = pytest.mark.picamera

HERE = Path(__file__).parent
PROCESS_S = 60  # a second process's whole run, generous for a loaded 2-core machine


def decoded(frame: bytes) -> Image.Image:
    """The frame as a whole, valid JPEG (load() fails on a truncated one)."""
    image = Image.open(io.BytesIO(frame))
    assert image.format == "JPEG"
    image.load()
    return image.convert("RGB")


def test_captures_repeatedly_at_the_configured_size() -> None:
    camera = Picamera2Camera(1280, 720, jpeg_quality=80, choice="bars")
    try:
        frames = [camera.capture() for _ in range(10)]
    finally:
        camera.close()
    assert {decoded(frame).size for frame in frames} == {(1280, 720)}


def test_closes_and_reopens() -> None:
    camera = Picamera2Camera(640, 480, choice="1")
    assert decoded(camera.capture()).size == (640, 480)
    camera.close()
    camera.close()
    assert decoded(camera.capture()).size == (640, 480)
    camera.close()


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize(("hflip", "vflip"), [(False, False), (True, False), (False, True), (True, True)])
def test_every_orientation_setting_gives_frames(rotation: int, hflip: bool, vflip: bool) -> None:
    """Each works: libcamera takes every flip the virtual camera is asked for (it accepts the
    Transform and keeps it in camera_config, though its test pattern is drawn unflipped: what a
    Pi's sensor does with it is not seen here); 90 and 270 are turned in software."""
    camera = Picamera2Camera(640, 480, rotation=rotation, hflip=hflip, vflip=vflip, choice="bars")
    try:
        image = decoded(camera.capture())
    finally:
        camera.close()
    assert image.size == ((480, 640) if rotation in (90, 270) else (640, 480))


def test_a_quarter_turn_is_the_unturned_frame_turned() -> None:
    """The colour bars stand still, so the software rotation can be checked pixel for pixel."""
    frames = []
    for rotation in (0, 90):
        camera = Picamera2Camera(640, 480, rotation=rotation, choice="bars")
        try:
            frames.append(decoded(camera.capture()))
        finally:
            camera.close()
    difference = ImageChops.difference(frames[0].transpose(Image.Transpose.ROTATE_270), frames[1])
    assert max(ImageStat.Stat(difference).mean) < 4, "JPEG noise only"


def test_a_size_the_camera_lacks_is_said_and_its_own_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    """The virtual camera, like a USB webcam, offers a few sizes; libcamera picks another (the
    virtual camera its largest) and picamera2 only logs "adjusted" at INFO."""
    camera = Picamera2Camera(1000, 700, choice="bars")
    with caplog.at_level(logging.WARNING, logger="hardware.camera.picamera"):
        try:
            size = decoded(camera.capture()).size
        finally:
            camera.close()
    assert size == (1920, 1080)
    assert "cannot deliver camera.width x camera.height = 1000x700; it sends 1920x1080" in caplog.text


@pytest.mark.parametrize(
    ("source", "size"),
    [
        ("picamera2", (800, 600)),
        ("picamera2:0", (800, 600)),
        ("picamera2:1", (640, 480)),
        ("picamera2:BARS", (640, 480)),
    ],
)
def test_the_configured_camera_is_chosen(source: str, size: tuple[int, int]) -> None:
    camera = open_camera(CameraSection(source=source, width=640, height=480))
    try:
        assert decoded(camera.capture()).size == size  # the lines camera has 800x600 only
    finally:
        camera.close()


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("2", "picamera2:2: no such camera; found 0: Test Lines Cam (Virtual1), 1: Test Bars Cam (Virtual0)"),
        ("cam", "picamera2:cam: more than one camera has that in its model or id"),
        ("imx708", "picamera2:imx708: no camera has that in its model or id"),
    ],
)
def test_a_camera_not_there_is_explained(choice: str, message: str) -> None:
    with pytest.raises(CameraError, match=re.escape(message)):
        Picamera2Camera(640, 480, choice=choice).capture()


def test_a_camera_that_stops_delivering_frames_is_closed_and_reopened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """picamera2 itself waits for ever for a frame that never comes (as with trixie's libcamera
    0.4 here); the backend's deadline makes it a CameraError, and the next capture reopens."""
    from picamera2 import Picamera2

    monkeypatch.setattr(picamera, "CAPTURE_TIMEOUT_S", 1.0)
    manager = Picamera2._cm
    withheld: list[object] = []  # kept, not dropped: libcamera still owns them (dropping crashes it)

    def withhold_every_frame(flushid: object = None) -> None:
        withheld.extend(manager.cms.get_ready_requests())

    # Read when the first camera opens (CameraManager.setup registers its event handler).
    monkeypatch.setattr(manager, "handle_request", withhold_every_frame)
    camera = Picamera2Camera(640, 480, choice="bars")
    with pytest.raises(CameraError, match="delivered no frame within 1 s; will reopen it next time"):
        camera.capture()
    monkeypatch.undo()
    try:
        assert decoded(camera.capture()).size == (640, 480)
    finally:
        camera.close()


def camera_process(action: str, choice: str = "", hide_cameras: bool = False) -> subprocess.Popen[str]:
    command = [sys.executable, str(HERE / "camera_process.py"), action, choice]
    if hide_cameras:
        # A root without the virtual cameras' file: an empty folder mounted over its own, in a
        # mount namespace of the child's.
        folder = VIRTUAL_YAML_PATH.parent
        command = [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f'mount -t tmpfs none {folder} && exec "$@"',
            "-",
            *command,
        ]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_no_camera_is_explained() -> None:
    with camera_process("capture", hide_cameras=True) as child:
        out, _ = child.communicate(timeout=PROCESS_S)
    assert out.startswith("CameraError: no Pi camera detected: check the ribbon cable"), out


def test_a_virtual_camera_is_not_locked_against_other_processes() -> None:
    """What this tier cannot show: libcamera locks a camera against other processes through its
    media device (lockf), and a virtual camera has none, so a second process captures too. The
    "in use" message is proven within one process below, from libcamera's real refusal."""
    with camera_process("hold") as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held 800x600\n"
        camera = Picamera2Camera(800, 600)
        try:
            assert decoded(camera.capture()).size == (800, 600)
        finally:
            camera.close()
            holder.communicate("", timeout=PROCESS_S)


def test_a_camera_held_in_this_process() -> None:
    holder, second = Picamera2Camera(640, 480, choice="bars"), Picamera2Camera(640, 480, choice="bars")
    try:
        holder.capture()
        with pytest.raises(CameraError, match="in use by another process"):
            second.capture()
    finally:
        holder.close()
        second.close()


TIMING = DetectionTiming(
    request_timeout_s=5, first_success_retry_s=0.3, interval_floor_s=0.2, interval_ceiling_s=60
)


async def test_the_agent_inspects_a_print_through_the_pi_camera(tmp_path: Path) -> None:
    """The agent's own inspection loop, frames from the real picamera2, sent to the detection
    stand-in on loopback, during a simulated print on a virtual printer."""
    with sim_world(
        file="benchy.gcode",
        failure_at=None,
        print_duration_s=60,
        interval_s=0.3,
        heat_duration_s=0.3,
        broker=None,
    ) as world:
        settings = world.settings(tmp_path, printer_id="picam")
        settings.camera = CameraSection(source="picamera2:bars", width=640, height=480)
        agent = build_agent(settings, timing=TIMING)
        task = asyncio.create_task(agent.run())
        try:
            async with asyncio.timeout(30):
                await agent.wait_for(lambda s: s.print_state == "idle")
                world.printer.panel_start("benchy.gcode")
                while len([c for c in world.service.calls if c.endpoint == "process"]) < 3:
                    await asyncio.to_thread(world.service.wait_for_calls, len(world.service.calls) + 1, 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    process = [c for c in world.service.calls if c.endpoint == "process"]
    assert all(c.status == 200 and c.answer is not None for c in process), (
        "every frame decoded at the service"
    )
    assert {c.files[0].content_type for c in process} == {"image/jpeg"}
