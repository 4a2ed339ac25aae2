"""Camera backends against real files, a real HTTP server on loopback, and a fake picamera2."""

from __future__ import annotations

import base64
import io
import logging
import os
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, JpegImagePlugin

from agent.camera import open_camera as open_agent_camera
from agent.detection.base import MAX_IMAGE_BYTES
from agent.settings import CameraSection
from hardware.camera.base import CameraError
from hardware.camera.factory import CameraConfig, FittedCamera, open_camera
from hardware.camera.folder import FolderCamera
from hardware.camera.http_snapshot import HttpSnapshotCamera
from hardware.camera.jpeg import MAX_CAMERA_FRAME_BYTES, MAX_FRAME_BYTES, fit_jpeg
from hardware.camera.picamera import Picamera2Camera
from sim.frames import render_frame
from sim.snapshot_server import SnapshotServer


def make_jpeg(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (90, 120, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG")
    return out.getvalue()


def noise_jpeg(size: tuple[int, int], quality: int = 95) -> bytes:
    """Random pixels: the worst case for JPEG, so a frame of this size is as big as it gets."""
    image = Image.frombytes("L", size, os.urandom(size[0] * size[1]))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


# --- folder ----------------------------------------------------------------------------------------


def test_folder_replays_in_natural_order_and_wraps(tmp_path: Path) -> None:
    frames = {
        name: make_jpeg(color=(i * 40, 0, 0))
        for i, name in enumerate(["frame10.jpeg", "frame2.JPG", "frame1.jpg"])
    }
    for name, data in frames.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "notes.txt").write_text("not a frame")
    camera = FolderCamera(tmp_path)

    got = [camera.capture() for _ in range(4)]

    order = ["frame1.jpg", "frame2.JPG", "frame10.jpeg", "frame1.jpg"]
    assert got == [frames[name] for name in order]


def test_folder_picks_up_a_frame_added_while_running(tmp_path: Path) -> None:
    first, later, last = (
        make_jpeg(color=(1, 0, 0)),
        make_jpeg(color=(0, 200, 0)),
        make_jpeg(color=(0, 0, 200)),
    )
    (tmp_path / "a1.jpg").write_bytes(first)
    (tmp_path / "a9.jpg").write_bytes(last)
    camera = FolderCamera(tmp_path)
    assert camera.capture() == first

    (tmp_path / "a5.jpg").write_bytes(later)

    assert [camera.capture(), camera.capture(), camera.capture()] == [later, last, first]


def test_empty_folder_is_a_camera_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(CameraError, match=r"no \.jpg or \.jpeg files"):
        FolderCamera(tmp_path).capture()


def test_missing_folder_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        FolderCamera(tmp_path / "nowhere").capture()


def test_folder_refuses_a_frame_over_the_cap_unread(tmp_path: Path) -> None:
    with (tmp_path / "huge.jpg").open("wb") as frame:
        frame.write(make_jpeg())
        frame.truncate(20_000_000)  # sparse: 20 MB on paper, nothing on the disk
    with pytest.raises(CameraError, match=r"huge\.jpg: the camera frame is 20000000 bytes, over the"):
        FolderCamera(tmp_path).capture()


def test_folder_rejects_a_file_that_is_not_a_jpeg(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"GIF89a")
    with pytest.raises(CameraError, match=r"broken\.jpg is not a JPEG"):
        FolderCamera(tmp_path).capture()


# --- HTTP snapshot -----------------------------------------------------------------------------------

SNAPSHOT = make_jpeg((320, 240))
USER, PASSWORD = "maker", "s3cret-pw"


class SnapshotHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/private":
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._reply(401, b"who are you?", "text/plain")
                return
            self._reply(200, SNAPSHOT, "image/jpeg")
            return
        routes = {
            "/snapshot": (200, SNAPSHOT, "image/jpeg"),
            "/page": (200, b"<html>stream viewer</html>", "text/html"),
            "/stream": (200, b"--frame\r\nContent-Type: image/jpeg\r\n\r\n", "multipart/x-mixed-replace"),
            "/broken": (500, b"no camera", "text/plain"),
        }
        self._reply(*routes.get(self.path, (404, b"not found", "text/plain")))

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""


@pytest.fixture
def streamer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SnapshotHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_snapshot_returns_the_jpeg(streamer: str) -> None:
    camera = HttpSnapshotCamera(f"http://{streamer}/snapshot")
    try:
        assert camera.capture() == SNAPSHOT
        assert camera.capture() == SNAPSHOT
    finally:
        camera.close()


def test_http_snapshot_reopens_after_close(streamer: str) -> None:
    camera = HttpSnapshotCamera(f"http://{streamer}/snapshot")
    camera.capture()
    camera.close()
    assert camera.capture() == SNAPSHOT
    camera.close()


@pytest.mark.parametrize(("path", "status"), [("/nothing", "404"), ("/broken", "500")])
def test_http_error_status_is_a_camera_error(streamer: str, path: str, status: str) -> None:
    camera = HttpSnapshotCamera(f"http://{streamer}{path}")
    with pytest.raises(CameraError, match=f"HTTP {status}"):
        camera.capture()
    camera.close()


def test_http_body_that_is_not_a_jpeg_is_a_camera_error(streamer: str) -> None:
    camera = HttpSnapshotCamera(f"http://{streamer}/page")
    with pytest.raises(CameraError, match=r"not a JPEG \(text/html"):
        camera.capture()
    camera.close()


def test_http_video_stream_is_refused(streamer: str) -> None:
    camera = HttpSnapshotCamera(f"http://{streamer}/stream")
    with pytest.raises(CameraError, match=r"is a video stream.*/snapshot"):
        camera.capture()
    camera.close()


def test_unreachable_streamer_is_a_camera_error(closed_port: int) -> None:
    camera = HttpSnapshotCamera(f"http://{USER}:{PASSWORD}@127.0.0.1:{closed_port}/snapshot", timeout_s=2)
    with pytest.raises(CameraError, match="cannot fetch camera snapshot") as caught:
        camera.capture()
    camera.close()
    assert PASSWORD not in str(caught.value)
    assert f"http://127.0.0.1:{closed_port}/snapshot" in str(caught.value)


@pytest.fixture
def hostile_camera() -> Iterator[SnapshotServer]:
    with SnapshotServer(lambda: 0.5, None, 320, 240) as server:
        yield server


@pytest.mark.parametrize(
    ("fault", "says"), [("huge", "is 20000000 bytes, over"), ("huge_undeclared", "runs past")]
)
def test_http_snapshot_over_the_cap_is_refused(hostile_camera: SnapshotServer, fault: Any, says: str) -> None:
    """20 MB: refused by its Content-Length unread, or, without one, dropped at the cap."""
    hostile_camera.fault = fault
    camera = HttpSnapshotCamera(hostile_camera.url)
    try:
        with pytest.raises(
            CameraError, match=f"(20000000 bytes, over|runs past) the {MAX_CAMERA_FRAME_BYTES} bytes"
        ):
            camera.capture()
        hostile_camera.fault = None
        assert camera.capture().startswith(b"\xff\xd8")  # and it goes on once the frames are sane
    finally:
        camera.close()


def test_http_snapshot_dripping_is_cut_at_the_whole_call_deadline(hostile_camera: SnapshotServer) -> None:
    """Each byte comes well within httpx's per-read timeout; the call as a whole must not."""
    hostile_camera.fault, hostile_camera.drip_s = "drip", 0.05
    deadline_s = 0.5
    camera = HttpSnapshotCamera(hostile_camera.url, timeout_s=deadline_s)
    started = time.monotonic()  # the clock asyncio's loop uses
    try:
        with pytest.raises(CameraError, match=f"did not arrive whole within {deadline_s:g} s"):
            camera.capture()
        elapsed = time.monotonic() - started
    finally:
        camera.close()
    # What this protects: the capture ends at its deadline, not when the frame is in. Dripped whole,
    # the 320x240 frame (thousands of bytes at 0.05 s a byte) would take minutes; 10 s past the deadline is
    # far below that and above any scheduling delay seen on a loaded 2-core machine.
    assert deadline_s <= elapsed < deadline_s + 10


def test_http_credentials_go_as_basic_auth_and_stay_out_of_logs(
    streamer: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    camera = HttpSnapshotCamera(f"http://{USER}:{PASSWORD}@{streamer}/private")
    try:
        assert camera.capture() == SNAPSHOT
    finally:
        camera.close()
    assert caplog.records, "httpx logs each request; this test needs them to check"
    assert PASSWORD not in caplog.text


def test_wrong_credentials_are_reported_without_the_password(streamer: str) -> None:
    camera = HttpSnapshotCamera(f"http://{USER}:wrong-{PASSWORD}@{streamer}/private")
    with pytest.raises(CameraError, match="HTTP 401") as caught:
        camera.capture()
    camera.close()
    assert PASSWORD not in str(caught.value)
    assert "user name and password" in str(caught.value)


# --- fit_jpeg ---------------------------------------------------------------------------------------


def test_fit_jpeg_returns_small_frames_untouched() -> None:
    data = make_jpeg((1280, 720))
    assert fit_jpeg(data) is data


def test_fit_jpeg_lowers_quality_before_scaling() -> None:
    data = noise_jpeg((400, 300))
    limit = len(data) * 3 // 4
    fitted = fit_jpeg(data, max_bytes=limit)
    assert len(fitted) <= limit
    assert image_size(fitted) == (400, 300)


@pytest.fixture
def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every JPEG Pillow decodes from here on (a spy: the real load still runs)."""
    sizes: list[tuple[int, int]] = []
    load = JpegImagePlugin.JpegImageFile.load

    def spied(image: JpegImagePlugin.JpegImageFile) -> Any:
        pixels = load(image)
        sizes.append(image.size)
        return pixels

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spied)
    return sizes


def test_fit_jpeg_scales_a_huge_frame_under_the_service_limit_from_a_reduced_decode(
    decoded_sizes: list[tuple[int, int]],
) -> None:
    data = noise_jpeg((4000, 3000))
    assert 1.5 * MAX_FRAME_BYTES < len(data) <= MAX_CAMERA_FRAME_BYTES

    fitted = fit_jpeg(data)

    assert len(fitted) <= MAX_FRAME_BYTES
    width, height = image_size(fitted)
    assert width < 4000
    assert abs(width / height - 4000 / 3000) < 0.01
    # Never decoded at 12 MP: libjpeg scaled it down while decoding.
    assert decoded_sizes[0] == (2000, 1500)
    assert all(w * h <= 2000 * 1500 for w, h in decoded_sizes)


def test_fit_jpeg_checks_a_small_frame_at_an_eighth_of_its_size(decoded_sizes: list[tuple[int, int]]) -> None:
    data = make_jpeg((1280, 720))
    assert fit_jpeg(data) is data
    assert decoded_sizes == [(160, 90)]


def test_fit_jpeg_refuses_a_frame_over_the_cap_without_decoding(decoded_sizes: list[tuple[int, int]]) -> None:
    data = make_jpeg((64, 48)) + bytes(MAX_CAMERA_FRAME_BYTES)
    with pytest.raises(CameraError, match=f"over the {MAX_CAMERA_FRAME_BYTES} bytes accepted"):
        fit_jpeg(data)
    assert decoded_sizes == []


def test_fit_jpeg_refuses_a_frame_claiming_too_many_pixels(decoded_sizes: list[tuple[int, int]]) -> None:
    """A few hundred bytes can declare 68 MP; the header alone is enough to refuse it."""
    data = bytearray(make_jpeg((64, 48)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (8500).to_bytes(2, "big") + (8000).to_bytes(2, "big")  # height, width
    with pytest.raises(CameraError, match="8000x8500 frame, over the 64 MP cap"):
        fit_jpeg(bytes(data))
    assert decoded_sizes == []


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda jpeg: jpeg[: len(jpeg) // 2], "truncated"),
        (lambda jpeg: jpeg[:-200], "truncated"),  # the last rows missing
        (lambda jpeg: jpeg[:4] + b"<html>not found</html>" * 40, "cannot be decoded"),
        (lambda jpeg: jpeg[:600] + bytes(range(256)) * 40, "cannot be decoded"),
    ],
)
def test_fit_jpeg_refuses_a_frame_that_does_not_fully_decode(damage: Any, why: str) -> None:
    with pytest.raises(CameraError, match=why):
        fit_jpeg(damage(render_frame(0.5, None, 320, 240)))


# --- picamera2 (faked: it needs a Pi) ---------------------------------------------------------------


class FakeTransform:
    def __init__(self, hflip: bool = False, vflip: bool = False) -> None:
        self.hflip, self.vflip = hflip, vflip


# As picamera2's global_camera_info() lists a Pi 5's camera module and a USB webcam.
PI_CAMERA = {
    "Model": "imx708",
    "Location": 2,
    "Rotation": 180,
    "Id": "/base/axi/pcie@1000120000/rp1/i2c@88000/imx708@1a",
}
USB_CAMERA = {
    "Model": "HD Pro Webcam C920",
    "Location": 2,
    "Id": "/base/axi/pcie@1000120000/rp1/usb@200000-1:1.0-046d:082d",
}


class FakePicamera2:
    """Records what the backend asks of picamera2 and writes a real JPEG: red left, blue right.

    Behaves as the real library does where tests/picamera/ found out (picamera2 0.3.38 over
    libcamera 0.7): a camera number past the list is a RuntimeError, not an IndexError;
    configure() works on a copy and keeps libcamera's adjusted result (a size or a flip the camera
    cannot do) in `camera_config`; capture_file(wait=seconds) raises TimeoutError."""

    opened: list[FakePicamera2] = []
    open_error: BaseException | None = None
    capture_error: BaseException | None = None
    cameras: list[dict[str, Any]] = [PI_CAMERA]
    sizes: list[tuple[int, int]] | None = None  # None: any size (a Pi's ISP scales)
    can_flip = True

    def __init__(self, camera_num: int = 0) -> None:
        if FakePicamera2.open_error is not None:
            raise FakePicamera2.open_error
        if camera_num >= len(self.cameras):
            raise RuntimeError(f"No camera number {camera_num} found - use rpicam-hello --list-cameras")
        self.camera_num = camera_num
        self.options: dict[str, Any] = {}
        self.config: dict[str, Any] | None = None
        self.camera_config: dict[str, Any] = {}
        self.started = self.closed = False
        FakePicamera2.opened.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return FakePicamera2.cameras

    def create_still_configuration(self, main: dict[str, Any], transform: FakeTransform) -> dict[str, Any]:
        return {"main": main, "transform": transform}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config
        final = config.copy()
        if self.sizes is not None and tuple(config["main"]["size"]) not in self.sizes:
            config["main"]["size"] = max(self.sizes)  # the stream dict is shared, as in picamera2
        if not self.can_flip:
            final["transform"] = FakeTransform()
        self.camera_config = final

    def start(self) -> None:
        self.started = True

    def capture_file(self, file: io.BytesIO, format: str, wait: float) -> None:
        assert self.started and format == "jpeg" and wait > 0
        if FakePicamera2.capture_error is not None:
            raise FakePicamera2.capture_error
        width, height = self.camera_config["main"]["size"]
        image = Image.new("RGB", (width, height), (0, 0, 255))
        image.paste((255, 0, 0), (0, 0, width // 2, height))
        image.save(file, format="JPEG", quality=self.options["quality"])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    monkeypatch.setattr(FakePicamera2, "opened", [])
    monkeypatch.setattr(FakePicamera2, "open_error", None)
    monkeypatch.setattr(FakePicamera2, "capture_error", None)
    monkeypatch.setattr(FakePicamera2, "cameras", [PI_CAMERA])
    monkeypatch.setattr(FakePicamera2, "sizes", None)
    monkeypatch.setattr(FakePicamera2, "can_flip", True)
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.Transform = FakeTransform  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    return FakePicamera2


def red_side(frame: bytes) -> str:
    """Where the fake's red half ended up: left, right, top or bottom."""
    image = Image.open(io.BytesIO(frame)).convert("RGB")
    width, height = image.size
    points = {"left": (5, height // 2), "right": (width - 5, height // 2), "top": (width // 2, 5)}
    points["bottom"] = (width // 2, height - 5)
    reds = [side for side, xy in points.items() if image.getpixel(xy)[0] > 200]  # type: ignore[index]
    assert len(reds) == 1, reds
    return reds[0]


def test_picamera2_configures_size_flips_and_quality(fake_picamera2: type[FakePicamera2]) -> None:
    camera = Picamera2Camera(1280, 720, hflip=True, vflip=False, jpeg_quality=70)
    frame = camera.capture()
    camera.capture()

    assert len(fake_picamera2.opened) == 1, "the camera stays open between captures"
    picam2 = fake_picamera2.opened[0]
    assert picam2.config is not None
    assert picam2.config["main"]["size"] == (1280, 720)
    assert (picam2.config["transform"].hflip, picam2.config["transform"].vflip) == (True, False)
    assert picam2.options["quality"] == 70
    assert image_size(frame) == (1280, 720)

    camera.close()
    assert picam2.closed


def test_picamera2_rotation_180_is_a_double_flip(fake_picamera2: type[FakePicamera2]) -> None:
    Picamera2Camera(640, 480, rotation=180, hflip=True).capture()
    transform = fake_picamera2.opened[0].config["transform"]  # type: ignore[index]
    assert (transform.hflip, transform.vflip) == (False, True)


def test_picamera2_rotation_90_turns_clockwise_in_software(fake_picamera2: type[FakePicamera2]) -> None:
    frame = Picamera2Camera(640, 480, rotation=90).capture()
    assert image_size(frame) == (480, 640)
    assert red_side(frame) == "top"


def test_missing_picamera2_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="apt install python3-picamera2"):
        Picamera2Camera(640, 480)


def test_busy_camera_is_explained_and_retried(fake_picamera2: type[FakePicamera2]) -> None:
    # Like picamera2: the real cause is the context of a generic RuntimeError.
    try:
        try:
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        except RuntimeError:
            raise RuntimeError("Camera __init__ sequence did not complete.")  # noqa: B904
    except RuntimeError as exc:
        fake_picamera2.open_error = exc
    camera = Picamera2Camera(640, 480)

    with pytest.raises(CameraError, match="in use by another process"):
        camera.capture()

    fake_picamera2.open_error = None
    assert image_size(camera.capture()) == (640, 480)


def test_no_camera_is_explained(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.cameras = []
    with pytest.raises(CameraError, match="no Pi camera detected"):
        Picamera2Camera(640, 480).capture()


@pytest.mark.parametrize(("choice", "num"), [("", 0), ("1", 1), ("c920", 1), ("IMX708", 0)])
def test_a_camera_is_chosen_by_index_or_name(
    fake_picamera2: type[FakePicamera2], choice: str, num: int
) -> None:
    fake_picamera2.cameras = [PI_CAMERA, USB_CAMERA]
    Picamera2Camera(640, 480, choice=choice).capture()
    assert fake_picamera2.opened[0].camera_num == num


@pytest.mark.parametrize(("choice", "problem"), [("2", "no such camera"), ("ov5647", "no camera has")])
def test_a_camera_not_there_is_named_with_those_that_are(
    fake_picamera2: type[FakePicamera2], choice: str, problem: str
) -> None:
    fake_picamera2.cameras = [PI_CAMERA, USB_CAMERA]
    with pytest.raises(CameraError, match=f"picamera2:{choice}: {problem}") as err:
        Picamera2Camera(640, 480, choice=choice).capture()
    assert "0: imx708" in str(err.value) and "1: HD Pro Webcam C920" in str(err.value)
    assert not fake_picamera2.opened


def test_flips_the_camera_refuses_are_done_in_software(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.can_flip = False
    assert red_side(Picamera2Camera(640, 480).capture()) == "left"
    assert red_side(Picamera2Camera(640, 480, hflip=True).capture()) == "right"
    assert red_side(Picamera2Camera(640, 480, hflip=True, rotation=90).capture()) == "bottom"


def test_a_size_the_camera_cannot_deliver_is_said_once(
    fake_picamera2: type[FakePicamera2], caplog: pytest.LogCaptureFixture
) -> None:
    fake_picamera2.sizes = [(640, 480), (1920, 1080)]
    camera = Picamera2Camera(1280, 720)
    with caplog.at_level(logging.WARNING):
        assert image_size(camera.capture()) == (1920, 1080)
        camera.capture()
    assert [r.getMessage() for r in caplog.records] == [
        "the camera cannot deliver camera.width x camera.height = 1280x720; it sends 1920x1080"
    ]


def test_a_camera_that_delivers_no_frame_is_closed_and_reopened(fake_picamera2: type[FakePicamera2]) -> None:
    camera = Picamera2Camera(640, 480)
    fake_picamera2.capture_error = TimeoutError()
    with pytest.raises(CameraError, match="delivered no frame within 10 s"):
        camera.capture()
    assert fake_picamera2.opened[0].closed
    fake_picamera2.capture_error = None
    camera.capture()
    assert len(fake_picamera2.opened) == 2


def test_failed_capture_closes_and_reopens(fake_picamera2: type[FakePicamera2]) -> None:
    camera = Picamera2Camera(640, 480)
    camera.capture()
    fake_picamera2.capture_error = RuntimeError("Camera frontend has timed out!")

    with pytest.raises(CameraError, match="will reopen"):
        camera.capture()
    assert fake_picamera2.opened[0].closed

    fake_picamera2.capture_error = None
    camera.capture()
    assert len(fake_picamera2.opened) == 2


# --- factory ----------------------------------------------------------------------------------------


def test_factory_picks_picamera2(fake_picamera2: type[FakePicamera2]) -> None:
    camera = open_camera(CameraConfig(source="picamera2", width=800, height=600, rotation=270))
    assert isinstance(camera.camera, Picamera2Camera)
    assert image_size(camera.capture()) == (600, 800)
    camera.close()


def test_factory_passes_the_chosen_camera(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.cameras = [PI_CAMERA, USB_CAMERA]
    open_camera(CameraConfig(source="picamera2:webcam")).capture()
    assert fake_picamera2.opened[0].camera_num == 1


def test_factory_picks_http_snapshot(streamer: str) -> None:
    camera = open_camera(CameraConfig(source=f"http://{streamer}/snapshot"))
    assert isinstance(camera.camera, HttpSnapshotCamera)
    assert camera.capture() == SNAPSHOT
    camera.close()


def test_factory_picks_folder(tmp_path: Path) -> None:
    frame = make_jpeg()
    (tmp_path / "only.jpg").write_bytes(frame)
    camera = open_camera(CameraConfig(source=f"dir:{tmp_path}"))
    assert isinstance(camera.camera, FolderCamera)
    assert camera.capture() == frame


def test_the_agents_camera_holds_frames_to_the_services_limit(tmp_path: Path) -> None:
    (tmp_path / "only.jpg").write_bytes(make_jpeg())
    camera = open_agent_camera(CameraSection(source=f"dir:{tmp_path}", jpeg_quality=70))
    assert (camera.max_bytes, camera.quality) == (MAX_IMAGE_BYTES, 70)


def test_fitted_camera_holds_every_frame_to_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(noise_jpeg((600, 400)))
    camera = FittedCamera(FolderCamera(tmp_path), max_bytes=20_000)
    assert len(camera.capture()) <= 20_000


def test_a_shared_camera_takes_one_frame_for_callers_that_ask_at_once() -> None:
    """The live view and an inspection asking together get one capture: the inspection waits no
    longer than its own capture, and gets the same full frame it would have taken."""
    from hardware.camera.shared import SharedCamera

    class Slow:
        def __init__(self) -> None:
            self.taken = 0
            self.started = threading.Event()

        def capture(self) -> bytes:
            self.taken += 1
            self.started.set()
            time.sleep(0.5)
            return b"frame-%d" % self.taken

        def close(self) -> None:
            pass

    slow = Slow()
    shared = SharedCamera(slow)
    results: list[bytes] = []
    first = threading.Thread(target=lambda: results.append(shared.capture()))
    first.start()
    assert slow.started.wait(10)
    results.append(shared.capture())  # joins the capture in flight
    first.join(10)
    assert results == [b"frame-1", b"frame-1"] and slow.taken == 1
    assert shared.capture() == b"frame-2"  # nothing in flight: a fresh one
