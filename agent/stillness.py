"""Is the print still moving? Two independent signals, so nobody pays for a dead print.

The printer's: its SD position moves (a PrinterEvent's `sd_position`); heating or a busy line
(`echo:busy: processing`: a long move, a G4 dwell, homing) counts as activity. The camera's: each
inspected frame differs from the last at low resolution (hardware.camera.motion). A signal is
"still" once it has not moved for the threshold asked: `detection.still_after_s` for a print out
of the printer's reach, `detection.stalled_after_s` for one the printer says is printing.

What the agent does with them (agent.app):
- the link is gone or silent during a print (`unseen_print`) and the scene is still: the print
  most likely stopped with its printer (switched off, a hung board): inspections stop, state
  `print_still` and a `print_still` event say why, until the printer answers or the scene moves;
- the printer says printing, not heating, not busy, and neither position nor scene moved: a
  `print_stalled` event (and a notification), once per stall.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PIL import Image

from hardware.camera.motion import changed
from hardware.printer.events import PrinterEvent, PrinterEventKind


class StillWatch:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._position: int | None = None
        self._thumb: Image.Image | None = None
        self.stall_reported = False
        self.restart()

    def restart(self) -> None:
        """Both signals start afresh (a print starts, pauses, resumes, comes back into sight)."""
        now = self.clock()
        self._printer_moved = self._scene_moved = now
        self.stall_reported = False

    def printer(self, event: PrinterEvent) -> None:
        moved = event.sd_position is not None and event.sd_position != self._position
        if event.sd_position is not None:
            self._position = event.sd_position
        if moved or event.heating or event.kind is PrinterEventKind.BUSY:
            self._printer_moved = self.clock()
            self.stall_reported = False

    def frame(self, thumb: Image.Image | None) -> bool:
        """Note an inspected frame's thumbnail; True if the scene moved since the last."""
        if thumb is None:
            return False
        moved = self._thumb is None or changed(self._thumb, thumb)
        self._thumb = thumb
        if moved:
            self._scene_moved = self.clock()
            self.stall_reported = False
        return moved

    def printer_still(self, for_s: float) -> bool:
        """The printer's position has not moved for `for_s` (0: never still)."""
        return self._for(self._printer_moved, for_s)

    def scene_still(self, for_s: float) -> bool:
        """The picture has not moved for `for_s` (0: never still)."""
        return self._for(self._scene_moved, for_s)

    def _for(self, since: float, for_s: float) -> bool:
        return for_s > 0 and self.clock() - since >= for_s
