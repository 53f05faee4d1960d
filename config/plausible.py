"""The range of times a source's rows may plausibly carry: ``plausible_times``.

A clock set to 9999 or 1970 on a device, or a field holding ``-5``, gives a time
that parses but means nothing; such a row is rejected (``implausible time``) instead of
reaching the map or overflowing a timestamp. Each bound is an absolute date
(``"2000-01-01"``) or an offset from the city clock's now (``"+1d"``, ``"-30d"``)::

    [live]
    plausible_times = ["2000-01-01", "+1d"]     # every source

    [[sources]]
    plausible_times = ["-2h", "+10m"]           # this one only
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from config.kit import ConfigError, parse_duration

#: The widest range accepted whatever the config says: what a nanosecond timestamp holds.
FLOOR = pd.Timestamp("1900-01-01", tz="UTC")
CEILING = pd.Timestamp("2200-01-01", tz="UTC")
#: Without a configured range: nothing before 1971 (a zero, a small negative or a
#: seconds-since-boot counter read as an epoch) and nothing beyond the ceiling.
DEFAULT_LOWER = pd.Timestamp("1971-01-01", tz="UTC")


@dataclass(frozen=True)
class PlausibleTimes:
    """Two bounds, each absolute (a UTC timestamp) or relative to now (seconds)."""

    lower: pd.Timestamp | float = DEFAULT_LOWER
    upper: pd.Timestamp | float = CEILING

    def bounds(self, now: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The range as two UTC timestamps at ``now`` (clipped to 1900–2200)."""
        def resolve(bound: pd.Timestamp | float) -> pd.Timestamp:
            if isinstance(bound, pd.Timestamp):
                return bound
            return now + pd.Timedelta(seconds=bound)

        return max(resolve(self.lower), FLOOR), min(resolve(self.upper), CEILING)


def parse_plausible(where: str, value: Any) -> PlausibleTimes:
    """``[lower, upper]``: dates like ``"2000-01-01"`` or offsets like ``"+1d"`` / ``"-30d"``."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{where}: expected [lower, upper], e.g. [\"2000-01-01\", \"+1d\"], "
                          f"got {value!r}")
    lower, upper = (_bound(f"{where}[{i}]", v) for i, v in enumerate(value))
    if isinstance(lower, pd.Timestamp) and isinstance(upper, pd.Timestamp) and lower >= upper:
        raise ConfigError(f"{where}: the lower bound {value[0]!r} must come before {value[1]!r}")
    if not isinstance(lower, pd.Timestamp) and not isinstance(upper, pd.Timestamp) \
            and lower >= upper:
        raise ConfigError(f"{where}: the lower offset {value[0]!r} must be below {value[1]!r}")
    return PlausibleTimes(lower, upper)


def _bound(where: str, value: Any) -> pd.Timestamp | float:
    if isinstance(value, str) and value[:1] in "+-":
        return parse_duration(where, value[1:]) * (-1 if value[0] == "-" else 1)
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, OverflowError):
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise ConfigError(f"{where}: expected a date like \"2000-01-01\" or an offset like "
                          f"\"+1d\", got {value!r}")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if not FLOOR <= stamp <= CEILING:
        raise ConfigError(f"{where}: {value!r} is outside 1900-01-01 .. 2200-01-01")
    return stamp


__all__ = ["CEILING", "FLOOR", "PlausibleTimes", "parse_plausible"]
