"""A folder of JPEGs played back as a camera (`camera.source = "dir:/path"`), for demos and tests."""

from __future__ import annotations

import bisect
import os
import re
from pathlib import Path

from hardware.camera.base import CameraError
from hardware.camera.jpeg import JPEG_MAGIC, MAX_CAMERA_FRAME_BYTES, frame_too_large

_SUFFIXES = (".jpg", ".jpeg")
_Key = tuple[tuple[int, int | str], ...]


def natural_key(name: str) -> _Key:
    """Sort key that orders frame2.jpg before frame10.jpg, ignoring case."""
    # The (0, number) / (1, text) tags keep numbers and text comparable at any position; the name
    # itself comes last so that frame2 and frame02 stay distinct.
    parts = [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name.lower())]
    return (*parts, (2, name))


class FolderCamera:
    """Returns the folder's *.jpg / *.jpeg files one per capture(), in natural name order, and
    wraps around to the first after the last, so a short recording can feed a long session.

    The listing is re-read whenever the folder's modification time changes (one stat per
    capture), so frames dropped in while it runs join the replay at their place in the order.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._names: list[str] = []
        self._keys: list[_Key] = []
        self._listed_mtime: int | None = None
        self._last_key: _Key | None = None

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self._listed_mtime and self._names:
                return
            names = [
                entry.name
                for entry in self.path.iterdir()
                if entry.name.lower().endswith(_SUFFIXES) and entry.is_file()
            ]
        except FileNotFoundError as exc:
            raise CameraError(f"camera folder {self.path} does not exist; check camera.source") from exc
        except NotADirectoryError as exc:
            raise CameraError(f"camera folder {self.path} is not a folder; check camera.source") from exc
        except OSError as exc:
            raise CameraError(f"cannot read camera folder {self.path}: {exc}") from exc
        if not names:
            raise CameraError(f"camera folder {self.path} holds no .jpg or .jpeg files")
        names.sort(key=natural_key)
        self._names = names
        self._keys = [natural_key(name) for name in names]
        self._listed_mtime = mtime

    def capture(self) -> bytes:
        """The next frame in order, after the one returned last. Raises CameraError."""
        self._refresh()
        index = 0 if self._last_key is None else bisect.bisect_right(self._keys, self._last_key)
        if index == len(self._names):
            index = 0
        name = self._names[index]
        self._last_key = self._keys[index]
        path = self.path / name
        try:
            with path.open("rb") as file:
                # Refused by its size before it is read; read with a bound in case it grows meanwhile.
                size = os.fstat(file.fileno()).st_size
                data = file.read(MAX_CAMERA_FRAME_BYTES + 1) if size <= MAX_CAMERA_FRAME_BYTES else b""
        except OSError as exc:
            self._listed_mtime = None  # it changed under us: list again next time
            raise CameraError(f"cannot read camera frame {path}: {exc}") from exc
        if size > MAX_CAMERA_FRAME_BYTES or len(data) > MAX_CAMERA_FRAME_BYTES:
            raise CameraError(f"camera frame {path}: {frame_too_large(max(size, len(data)))}")
        if not data.startswith(JPEG_MAGIC):
            raise CameraError(f"camera frame {path} is not a JPEG")
        return data

    def close(self) -> None:
        """Nothing to release; the next capture() carries on where this one left off."""
