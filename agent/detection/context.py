"""One print's Gadget context, and its record in the state directory.

The record lets an agent restarted in the middle of a print (systemd restart, a power blip of the
Pi alone) continue the same context: the service keeps the print's history, the context stays on
its fallback URL if it had moved there, and the next Process call still waits for its interval.

What makes a print found running "the same print" (docs/detection.md): its file name when both
sightings have one; otherwise the SD file's size and read position, which every firmware reports
(`SD printing byte P/T`) while Klipper and OctoPrint's printer never name a print found running:
the same size, and a position that has not gone back. Without either, it is a new print.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class PrintKey:
    """What the printer said about a print: its file name, and the SD file's size and position."""

    file: str | None = None
    sd_size: int | None = None
    sd_position: int | None = None


# Written by later versions only: a record without them is still read.
_OPTIONAL = frozenset({"sd_size", "sd_position"})


@dataclass(slots=True)
class GadgetContext:
    context_id: str
    primary_url: str
    fallback_url: str
    file: str | None  # the print it belongs to
    created_at: float  # wall time; the service forgets contexts after 14 days
    on_fallback: bool = False
    # The service's last interval; None until the context's first successful Process.
    interval_s: float | None = None
    # Wall time before which the next Process call must not start.
    next_call_at: float = 0.0
    # Whether this agent run has seen the context work: a continued context that the service
    # answers with OE_BAD_ARGS is one it no longer knows.
    confirmed: bool = True
    # The print's SD file size, and the last read position the agent saw (kept as the print goes).
    sd_size: int | None = None
    sd_position: int | None = None

    @property
    def process_url(self) -> str:
        return self.fallback_url if self.on_fallback else self.primary_url

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        del record["confirmed"]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> GadgetContext | None:
        """The context a record holds, unconfirmed; None when the record is missing or malformed."""
        if record is None:
            return None
        names = {f.name for f in fields(cls)} - {"confirmed"}
        if not names - _OPTIONAL <= set(record) <= names:
            return None
        try:
            context = cls(**record, confirmed=False)
        except TypeError:
            return None
        return context if _well_formed(context) else None

    def continues(self, key: PrintKey, now: float, max_age_s: float) -> bool:
        """Whether the print `key` seen at `now` is this context's print going on."""
        if not 0 <= now - self.created_at < max_age_s:
            return False
        if None not in (self.file, key.file) and self.file != key.file:
            return False
        if self.sd_size is None or key.sd_size is None:
            return self.file is not None and self.file == key.file
        if self.sd_size != key.sd_size:
            return False
        return self.sd_position is None or key.sd_position is None or key.sd_position >= self.sd_position


def _well_formed(c: GadgetContext) -> bool:
    texts = (c.context_id, c.primary_url, c.fallback_url)
    numbers = (c.created_at, c.next_call_at, 0.0 if c.interval_s is None else c.interval_s)
    counts = (c.sd_size, c.sd_position)
    return (
        all(isinstance(t, str) and t for t in texts)
        and (c.file is None or isinstance(c.file, str))
        and all(n is None or (type(n) is int and n >= 0) for n in counts)
        and isinstance(c.on_fallback, bool)
        and all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in numbers)
    )
