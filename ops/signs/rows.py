"""The rows vital signs and rules read from the city store, now or at a past moment.

Live sources answer from their live window (its current state, or its history log
for a past moment); snapshot sources with the rows they were read as. Shared by
:mod:`ops.signs.indicators` and the rule kinds in :mod:`ops.signs.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from layers import LAYERS
from store.city import empty_role_frame

if TYPE_CHECKING:
    from config.city import Source
    from store.city import CityData


def reference_time(data: CityData) -> pd.Timestamp:
    """"Now" for a city: its clock when it has live sources, else its latest row time.

    A city read once from files (a snapshot) has no present; its vital signs are
    shown as of the newest row it holds.
    """
    if data.streaming_sources():
        return data.clock.now()
    latest: pd.Timestamp | None = None
    for source in data.config.sources:
        frame = data.frame(source.layer, source.role, source.name)
        if "time" in frame and frame["time"].notna().any():
            candidate = frame["time"].max()
            latest = candidate if latest is None else max(latest, candidate)
    return latest if latest is not None else data.clock.now()


def role_sources(data: CityData, layer: str, role: str, source: str | None = None,
                 ) -> tuple[Source, ...]:
    """The city's sources of one layer role (or just the one named ``source``)."""
    return tuple(s for s in data.config.sources if s.layer == layer and s.role == role
                 and (source is None or s.name == source))


def watermark(data: CityData, layer: str, role: str, source: str | None = None,
              ) -> pd.Timestamp | None:
    """How far the data of a role have reached: the oldest of its sources' watermarks.

    Each source's watermark is the newest event time ingested from it
    (:meth:`~store.city.CityData.watermark`); a role is only known up to the one
    that lags most. Sources that have sent no timed row yet do not hold it back
    (None when none has).
    """
    marks = [m for m in (data.watermark(s.name) for s in role_sources(data, layer, role, source))
             if m is not None]
    return min(marks) if marks else None


def filter_where(frame: pd.DataFrame, where: Sequence[tuple[str, tuple[Any, ...]]]) -> pd.DataFrame:
    """Rows whose ``column`` holds one of the listed values, for every (column, values)."""
    mask = np.ones(len(frame), dtype=bool)
    for column, values in where:
        if column not in frame:
            return frame.iloc[0:0]
        mask &= frame[column].isin(values).fillna(False).to_numpy(dtype=bool)
    return frame.loc[mask]


def event_rows(data: CityData, layer: str, role: str, source: str | None = None,
               now: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Every row known for a role, and the time from which that knowledge is complete.

    Live sources give their history log (latest version of each id), snapshot
    sources their rows. The coverage start is the latest of the live sources'
    ``max(first row time, now − history)`` (None: complete, snapshot sources only).
    """
    frames: list[pd.DataFrame] = []
    coverage: pd.Timestamp | None = None
    for spec in role_sources(data, layer, role, source):
        live = data.live_window(spec.name)
        if live is None:
            frames.append(data.frame(layer, role, spec.name))
            continue
        log_rows = live.log
        rows = live.rows() if log_rows.empty else log_rows.drop_duplicates("id", keep="last") \
            .drop(columns=["received", "_seq"], errors="ignore")
        frames.append(rows)
        start = rows["time"].min() if "time" in rows and rows["time"].notna().any() else None
        if now is not None:
            horizon = now - pd.Timedelta(seconds=live.history)
            start = horizon if start is None else max(start, horizon)
        if start is not None:
            coverage = start if coverage is None else max(coverage, start)
        elif now is not None:
            coverage = now  # a live source that has sent nothing yet: nothing is known
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_role_frame(layer, role), coverage
    rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return rows, coverage


def has_live_source(data: CityData, layer: str, role: str, source: str | None = None) -> bool:
    """True when a source of the role streams (it has a live window and history)."""
    return any(data.live_window(s.name) is not None for s in role_sources(data, layer, role, source))


def state_rows(data: CityData, layer: str, role: str, source: str | None = None,
               moment: pd.Timestamp | None = None) -> pd.DataFrame | None:
    """The rows of a role present at ``moment`` (None: now); None when that is unknown.

    A live source answers from its current state when ``moment`` is not before its
    last update, from its history log otherwise, and not at all before its log
    begins. Snapshot sources answer with their rows as they are. Observations (a
    role with an ``entity``) answer with each entity's latest one
    (:func:`latest_observations`).
    """
    frames: list[pd.DataFrame] = []
    for spec in role_sources(data, layer, role, source):
        live = data.live_window(spec.name)
        if live is None:
            frames.append(data.frame(layer, role, spec.name))
            continue
        span = live.history_span()
        if moment is None or span is None or moment >= span[1]:
            frames.append(live.rows())
        elif moment < span[0]:
            return None
        else:
            frames.append(live.state_at(moment))
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_role_frame(layer, role)
    rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return latest_observations(rows, moment) if LAYERS[layer].roles[role].observations else rows


def latest_observations(rows: pd.DataFrame, moment: pd.Timestamp | None = None) -> pd.DataFrame:
    """Each entity's newest observation (at or before ``moment``): the state of observations.

    A station's hourly readings are many rows; "the stations now" is one row per
    station, its latest reading. Rows without a time are left out.
    """
    timed = rows.loc[rows["time"].notna().to_numpy()]
    if moment is not None:
        timed = timed.loc[(timed["time"] <= moment).to_numpy()]
    latest = timed.sort_values("time", kind="stable").drop_duplicates("entity", keep="last")
    return latest.reset_index(drop=True)


def time_ns(values: pd.Series) -> np.ndarray:
    """UTC epoch nanoseconds of a datetime column (NaT rows must be dropped first)."""
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        index = index.tz_localize("UTC")
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)


__all__ = ["event_rows", "filter_where", "has_live_source", "latest_observations",
           "reference_time", "role_sources",
           "state_rows", "time_ns", "watermark"]
