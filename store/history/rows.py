"""Rows of the PostgreSQL history and back: a frame of versions as typed columns plus JSONB.

:func:`encode` turns the versions one source received at one moment into table rows
and the frame's schema (every column with its dtype); :func:`decode` rebuilds exactly
the frame :meth:`store.live.LiveStore.state_at` would hold from rows read back.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

#: Frame columns stored as typed columns; the others go into ``payload``.
TYPED_COLUMNS = ("id", "time", "lat", "lon", "cell", "source")
#: LiveStore bookkeeping, never stored.
INTERNAL_COLUMNS = ("received", "_seq")


def encode(source: str, frame: pd.DataFrame,
           received: pd.Timestamp) -> tuple[list[tuple[Any, ...]], list[list[str]]]:
    """Rows ``(source, id, received, time, lat, lon, cell, payload JSON)`` and the schema.

    The latest version per id wins, as in :meth:`LiveStore.add`. The schema lists every
    column of the frame with its dtype, so a read rebuilds the same frame.
    """
    frame = frame.drop(columns=[c for c in INTERNAL_COLUMNS if c in frame])
    frame = frame.drop_duplicates("id", keep="last")
    schema = [[str(c), str(frame[c].dtype)] for c in frame.columns]
    n = len(frame)
    ids = frame["id"].astype(str).tolist()
    times = _datetimes(frame["time"]) if "time" in frame else [None] * n
    lats = _floats(frame["lat"]) if "lat" in frame else [None] * n
    lons = _floats(frame["lon"]) if "lon" in frame else [None] * n
    cells = frame["cell"].astype("Int64").tolist() if "cell" in frame else [None] * n
    cells = [None if c is None or c is pd.NA else int(c) for c in cells]
    payload_columns = [(str(c), _json_values(frame[c])) for c in frame.columns
                       if c not in TYPED_COLUMNS]
    at = pydatetime(received)
    rows = []
    for i in range(n):
        # Missing values are left out: sparse attribute columns cost nothing.
        payload = {name: values[i] for name, values in payload_columns if values[i] is not None}
        rows.append((source, ids[i], at, times[i], lats[i], lons[i], cells[i],
                     json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)))
    return rows, schema


def decode(source: str, schema: list[list[str]], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """The frame of ``rows`` (id, received, time, lat, lon, cell, payload) with ``schema``."""
    payloads = [r[6] or {} for r in rows]
    typed = {"id": [r[0] for r in rows], "time": [r[2] for r in rows],
             "lat": [r[3] for r in rows], "lon": [r[4] for r in rows],
             "cell": [r[5] for r in rows], "source": [source] * len(rows)}
    columns = {}
    for name, dtype in schema:
        values = typed[name] if name in typed else [p.get(name) for p in payloads]
        columns[name] = _column(values, dtype)
    return pd.DataFrame(columns)


def _column(values: list[Any], dtype_name: str) -> pd.Series:
    """A column of JSON/driver values restored to ``dtype_name``."""
    try:
        dtype = pd.api.types.pandas_dtype(dtype_name)
    except TypeError:
        return pd.Series(values, dtype=object)
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        if isinstance(dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert(dtype.tz).astype(dtype)
        return parsed.dt.tz_localize(None).astype(dtype)
    if dtype.kind == "f":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=dtype)
    try:
        return pd.Series(values, dtype=object).astype(dtype)
    except (TypeError, ValueError):  # e.g. nulls in an int column: keep what was stored
        return pd.Series(values, dtype=object).infer_objects()


def _json_values(series: pd.Series) -> list[Any]:
    """A column's values as JSON-ready Python values, None where missing."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        return [None if pd.isna(v) else v.isoformat() for v in series]
    if dtype.kind == "f":
        values = series.to_numpy(dtype=float)
        return [None if math.isnan(v) else v if math.isfinite(v) else
                ("Infinity" if v > 0 else "-Infinity") for v in values.tolist()]
    return [_plain(v) for v in series.tolist()]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def _datetimes(series: pd.Series) -> list[datetime | None]:
    if not (isinstance(series.dtype, pd.DatetimeTZDtype) or series.dtype.kind == "M"):
        series = pd.to_datetime(series, utc=True, errors="coerce")
    if getattr(series.dt, "tz", None) is None:
        series = series.dt.tz_localize("UTC")
    return [None if pd.isna(v) else v.to_pydatetime(warn=False) for v in series]


def _floats(series: pd.Series) -> list[float | None]:
    return [None if math.isnan(v) else v for v in pd.to_numeric(series, errors="coerce")
            .to_numpy(dtype=float).tolist()]


def pydatetime(moment: pd.Timestamp) -> datetime:
    """``moment`` as PostgreSQL stores it (microseconds: the nanoseconds are dropped,
    which floors positive times)."""
    return pd.Timestamp(moment).to_pydatetime(warn=False)
