"""Small JSON records in the state directory that must survive a restart or a power cut.

Written atomically (temporary file, fsync, rename, fsync of the directory), so a reader finds
either the old record or the new one, never half of one, even when the Pi loses power mid-write.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class JsonRecord:
    """One JSON object in one file. A missing, unreadable or malformed file reads as None: the
    records hold conveniences (a context to continue, a call count), never something worth a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("Ignoring %s: %s", self.path, exc)
            return None
        if not isinstance(value, dict):
            log.warning("Ignoring %s: not a JSON object", self.path)
            return None
        return value

    def save(self, value: dict[str, Any], *, raise_errors: bool = False) -> None:
        """Replace the record; an OSError (full disk, read-only card) is logged, not raised,
        unless the caller must know (a count shared with other agents)."""
        try:
            replace_file(self.path, json.dumps(value).encode())
        except OSError as exc:
            if raise_errors:
                raise
            log.warning("Cannot write %s: %s", self.path, exc)

    def delete(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("Cannot delete %s: %s", self.path, exc)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` as `path` atomically and durably; an OSError is the caller's to handle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
