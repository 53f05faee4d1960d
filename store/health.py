"""What the city store knows of each source's health: reads, rows, rejections, errors, staleness."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.clock import iso
from data.validate import DeadLetter

#: Dead letters kept per source (the newest; counts by reason cover every rejection).
DEAD_LETTERS_KEPT = 200


@dataclass
class SourceHealth:
    """What ``/api/health`` says of one source."""

    name: str
    layer: str
    role: str
    adapter: str
    simulated: bool
    stale_after: float | None
    rows_loaded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    warnings: tuple[str, ...] = ()
    last_read: datetime | None = None
    last_data: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: The newest rejected rows and messages, with their reason and raw value.
    dead_letters: deque[DeadLetter] = field(
        default_factory=lambda: deque(maxlen=DEAD_LETTERS_KEPT))
    #: When the read now running started (None: no read running), and how long it may take.
    reading_since: datetime | None = None
    read_deadline: float | None = None

    def slow(self, now: datetime | None = None) -> str | None:
        """"slow since …" while a read runs past its deadline, else None."""
        since, deadline = self.reading_since, self.read_deadline
        if since is None or deadline is None:
            return None
        running = ((now or datetime.now(UTC)) - since).total_seconds()
        if running <= deadline:
            return None
        return (f"slow since {iso(since, 'seconds')}: a read has been running for "
                f"{running:.0f} s, past its {deadline:g} s deadline")

    def is_stale(self, now: datetime | None = None) -> bool:
        """Stale when the last read failed, a read runs past its deadline, or no data
        arrived within ``stale_after``."""
        if self.last_read is None:
            return True
        if self.slow(now) is not None:
            return True
        if self.last_error is not None and (self.last_error_at or self.last_read) >= self.last_read:
            return True
        if self.stale_after is None:
            return False
        reference = self.last_data or self.last_read
        return ((now or datetime.now(UTC)) - reference).total_seconds() > self.stale_after

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "layer": self.layer, "role": self.role, "adapter": self.adapter,
            "simulated": self.simulated, "rows_loaded": self.rows_loaded,
            "rows_rejected": int(sum(self.rejected.values())),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "warnings": list(self.warnings),
            "dead_letters_kept": len(self.dead_letters),
            "last_read": iso(self.last_read, "seconds"), "last_data": iso(self.last_data, "seconds"),
            "last_error": self.last_error, "last_error_at": iso(self.last_error_at, "seconds"),
            "stale": self.is_stale(),
            "reading_since": iso(self.reading_since, "seconds"),
            "slow": self.slow(),
        }


__all__ = ["SourceHealth"]
