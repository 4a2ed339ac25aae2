"""The month's Process calls of every agent on this Pi, counted together in one small file.

The Gadget allowance belongs to the API key, and every printer's agent on the Pi spends it. Each
agent adds its calls under an exclusive `fcntl.flock` on a lock file beside the count, so two
agents counting at the same moment both count (no lost update); the count itself is replaced
atomically (agent.store), so a reader without the lock still finds a whole record. No server.

Record: {"month": "YYYY-MM", "calls": total, "printers": {printer_id: calls}}.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.store import JsonRecord
from hardware.quiet_log import LastingCondition

log = logging.getLogger(__name__)

PI_USAGE_FILE = "gadget-usage-pi.json"


class PiUsage:
    """This Pi's count for the month `month()` names (UTC); a file that cannot be used is logged
    as a lasting condition and the agent goes on counting its own calls only."""

    def __init__(self, directory: Path, printer_id: str, month: Callable[[], str]) -> None:
        self.path = directory / PI_USAGE_FILE
        self._record = JsonRecord(self.path)
        self._lock_path = directory / f"{PI_USAGE_FILE}.lock"
        self._printer_id = printer_id
        self._month = month
        self._trouble = LastingCondition(log, f"The Pi's call count ({self.path})")

    def calls(self) -> int | None:
        """Calls of every agent this month (read without the lock: the file is replaced whole);
        None while there is no count yet or the file cannot be used."""
        if self._trouble.since is not None or not self.path.exists():
            return None
        return _total(self._this_month())

    def add_call(self, limit: int = 0, own: int = 0) -> int | None:
        """Count one call of this printer and return the Pi's new total; with a `limit` reached,
        count nothing and return None. `own`: this printer's calls this month before this one,
        which a Pi count that does not exist yet starts from (an agent upgraded mid-month from
        counting alone). A file that cannot be used counts nothing (logged) and returns 0."""
        try:
            with self._locked():
                if self.path.exists():
                    record = self._this_month()
                else:
                    record = {"month": self._month(), "calls": own, "printers": {self._printer_id: own}}
                total = _total(record)
                if limit and total >= limit:
                    return None
                printers = record.setdefault("printers", {})
                printers[self._printer_id] = _count(printers.get(self._printer_id)) + 1
                record["calls"] = total + 1
                self._record.save(record, raise_errors=True)
        except OSError as exc:
            self._trouble.failed(f"{exc.strerror or exc}; counting this printer's calls only")
            return 0
        self._trouble.recovered()
        return total + 1

    def _this_month(self) -> dict[str, Any]:
        month = self._month()
        saved = self._record.load()
        if not saved or saved.get("month") != month or not isinstance(saved.get("printers"), dict):
            return {"month": month, "calls": 0, "printers": {}}
        return saved

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _total(record: dict[str, Any]) -> int:
    return _count(record.get("calls"))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
