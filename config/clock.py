"""The city clock: wall time, or an accelerated clock for replays and demos.

Everything that asks "what time is it in the city" (live windows, replays,
vital signs, event SLAs and their escalation) asks the :class:`CityClock`, so a
demo city replaying recorded data at 60× behaves exactly like a live one, only
faster. Freshness is the exception: whether a *source* is stale is measured in
wall time.

``[live] start`` (read by :func:`parse_start`) starts the clock at a chosen
moment, for replays and "as of" reviews: the clock is then *anchored*, and
replays play their rows at their recorded times (see :mod:`data.replay`).

:func:`iso` is the one way a moment is written into JSON (health, events, the
replicated log).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from config.kit import ConfigError


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
    #: True when ``origin`` is a configured start (``[live] start``), not "now".
    anchored: bool = False
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


def parse_start(where: str, value: Any, timezone: str) -> pd.Timestamp:
    """``[live] start``: an ISO 8601 moment (or a TOML date-time), in UTC.

    A moment without an offset is read in the city's ``timezone``; one with an
    offset keeps it.

    >>> parse_start("[live].start", "2026-11-30T08:00:00", "America/New_York")
    Timestamp('2026-11-30 13:00:00+0000', tz='UTC')
    >>> parse_start("[live].start", "2026-11-30T08:00:00+08:00", "America/New_York")
    Timestamp('2026-11-30 00:00:00+0000', tz='UTC')
    """
    fix = 'write it like "2026-11-30T08:00:00" (city time) or "2026-11-30T08:00:00+08:00"'
    if isinstance(value, bool) or not isinstance(value, str | datetime):
        raise ConfigError(f"{where}: expected a date and time, got {value!r}; {fix}")
    try:
        moment = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a date and time; {fix}") from exc
    if moment is pd.NaT:
        raise ConfigError(f"{where}: {value!r} is not a date and time; {fix}")
    if moment.tzinfo is None:
        try:
            moment = moment.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as exc:  # DST gap or overlap
            raise ConfigError(f"{where}: {value!r} is skipped or repeated in {timezone!r} "
                              "(a daylight-saving change); give the offset explicitly, "
                              "e.g. \"2026-11-01T01:30:00-05:00\"") from exc
        except KeyError as exc:  # an unknown zone (zoneinfo and pytz both raise a KeyError)
            raise ConfigError(f"{where}: cannot read it in the city's timezone {timezone!r} "
                              f"({exc}); fix [city].timezone or give an offset") from exc
    return moment.tz_convert("UTC")


def iso(moment: datetime | None, timespec: Literal["auto", "seconds"] = "auto") -> str | None:
    """``moment`` as ISO 8601 text, ``None`` staying ``None``.

    ``timespec="seconds"`` for what people read (health); the default keeps
    microseconds, for text that is parsed back (the replicated log, events).

    >>> iso(datetime(2024, 5, 1, 12, 30, 5, 250000), "seconds")
    '2024-05-01T12:30:05'
    """
    return None if moment is None else moment.isoformat(timespec=timespec)
