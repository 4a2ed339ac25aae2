"""Evidence frames: the inspected frames around a warning or a pause, kept as JPEG files.

The last few frames wait in memory (a ring of `frames_before` + 1); only a flagged inspection
(warning or pause suggested) writes them, with itself, and the `frames_after` that follow. So an
uneventful print writes no frame at all, and memory holds a handful of JPEGs at most. The folder
is capped in size, oldest frames first.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from pathlib import Path

from agent.history.store import HistoryWriter

log = logging.getLogger(__name__)

PRUNE_BATCH = 50


class Evidence:
    def __init__(
        self, folder: Path, db: HistoryWriter, frames_before: int, frames_after: int, max_bytes: int
    ) -> None:
        self.folder = folder
        self.db = db
        self.frames_after = frames_after
        self.max_bytes = max_bytes
        self._ring: deque[tuple[int, int, bytes]] = deque(maxlen=frames_before + 1)
        self._after_left = 0

    def new_print(self) -> None:
        self._ring.clear()
        self._after_left = 0

    def inspected(self, print_id: int, seq: int, jpeg: bytes, flagged: bool) -> None:
        frame = (print_id, seq, jpeg)
        if flagged:
            self._ring.append(frame)
            for kept in self._ring:
                self._keep(*kept)
            self._ring.clear()
            self._after_left = self.frames_after
        elif self._after_left > 0:
            self._after_left -= 1
            self._keep(*frame)
        else:
            self._ring.append(frame)

    def _keep(self, print_id: int, seq: int, jpeg: bytes) -> None:
        if not jpeg or self.max_bytes <= 0:
            return
        relative = f"{print_id}/{seq}.jpg"
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)  # a frame cut short by a power loss is only a frame the report skips
        self.db.set_frame(print_id, seq, relative, len(jpeg))

    def prune(self) -> None:
        """Delete the oldest frames until the folder is within `max_evidence_mb`."""
        total = self.db.evidence_bytes()
        while total > self.max_bytes:
            oldest = self.db.oldest_frames(PRUNE_BATCH)
            if not oldest:
                break
            for print_id, seq, relative, size in oldest:
                (self.folder / relative).unlink(missing_ok=True)
                self.db.set_frame(print_id, seq, None)
                total -= size
                if total <= self.max_bytes:
                    break

    def forget_print(self, print_id: int) -> None:
        shutil.rmtree(self.folder / str(print_id), ignore_errors=True)

    def remove_strays(self, known: set[int]) -> None:
        """Folders of prints the database no longer has (deleted while a frame was being written)."""
        if not self.folder.is_dir():
            return
        for child in self.folder.iterdir():
            if child.is_dir() and not (child.name.isdigit() and int(child.name) in known):
                log.info("Removing stray evidence folder %s", child)
                shutil.rmtree(child, ignore_errors=True)
