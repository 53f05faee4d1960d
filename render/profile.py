"""Everything known about a place, across every layer, as plain JSON-ready data.

A *place* is either one H3 cell (any resolution) or an admin unit picked in the
drill-down. Both are answered by :func:`place_profile` with a different row
selector, so the side panel, the area panel and ``GET /api/cells/<cell>`` all
show the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo.hexes import cell_area_km2, cell_center, cell_resolution, parents, to_hex
from layers import LAYERS, population_metric
from layers.base import Layer, Metric, Selector
from store.city import CityData, filter_rows


def cell_selector(cell: int) -> Selector:
    res = cell_resolution(cell)

    def select(frame: pd.DataFrame) -> np.ndarray:
        return parents(frame["cell"].to_numpy(), res) == cell

    return select


def cells_selector(base_cells: np.ndarray) -> Selector:
    cells = np.asarray(base_cells, dtype=np.int64)

    def select(frame: pd.DataFrame) -> np.ndarray:
        return np.isin(frame["cell"].to_numpy(), cells)

    return select


def _metric_values(data: CityData, layer: Layer, select: Selector) -> list[dict[str, Any]]:
    out = []
    for metric in layer.metrics(data.config.sources):
        if metric.agg == "sum_per_km2":
            continue  # a per-cell density; the place-level density is given separately
        rows = data.frame(layer.id, metric.role, metric.source)
        rows = rows.loc[select(rows)] if len(rows) else rows
        if len(rows):
            values = _aggregate_all(rows, metric)
        else:
            values = 0.0 if metric.agg in ("count", "sum", "nunique") else None
        out.append({
            "name": metric.name, "title_zh": metric.title_zh, "title_en": metric.title_en,
            "unit_zh": metric.unit_zh, "unit_en": metric.unit_en, "decimals": metric.decimals,
            "value": None if values is None else round(float(values), 6),
        })
    return out


def _aggregate_all(rows: pd.DataFrame, metric: Metric) -> float | None:
    """One metric over all selected rows taken together."""
    if metric.where:
        rows = filter_rows(rows, metric.where)
    if metric.agg == "count":
        return float(len(rows))
    column = rows[metric.column]
    if column.dropna().empty:
        return 0.0 if metric.agg in ("sum", "nunique") else None
    if metric.agg == "sum":
        return float(column.sum())
    if metric.agg == "mean":
        return float(column.mean())
    if metric.agg == "median":
        return float(column.median())
    if metric.agg == "nunique":
        return float(column.nunique())
    return None


def place_profile(data: CityData, select: Selector, lat: float, lon: float) -> dict[str, Any]:
    layers = {}
    for layer in LAYERS.values():
        section: dict[str, Any] = {
            "title_zh": layer.title_zh, "title_en": layer.title_en, "symbol": layer.symbol,
            "stale": data.layer_stale(layer.id),
            "metrics": _metric_values(data, layer, select),
            "breakdowns": layer.breakdowns(data, select),
            **layer.profile_extras(data, select, lat, lon),
        }
        layers[layer.id] = section
    return {"layers": layers}


def _residents(profile: dict[str, Any]) -> float | None:
    """The place's resident count, from the layer that declares a population metric."""
    found = population_metric()
    if found is None:
        return None
    layer, metric = found
    return next((m["value"] for m in profile["layers"][layer.id]["metrics"]
                 if m["name"] == metric), None)


def cell_profile(data: CityData, cell: int) -> dict[str, Any]:
    """The cross-layer profile of one H3 cell (the "one map" view of a place)."""
    lat, lon = cell_center(cell)
    res = cell_resolution(cell)
    profile = place_profile(data, cell_selector(cell), lat, lon)
    area = float(cell_area_km2([cell])[0])
    residents = _residents(profile)
    return {
        "cell": to_hex(cell), "res": res,
        "center": {"lat": round(lat, 6), "lon": round(lon, 6)},
        "area_km2": round(area, 4),
        "population_density": round(residents / area, 1) if residents else None,
        "data_version": data.version,
        **profile,
    }


def area_profile(data: CityData, level: str, name: str) -> dict[str, Any] | None:
    """The profile of an admin unit picked in the drill-down; None for an unknown unit."""
    boundary = data.boundary(level)
    if boundary is None:
        return None
    cells = boundary.cells.loc[boundary.cells["name"] == name, "cell"].to_numpy()
    bounds = boundary.bounds(name)
    if bounds is None:
        return None
    west, south, east, north = bounds
    profile = place_profile(data, cells_selector(cells), (south + north) / 2, (west + east) / 2)
    area = float(cell_area_km2(cells).sum()) if len(cells) else 0.0
    residents = _residents(profile)
    return {
        "level": level, "name": name, "bounds": list(bounds), "area_km2": round(area, 3),
        "population_density": round(residents / area, 1) if residents and area else None,
        **profile,
    }
