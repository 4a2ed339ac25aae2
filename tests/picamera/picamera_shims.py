"""What it takes to run the real picamera2 on a machine with no Pi: install() before picamera2 is
imported. Each shim stands in for something this machine lacks, never for picamera2's or
libcamera's own behaviour; none of it enters the product.

Also the camera-defining file of libcamera's virtual pipeline (test-pattern cameras that need no
kernel driver): VIRTUAL_YAML, written by the tier's conftest.
"""

from __future__ import annotations

import mmap
import os
import sys
import types
from pathlib import Path
from typing import Any

# Where libcamera 0.7 looks for it (Debian ships only virtual.yaml.example there; libcamera did not
# look in /etc/libcamera/pipeline/virtual/). Two cameras: picamera2 can choose between them.
VIRTUAL_YAML_PATH = Path("/usr/share/libcamera/pipeline/virtual/virtual.yaml")
VIRTUAL_YAML = """\
"Virtual0":
  supported_formats:
    - width: 1920
      height: 1080
    - width: 1280
      height: 720
    - width: 640
      height: 480
  test_pattern: "bars"
  location: "CameraLocationFront"
  model: "Test Bars Cam"
"Virtual1":
  supported_formats:
    - width: 800
      height: 600
  test_pattern: "lines"
  location: "CameraLocationBack"
  model: "Test Lines Cam"
"""


def install() -> None:
    _stub_module("pykms")
    _stub_pidng()
    import picamera2.picamera2 as module
    from picamera2 import Picamera2

    module.DmaAllocator = _memfd_allocator_class()  # type: ignore[attr-defined]
    Picamera2._get_raw_modes = _non_raw_modes  # type: ignore[method-assign]


def _stub_module(name: str) -> types.ModuleType:
    """pykms (Raspberry Pi OS's python3-kms++, for the DRM preview window) is in no Debian or PyPI
    package (PyPI's `kms` is another project): picamera2 imports it, LayerGuard shows no preview."""
    module = sys.modules.setdefault(name, types.ModuleType(name))
    module.PixelFormat = _AnyName()  # type: ignore[attr-defined]
    return module


class _AnyName:
    """The preview's class body reads pixel format names from pykms.PixelFormat."""

    def __getattr__(self, name: str) -> str:
        return name


def _stub_pidng() -> None:
    """PiDNG writes DNG files of raw frames, which LayerGuard never asks for (and the virtual
    camera has no raw stream); it has no wheel for sid's Python and building it needs a compiler.
    picamera2's request module imports two names from it."""
    _stub_module("pidng")
    camdefs, core = _stub_module("pidng.camdefs"), _stub_module("pidng.core")
    camdefs.Picamera2Camera = object  # type: ignore[attr-defined]
    core.PICAM2DNG = object  # type: ignore[attr-defined]


def _non_raw_modes(self: Any) -> list[dict[str, Any]]:
    """Picamera2() asks the camera for its raw (sensor) modes to pick a native one. The virtual
    camera refuses the Raw stream role (a Pi sensor has one; a USB webcam through the uvcvideo
    pipeline answers with its processed formats): answer its one processed format at full size,
    as a non-Pi camera would."""
    import libcamera

    stream = self.camera.generate_configuration([libcamera.StreamRole.StillCapture]).at(0)
    return [{"format": str(stream.pixel_format), "size": (stream.size.width, stream.size.height)}]


def _memfd_allocator_class() -> type:
    """picamera2 allocates frame buffers from /dev/dma_heap, which this machine's kernel does not
    have. memfd gives the same thing to libcamera (a file descriptor it can mmap): one per buffer,
    split into the planes of the frame's format (the virtual camera makes NV12: Y, then CbCr)."""
    import libcamera
    from picamera2.allocators.allocator import Sync
    from picamera2.allocators.dmaallocator import DmaAllocator

    class MemfdSync(Sync):  # type: ignore[misc]
        """The buffer's mapping, as DmaSync hands it out, without DMA_BUF_IOCTL_SYNC (memfd knows
        none) and without Sync's check that all planes share one fd number (libcamera dups each)."""

        def __init__(self, allocator: Any, fb: Any, write: bool) -> None:
            self.mapping = allocator.mapped_buffers[fb]

        def __enter__(self) -> mmap.mmap:
            return self.mapping

        def __exit__(self, *exc: object) -> None:
            pass

        def get_buffer(self) -> mmap.mmap:
            return self.mapping

    class MemfdAllocator(DmaAllocator):  # type: ignore[misc]
        def __init__(self) -> None:
            self.sync = MemfdSync
            self.dmaHeap = None
            self.mapped_buffers: dict[Any, mmap.mmap] = {}
            self.mapped_buffers_used: dict[int, bool] = {}
            self.frame_buffers: dict[Any, list[Any]] = {}
            self.open_fds: list[int] = []
            self.libcamera_fds: list[int] = []

        def allocate(self, libcamera_config: Any, _use_case: Any) -> None:
            self.close()
            for stream_config in libcamera_config:
                buffers = []
                for i in range(stream_config.buffer_count):
                    fd = os.memfd_create(f"picamera2-{i}")
                    os.ftruncate(fd, stream_config.frame_size)
                    self.open_fds.append(fd)
                    planes = []
                    for offset, length in _plane_layout(stream_config):
                        plane = libcamera.FrameBuffer.Plane()
                        plane.fd, plane.offset, plane.length = fd, offset, length
                        planes.append(plane)
                    buffer = libcamera.FrameBuffer(planes)
                    # DmaAllocator's bookkeeping goes by the fd libcamera holds for plane 0.
                    self.libcamera_fds.append(buffer.planes[0].fd)
                    self.mapped_buffers_used[buffer.planes[0].fd] = False
                    self.mapped_buffers[buffer] = mmap.mmap(fd, stream_config.frame_size)
                    buffers.append(buffer)
                self.frame_buffers[stream_config.stream] = buffers

    return MemfdAllocator


def _plane_layout(stream_config: Any) -> list[tuple[int, int]]:
    """(offset, length) of each plane in one buffer: two for the semi-planar YUV formats."""
    if str(stream_config.pixel_format) in ("NV12", "NV21"):
        luma = stream_config.stride * stream_config.size.height
        return [(0, luma), (luma, stream_config.frame_size - luma)]
    return [(0, stream_config.frame_size)]
