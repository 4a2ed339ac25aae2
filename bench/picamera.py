"""The Pi camera backend with the real picamera2 and libcamera: capture time, and what loading it
costs in memory next to the HTTP backend (a Pi Zero 2 has 512 MB). Runs only inside the root of
scripts/picamera-root.sh, against libcamera's virtual camera: `sudo scripts/picamera-test.sh bench`.

Capture time: Picamera2Camera.capture() (frame, JPEG encoding by picamera2, our copy out), the
camera kept open as the agent keeps it; the first capture includes opening and starting it.
RSS: a fresh process loads the agent's modules (agent.assembly, as `layerguard run` does), opens
the camera through agent.camera.open_camera, captures 5 frames, and reports VmRSS and
VmHWM; once with `picamera2:bars` and once with an http:// snapshot URL (sim/snapshot_server.py
in this process). No tuning file, ISP or dma-heap is involved: a Pi's figures will differ.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TIER = Path(__file__).resolve().parent.parent / "tests" / "picamera"
CAPTURES = 30

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
if sys.argv[1].startswith("picamera2"):
    from picamera_shims import install
    install()
import agent.assembly  # the agent's modules, as `layerguard run` loads them
from agent.settings import CameraSection
from agent.camera import open_camera
camera = open_camera(CameraSection(source=sys.argv[1], width=1280, height=720))
for _ in range(5):
    camera.capture()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({k: int(status[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}))
camera.close()
"""


def capture_times(width: int, height: int) -> dict[str, float]:
    from hardware.camera.picamera import Picamera2Camera

    camera = Picamera2Camera(width, height, choice="bars")
    try:
        started = time.perf_counter()
        camera.capture()
        first = time.perf_counter() - started
        times = []
        for _ in range(CAPTURES):
            started = time.perf_counter()
            camera.capture()
            times.append(time.perf_counter() - started)
    finally:
        camera.close()
    return {
        "first_ms": first * 1000,
        "median_ms": statistics.median(times) * 1000,
        "min_ms": min(times) * 1000,
        "max_ms": max(times) * 1000,
    }


def child_memory(source: str) -> dict[str, int]:
    command = [sys.executable, "-c", CHILD, source, str(TIER)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(TIER))
    from picamera_shims import VIRTUAL_YAML, VIRTUAL_YAML_PATH, install

    VIRTUAL_YAML_PATH.write_text(VIRTUAL_YAML)
    install()
    from sim.snapshot_server import SnapshotServer

    print("| figure | first (open + capture) | median | min | max |")
    print("|---|---|---|---|---|")
    for width, height in ((1280, 720), (640, 480)):
        t = capture_times(width, height)
        print(
            f"| capture {width}x{height}, {CAPTURES} frames | {t['first_ms']:.0f} ms "
            f"| {t['median_ms']:.1f} ms | {t['min_ms']:.1f} ms | {t['max_ms']:.1f} ms |"
        )
    print("\n| camera backend | VmRSS after 5 captures | VmHWM |")
    print("|---|---|---|")
    with SnapshotServer(lambda: 0.5, None, 1280, 720) as webcam:
        backends = (("picamera2 (+ numpy, libcamera)", "picamera2:bars"), ("HTTP snapshot", webcam.url))
        for name, source in backends:
            memory = child_memory(source)
            print(f"| {name} | {memory['VmRSS']} MB | {memory['VmHWM']} MB |")


if __name__ == "__main__":
    main()
