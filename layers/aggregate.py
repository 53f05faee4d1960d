"""H3 aggregation as pure functions of normalised rows (no state, no Dash)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from geo.hexes import cell_area_km2, cell_centers, parents
from layers.base import Metric


def filter_rows(frame: pd.DataFrame, where: Iterable[tuple[str, tuple[object, ...]]]) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for column, values in where:
        mask &= frame[column].isin(values).fillna(False).to_numpy(dtype=bool)
    return frame.loc[mask]


def aggregate(frame: pd.DataFrame, metric: Metric, res: int) -> pd.Series:
    """One metric per H3 cell at ``res``: a pure function of the normalised rows.

    Rows carry their cell at the base resolution and are rolled up the H3
    hierarchy (vectorised parents). H3 containment is approximate — a point near
    an edge can lie just outside its base cell's parent — but roll-up makes every
    resolution add up exactly (city = Σ districts = Σ cells) and means a point is
    indexed once, which is what incremental live aggregation rests on.

    >>> aggregate(frame, Metric("n", "", "", role="requests"), 8)   # doctest: +SKIP
    cell
    613229523017236479    4.0
    """
    if not frame.empty and metric.where:
        frame = filter_rows(frame, metric.where)
    if frame.empty:
        return pd.Series(dtype=float, index=pd.Index([], dtype=np.int64, name="cell"))
    cell = pd.Series(parents(frame["cell"].to_numpy(), res), index=frame.index, name="cell")
    if metric.agg == "count":
        values = cell.groupby(cell).size().astype(float)
    else:
        column = frame[metric.column]  # type: ignore[index]
        grouped = column.groupby(cell)
        if metric.agg == "sum":
            values = grouped.sum(min_count=1)
        elif metric.agg == "mean":
            values = grouped.mean()
        elif metric.agg == "median":
            values = grouped.median()
        elif metric.agg == "nunique":
            values = grouped.nunique().astype(float)
        elif metric.agg == "sum_per_km2":
            sums = grouped.sum(min_count=1)
            values = sums / cell_area_km2(sums.index.to_numpy())
        else:  # pragma: no cover - Literal guards this
            raise ValueError(f"unknown aggregation {metric.agg!r}")
    values = values.dropna().astype(float)
    values.index = values.index.astype(np.int64)
    values.index.name = "cell"
    return values


def cells_in_view(values: pd.Series, bbox: tuple[float, float, float, float] | None) -> pd.Series:
    """Keep cells whose centre lies inside the (padded) viewport."""
    if bbox is None or values.empty:
        return values
    west, south, east, north = bbox
    pad_x, pad_y = (east - west) * 0.1, (north - south) * 0.1
    lat, lon = cell_centers(values.index.to_numpy())
    inside = ((lat >= south - pad_y) & (lat <= north + pad_y)
              & (lon >= west - pad_x) & (lon <= east + pad_x))
    return values.loc[inside]
