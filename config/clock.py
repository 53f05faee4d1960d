"""The city clock: wall time, or an accelerated clock for replays and demos.

Everything that asks "what time is it in the city" (live windows, replays,
vital signs) asks the :class:`CityClock`, so a demo city replaying recorded data
at 60× behaves exactly like a live one, only faster. Freshness is the exception:
whether a *source* is stale is measured in wall time.

:func:`iso` is the one way a moment is written into JSON (health, events, the
replicated log).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import pandas as pd


@dataclass
class CityClock:
    """City time = ``origin`` + (wall time since start) × ``speed``.

    ``origin`` defaults to the wall time at start, so with ``speed = 1`` this is
    the wall clock. ``wall`` is where wall time comes from (:func:`time.time`);
    tests drive the clock by passing their own.

    >>> wall = iter([0.0, 0.0, 90.0]).__next__
    >>> clock = CityClock(speed=60, origin=pd.Timestamp("2026-11-30 08:00", tz="UTC"), wall=wall)
    >>> clock.now(), clock.now()
    (Timestamp('2026-11-30 08:00:00+0000', tz='UTC'), Timestamp('2026-11-30 09:30:00+0000', tz='UTC'))
    """

    speed: float = 1.0
    origin: pd.Timestamp | None = None
    wall: Callable[[], float] = field(default=time.time, repr=False)
    _wall_start: float = field(default=float("nan"), repr=False)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"clock speed must be positive, got {self.speed}")
        if self._wall_start != self._wall_start:  # NaN: not given, the clock starts now
            self._wall_start = self.wall()
        if self.origin is None:
            self.origin = pd.Timestamp(self._wall_start, unit="s", tz="UTC")

    def now(self) -> pd.Timestamp:
        assert self.origin is not None
        return self.origin + pd.Timedelta(seconds=self.elapsed())

    def elapsed(self) -> float:
        """City seconds since the clock started."""
        return (self.wall() - self._wall_start) * self.speed

    @property
    def accelerated(self) -> bool:
        return self.speed != 1.0


def iso(moment: datetime | None, timespec: Literal["auto", "seconds"] = "auto") -> str | None:
    """``moment`` as ISO 8601 text, ``None`` staying ``None``.

    ``timespec="seconds"`` for what people read (health); the default keeps
    microseconds, for text that is parsed back (the replicated log, events).

    >>> iso(datetime(2024, 5, 1, 12, 30, 5, 250000), "seconds")
    '2024-05-01T12:30:05'
    """
    return None if moment is None else moment.isoformat(timespec=timespec)
