"""H3 aggregation as pure functions of normalised rows (no state, no Dash).

What each aggregation computes is its class in :mod:`layers.aggregations`; this
module groups rows by cell (or by place) and hands them to it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from geo.exact import cells_of_rows
from geo.hexes import cell_centers
from layers.aggregations import cell_areas, row_weights
from layers.base import Metric


def filter_rows(frame: pd.DataFrame, where: Iterable[tuple[str, tuple[object, ...]]]) -> pd.DataFrame:
    """The rows whose ``where`` columns each hold one of the listed values."""
    mask = np.ones(len(frame), dtype=bool)
    for column, values in where:
        mask &= frame[column].isin(values).fillna(False).to_numpy(dtype=bool)
    return frame.loc[mask]


def aggregate(frame: pd.DataFrame, metric: Metric, res: int) -> pd.Series:
    """One metric per H3 cell at ``res``: a pure function of the normalised rows.

    Each row counts in the cell ``latLngToCell`` gives its point at ``res``
    (:func:`geo.exact.cells_of_rows`), not in its base cell's parent: an H3 parent
    does not cover all of its children. Every resolution still adds up to the
    same city total, each row counted once per resolution.

    >>> aggregate(frame, Metric("n", "", "", role="requests"), 8)   # doctest: +SKIP
    cell
    613229523017236479    4.0
    """
    if not frame.empty and metric.where:
        frame = filter_rows(frame, metric.where)
    if frame.empty:
        return pd.Series(dtype=float, index=pd.Index([], dtype=np.int64, name="cell"))
    cell = pd.Series(cells_of_rows(frame, res), index=frame.index, name="cell")
    aggregation = metric.aggregation
    values = aggregation.reduce(frame[metric.column] if aggregation.reads_column
                                else row_weights(frame), cell)
    values = values.dropna().astype(float)  # no value: the cell is empty (Aggregation.empty)
    values.index = values.index.astype(np.int64)
    values.index.name = "cell"
    return aggregation.finish(values, cell_areas)


def aggregate_place(frame: pd.DataFrame, metric: Metric, area_km2: float) -> float:
    """One metric over all of a place's rows taken together (the profile's number).

    The same reduction as a map cell, with the rows in one group: a single cell's
    rows give exactly its value on the map. No rows (or none with a value) give the
    aggregation's ``empty`` value; ``area_km2`` is the place's area (for per-km²).
    """
    aggregation = metric.aggregation
    if not frame.empty and metric.where:
        frame = filter_rows(frame, metric.where)
    if frame.empty:
        return aggregation.empty
    place = np.zeros(len(frame), dtype=np.int64)
    column = frame[metric.column] if aggregation.reads_column else row_weights(frame)
    values = aggregation.reduce(column, place).dropna().astype(float)
    values = aggregation.finish(values, lambda index: np.full(len(index), area_km2))
    return float(values.iloc[0]) if len(values) and not np.isnan(values.iloc[0]) \
        else aggregation.empty


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
