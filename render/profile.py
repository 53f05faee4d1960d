"""Everything known about a place, across all five layers, as plain JSON-ready data.

A *place* is either one H3 cell (any resolution) or an admin unit picked in the
drill-down. Both are answered by :func:`place_profile` with a different row
selector, so the side panel, the area panel and ``GET /api/cells/<cell>`` all
show the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from geo.hexes import cell_area_km2, cell_center, cell_resolution, haversine_km, parents, to_hex
from layers import LAYERS
from layers.base import Layer, Metric
from store.city import CityData, filter_rows

Selector = Callable[[pd.DataFrame], np.ndarray]
TOP_N = 8


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


def _breakdowns(data: CityData, layer: Layer, select: Selector) -> list[dict[str, Any]]:
    out = []
    for role in layer.roles.values():
        if role.geometry != "point":
            continue
        rows = data.frame(layer.id, role.name)
        rows = rows.loc[select(rows)] if len(rows) else rows
        for attr in role.fields:
            if not attr.breakdown or attr.name not in rows or rows[attr.name].dropna().empty:
                continue
            counts = rows[attr.name].fillna("—").astype(str).value_counts()
            top = counts.head(TOP_N)
            items = [{"value": str(k), "count": int(v)} for k, v in top.items()]
            if len(counts) > TOP_N:
                items.append({"value": "…", "count": int(counts.iloc[TOP_N:].sum())})
            out.append({"role": role.name, "role_zh": role.title_zh, "role_en": role.title_en,
                        "field": attr.name, "field_zh": attr.title_zh, "field_en": attr.title_en,
                        "items": items})
        if layer.id == "government" and role.name == "requests" and "state" in rows:
            counts = rows["state"].value_counts()
            out.append({"role": role.name, "role_zh": role.title_zh, "role_en": role.title_en,
                        "field": "state", "field_zh": "办理状态", "field_en": "Open / closed",
                        "items": [{"value": str(k), "count": int(v)} for k, v in counts.items()]})
    return out


def _land_units(data: CityData, select: Selector) -> list[dict[str, Any]]:
    out = []
    for source in data.config.sources_for("land"):
        rows = data.frame("land", "units", source.name)
        rows = rows.loc[select(rows)] if len(rows) else rows
        if rows.empty:
            continue
        by_unit = rows.groupby(["id", "name"], as_index=False).agg(
            area_km2=("area_km2", "sum"), unit_area_km2=("unit_area_km2", "first"),
            value=("value", "sum"))
        total = by_unit["area_km2"].sum()
        by_unit = by_unit.sort_values("area_km2", ascending=False).head(TOP_N)
        out.append({
            "source": source.name, "title_zh": source.title_zh, "title_en": source.title_en,
            "units": [{
                "id": str(r.id), "name": str(r.name), "area_km2": round(float(r.area_km2), 4),
                "share": round(float(r.area_km2 / total), 4) if total else None,
                "unit_area_km2": round(float(r.unit_area_km2), 4),
                "density": (round(float(r.value / r.area_km2), 1)
                            if "value" in source.fields and r.area_km2 else None),
            } for r in by_unit.itertuples()],
        })
    return out


def nearest_service_points(data: CityData, lat: float, lon: float, n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` government service points nearest to a place, with distances in km."""
    points = data.frame("government", "service_points")
    if points.empty:
        return []
    distance = haversine_km(lat, lon, points["lat"].to_numpy(), points["lon"].to_numpy())
    order = np.argsort(distance)[:n]
    return [{
        "id": str(points["id"].iloc[i]),
        "name": None if pd.isna(points["name"].iloc[i]) else str(points["name"].iloc[i]),
        "category": None if pd.isna(points["category"].iloc[i]) else str(points["category"].iloc[i]),
        "lat": round(float(points["lat"].iloc[i]), 6), "lon": round(float(points["lon"].iloc[i]), 6),
        "distance_km": round(float(distance[i]), 3),
    } for i in order]


def place_profile(data: CityData, select: Selector, lat: float, lon: float) -> dict[str, Any]:
    layers = {}
    for layer in LAYERS.values():
        section: dict[str, Any] = {
            "title_zh": layer.title_zh, "title_en": layer.title_en, "symbol": layer.symbol,
            "stale": data.layer_stale(layer.id),
            "metrics": _metric_values(data, layer, select),
            "breakdowns": _breakdowns(data, layer, select),
        }
        if layer.id == "land":
            section["units"] = _land_units(data, select)
        if layer.id == "government":
            section["nearest_service_points"] = nearest_service_points(data, lat, lon)
        layers[layer.id] = section
    return {"layers": layers}


def cell_profile(data: CityData, cell: int) -> dict[str, Any]:
    """The cross-layer profile of one H3 cell (the "one map" view of a place)."""
    lat, lon = cell_center(cell)
    res = cell_resolution(cell)
    profile = place_profile(data, cell_selector(cell), lat, lon)
    area = float(cell_area_km2([cell])[0])
    residents = next((m["value"] for m in profile["layers"]["people"]["metrics"]
                      if m["name"] == "residents"), None)
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
    residents = next((m["value"] for m in profile["layers"]["people"]["metrics"]
                      if m["name"] == "residents"), None)
    return {
        "level": level, "name": name, "bounds": list(bounds), "area_km2": round(area, 3),
        "population_density": round(residents / area, 1) if residents and area else None,
        **profile,
    }
