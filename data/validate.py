"""Per-value validation of raw rows: times, numbers, and the dead letters of rows that fail.

Every decision here is made **per value**, never by the rest of the batch: one text
time among epoch floats, or one epoch-seconds value among milliseconds, is read on its
own terms. A value that cannot be read gives NaT / NaN and the caller rejects its row
with a reason; nothing here raises on a bad value (a 400-digit number, the year 9999,
``true`` where a number belongs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

#: Times outside this span are refused whatever the config says (nanosecond timestamps
#: hold 1677–2262); ``plausible_times`` narrows it.
FLOOR = pd.Timestamp("1900-01-01", tz="UTC")
CEILING = pd.Timestamp("2200-01-01", tz="UTC")
#: Epoch numbers above this magnitude are milliseconds (1e11 s is the year 5138).
MS_ABOVE = 1e11
#: Text that is a plain number is an epoch time, except these compact dates (YYYY,
#: YYYYMMDD, YYYYMMDDhhmmss).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_COMPACT_DATE = re.compile(r"\d{4}|\d{8}|\d{14}")
_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"
#: How much of a rejected row's raw value a dead letter keeps.
RAW_CHARS = 600


@dataclass(frozen=True)
class DeadLetter:
    """One rejected row or message: why, and its raw value (repr-escaped, truncated)."""

    reason: str
    raw: str
    at: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "raw": self.raw, "at": self.at}


def dead_letter(reason: str, raw: Any) -> DeadLetter:
    """A dead letter for ``raw``: ``repr`` keeps control characters and bad bytes visible."""
    text = repr(raw)
    if len(text) > RAW_CHARS:
        text = text[:RAW_CHARS] + f"… ({len(text)} chars)"
    return DeadLetter(reason, text, datetime.now(UTC).isoformat(timespec="seconds"))


def is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def to_numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Floats from raw values, and where a value has the wrong type (a bool is not a number).

    Unreadable text gives NaN; a number too large for a float gives ``inf`` (both are
    the caller's to reject).
    """
    n = len(raw)
    if pd.api.types.is_bool_dtype(raw):
        return np.full(n, np.nan), np.ones(n, dtype=bool)
    if pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype=float, na_value=np.nan), np.zeros(n, dtype=bool)
    values = raw.to_numpy(dtype=object)
    wrong = np.fromiter((is_bool(v) for v in values), dtype=bool, count=n)
    try:
        numbers = pd.to_numeric(pd.Series(np.where(wrong, None, values), dtype=object),
                                errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    except (OverflowError, ValueError, TypeError):
        numbers = np.array([np.nan if w else _float(v) for v, w in zip(values, wrong, strict=True)],
                           dtype=float)
    return numbers, wrong


def _float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf")
    except (TypeError, ValueError):
        return float("nan")


def parse_times(raw: pd.Series, timezone: str) -> pd.Series:
    """Parse timestamps to UTC, each value on its own; naive values are in the city's zone.

    Numbers (and text that is a plain number) are epoch seconds, or milliseconds when
    larger than 1e11 — decided per value. Unreadable values and times outside 1900–2200
    become NaT; the caller decides whether that rejects the row.
    """
    times, _ = read_times(raw, timezone)
    return times


def read_times(raw: pd.Series, timezone: str) -> tuple[pd.Series, np.ndarray]:
    """``(times, out_of_span)``: UTC times (NaT where unreadable or outside 1900–2200), and
    where a value was a readable time outside that span (implausible, not unparseable)."""
    n = len(raw)
    index = raw.index
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw if getattr(raw.dt, "tz", None) is not None else _localize(raw, timezone)
        return _within_span(parsed.dt.tz_convert("UTC"))
    numbers = np.full(n, np.nan)
    numeric = np.zeros(n, dtype=bool)
    text = np.full(n, None, dtype=object)
    if pd.api.types.is_bool_dtype(raw):
        values: np.ndarray = np.full(n, None, dtype=object)
    elif pd.api.types.is_numeric_dtype(raw):
        numbers = raw.to_numpy(dtype=float, na_value=np.nan)
        numeric[:] = True
        values = np.full(n, None, dtype=object)
    elif pd.api.types.infer_dtype(raw, skipna=True) == "string":
        # All text (a CSV column): classified with vectorised string methods.
        return _read_text_column(raw, timezone)
    else:
        values = raw.to_numpy(dtype=object)
    for i, value in enumerate(values):
        if value is None or is_bool(value):
            continue
        if isinstance(value, Real):
            numbers[i], numeric[i] = _float(value), True
        elif isinstance(value, str):
            value = value.strip()
            if _NUMBER.fullmatch(value) and not _COMPACT_DATE.fullmatch(value):
                numbers[i], numeric[i] = _float(value), True
            elif value:
                text[i] = value
        elif not pd.isna(value):
            text[i] = str(value)
    return _combine(index, numbers, numeric, text, timezone)


def _read_text_column(raw: pd.Series, timezone: str) -> tuple[pd.Series, np.ndarray]:
    stripped = raw.astype("string").str.strip()
    present = stripped.notna() & stripped.ne("")
    numeric = (present & stripped.str.fullmatch(_NUMBER.pattern)
               & ~stripped.str.fullmatch(_COMPACT_DATE.pattern)).fillna(False).to_numpy(dtype=bool)
    numbers = np.full(len(raw), np.nan)
    if numeric.any():
        try:
            numbers[numeric] = pd.to_numeric(stripped[numeric], errors="coerce").to_numpy(
                dtype=float, na_value=np.nan)
        except (OverflowError, ValueError, TypeError):
            numbers[numeric] = [_float(v) for v in stripped[numeric]]
    is_text = present.to_numpy(dtype=bool) & ~numeric
    text = np.full(len(raw), None, dtype=object)
    text[is_text] = stripped[is_text].to_numpy(dtype=object)
    return _combine(raw.index, numbers, numeric, text, timezone)


def _combine(index: pd.Index, numbers: np.ndarray, numeric: np.ndarray, text: np.ndarray,
             timezone: str) -> tuple[pd.Series, np.ndarray]:
    """Numbers read as epoch seconds or ms (per value), text as text times, into one column."""
    n = len(index)
    numeric = numeric & ~np.isnan(numbers)
    # UTC as naive nanoseconds while filling: tz-aware values would go through objects.
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    out_of_span = np.zeros(n, dtype=bool)
    if numeric.any():
        seconds = numbers[numeric]
        with np.errstate(invalid="ignore", over="ignore"):
            seconds = np.where(np.abs(seconds) > MS_ABOVE, seconds / 1000.0, seconds)
            fine = (np.isfinite(seconds) & (seconds >= FLOOR.timestamp())
                    & (seconds < CEILING.timestamp()))
        where = np.flatnonzero(numeric)
        out_of_span[where[~fine]] = True
        stamps = pd.to_datetime(np.round(seconds[fine] * 1e6).astype(np.int64), unit="us", utc=True)
        out[where[fine]] = stamps.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    has_text = np.array([t is not None for t in text], dtype=bool)
    if has_text.any():
        parsed, beyond = _parse_text(pd.Series(text[has_text], dtype="string"), timezone)
        where = np.flatnonzero(has_text)
        out[where] = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        out_of_span[where[beyond]] = True
    return pd.Series(out, index=index).dt.tz_localize("UTC"), out_of_span


def _parse_text(text: pd.Series, timezone: str) -> tuple[pd.Series, np.ndarray]:
    """Text times, each value parsed with its own format (``format="mixed"``)."""
    try:
        has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)
        aware = _to_datetime(text.where(has_offset), utc=True)
        naive = _to_datetime(text.where(~has_offset), utc=False)
        naive = _localize(naive, timezone).dt.tz_convert("UTC")
        parsed = aware.where(has_offset, naive)
        return _within_span(parsed)
    except (ValueError, OverflowError, TypeError):  # anything pandas refuses as a column
        one = [_parse_one(v, timezone) for v in text]
        times = pd.Series([t for t, _ in one], index=text.index, dtype="datetime64[ns, UTC]")
        return times, np.array([b for _, b in one], dtype=bool)


def _to_datetime(text: pd.Series, utc: bool) -> pd.Series:
    """ISO 8601 first (fast), then each value that is not ISO with its own format."""
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
    retry = (parsed.isna() & text.notna()).to_numpy(dtype=bool)
    if retry.any():
        again = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=utc)
        unit = _unit(parsed)
        parsed = parsed.astype(again.dtype) if _unit(again) != unit and len(again) else parsed
        parsed[retry] = again.to_numpy()
    return parsed


def _parse_one(value: str, timezone: str) -> tuple[pd.Timestamp | None, bool]:
    try:
        stamp = pd.Timestamp(value)
        if pd.isna(stamp):
            return None, False
        stamp = stamp.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward") \
            if stamp.tzinfo is None else stamp
        stamp = stamp.tz_convert("UTC")
    except (ValueError, OverflowError, TypeError):
        return None, False
    if not FLOOR <= stamp < CEILING:
        return None, True
    return stamp, False


def _localize(parsed: pd.Series, timezone: str) -> pd.Series:
    # The hour that repeats when daylight saving ends is read as its first (DST)
    # occurrence rather than refused; a clock that skips forward moves forward.
    return parsed.dt.tz_localize(timezone, ambiguous=np.ones(len(parsed), dtype=bool),
                                 nonexistent="shift_forward")


def _within_span(parsed: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """NaT outside 1900–2200 (flagged), in nanoseconds, before any cast could overflow."""
    parsed = parsed.astype(f"datetime64[{_unit(parsed)}, UTC]")
    beyond = (parsed.notna() & ((parsed < FLOOR) | (parsed >= CEILING))).to_numpy(dtype=bool)
    kept = parsed.where(~beyond)
    return kept.astype("datetime64[ns, UTC]"), beyond


def _unit(parsed: pd.Series) -> str:
    return str(np.datetime_data(parsed.dtype.base if hasattr(parsed.dtype, "base")
                                else parsed.dtype)[0]) if parsed.dtype != object else "ns"


__all__ = ["CEILING", "FLOOR", "DeadLetter", "dead_letter", "parse_times", "read_times",
           "to_numbers"]
