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

from config.city import CityConfig
from geo.exact import cells_of_rows
from geo.hexes import cell_area_km2, cell_center, cell_resolution, to_hex
from layers import LAYERS, population_metric
from layers.aggregate import aggregate_place
from layers.base import Layer, PlaceRows, Selector
from store.boundaries import BoundaryLevel
from store.city import CityData


def cell_selector(cell: int) -> Selector:
    res = cell_resolution(cell)

    def select(frame: pd.DataFrame) -> np.ndarray:
        return cells_of_rows(frame, res) == cell

    return select


def cells_selector(cells: np.ndarray) -> Selector:
    """Rows whose exact cell (:func:`~geo.exact.cells_of_rows`) at the resolution of
    ``cells`` (all at one) is one of them: a point by ``latLngToCell`` there, whatever
    resolution its stored ``cell`` is at."""
    wanted = np.asarray(cells, dtype=np.int64)
    res = cell_resolution(int(wanted[0])) if len(wanted) else None

    def select(frame: pd.DataFrame) -> np.ndarray:
        if res is None or frame.empty:
            return np.zeros(len(frame), dtype=bool)
        return np.isin(cells_of_rows(frame, res), wanted)

    return select


def owner_selector(boundary: BoundaryLevel, name: str) -> Selector:
    """Area rows (pieces of land units, tracts, …) of the units whose largest part lies
    in the admin unit ``name``: every piece of such a unit, none of any other.

    A unit's area is split by the admin unit each of its base-cell pieces lies in (a
    base cell belongs to the admin unit covering most of it); the part outside every
    admin unit competes too, so a unit mostly outside the city's districts counts in
    none. Each unit so counts in exactly one place of a level, and a neighbour that
    only touches a district's border cells does not count in it. Ties go to the
    alphabetically first place.
    """
    admin_of = pd.Series(boundary.cells["name"].to_numpy(dtype=str),
                         index=boundary.cells["cell"].to_numpy())

    def select(frame: pd.DataFrame) -> np.ndarray:
        if frame.empty:
            return np.zeros(0, dtype=bool)
        keys = ["source", "id"] if "source" in frame else ["id"]
        pieces = frame[keys].copy()
        pieces["admin"] = admin_of.reindex(frame["cell"].to_numpy()).fillna("").to_numpy()
        pieces["area"] = frame["area_km2"].to_numpy(dtype=float)
        by_place = pieces.groupby([*keys, "admin"], as_index=False)["area"].sum()
        by_place = by_place.sort_values([*keys, "area", "admin"],
                                        ascending=[True] * len(keys) + [False, True])
        largest = by_place.drop_duplicates(keys)
        owned = largest.loc[largest["admin"] == name, keys]
        return (pd.MultiIndex.from_frame(frame[keys].astype(str))
                .isin(pd.MultiIndex.from_frame(owned.astype(str))))

    return select


class RowsAt:
    """The city's rows as one resolution sees them: area roles apportioned at ``res``.

    A coarse cell's residents are the tracts' shares of that hexagon, not the sum of
    its res-10 descendants (an H3 parent does not cover its children).
    """

    def __init__(self, data: CityData, res: int) -> None:
        self.data = data
        self.res = res
        self.config: CityConfig = data.config

    def frame(self, layer: str, role: str, source: str | None = None) -> pd.DataFrame:
        return self.data.frame(layer, role, source, self.res)


def _metric_values(data: PlaceRows, layer: Layer, select: Selector, area_km2: float,
                   owners: Selector | None = None) -> list[dict[str, Any]]:
    out = []
    for metric in layer.metrics(data.config.sources):
        if not metric.aggregation.in_profile:
            continue
        rows = data.frame(layer.id, metric.role, metric.source)
        # Whole units of an area role are counted where they lie, not where they touch.
        whole = (owners is not None and metric.aggregation.whole_units
                 and layer.roles[metric.role].geometry == "area")
        chosen = owners if whole and owners is not None else select
        rows = rows.loc[chosen(rows)] if len(rows) else rows
        value = aggregate_place(rows, metric, area_km2)
        out.append({
            "name": metric.name, "title_zh": metric.title_zh, "title_en": metric.title_en,
            "unit_zh": metric.unit_zh, "unit_en": metric.unit_en, "decimals": metric.decimals,
            "value": None if np.isnan(value) else round(value, 6),
        })
    return out


def place_profile(data: CityData, select: Selector, lat: float, lon: float,
                  area_km2: float = float("nan"), res: int | None = None,
                  owners: Selector | None = None) -> dict[str, Any]:
    """Every layer's metrics, breakdowns and extras over the rows ``select`` keeps.

    With ``res`` (a cell's profile) area roles are read apportioned at that resolution.
    ``owners`` (for a place made of whole areas, see :func:`owner_selector`) selects
    the area rows that metrics counting whole units (``nunique``) count instead.
    """
    rows: PlaceRows = data if res is None else RowsAt(data, res)
    layers = {}
    for layer in LAYERS.values():
        section: dict[str, Any] = {
            "title_zh": layer.title_zh, "title_en": layer.title_en, "symbol": layer.symbol,
            "stale": data.layer_stale(layer.id),
            "metrics": _metric_values(rows, layer, select, area_km2, owners),
            "breakdowns": layer.breakdowns(rows, select),
            **layer.profile_extras(rows, select, lat, lon),
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
    area = float(cell_area_km2([cell])[0])
    profile = place_profile(data, cell_selector(cell), lat, lon, area, res)
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
    """The profile of an admin unit picked in the drill-down; None for an unknown unit.

    Rows are the admin unit's base cells (each base cell belongs to the unit covering
    most of it): points in them, and area pieces by their overlap with each cell, so
    sums (area, residents) are area-weighted. Counts of whole areas (land units) count
    each unit in the place holding most of it (:func:`owner_selector`).
    """
    boundary = data.boundary(level)
    if boundary is None:
        return None
    cells = boundary.cells.loc[boundary.cells["name"] == name, "cell"].to_numpy()
    bounds = boundary.bounds(name)
    if bounds is None:
        return None
    west, south, east, north = bounds
    area = float(cell_area_km2(cells).sum()) if len(cells) else 0.0
    profile = place_profile(data, cells_selector(cells), (south + north) / 2, (west + east) / 2,
                            area, owners=owner_selector(boundary, name))
    residents = _residents(profile)
    return {
        "level": level, "name": name, "bounds": list(bounds), "area_km2": round(area, 3),
        "population_density": round(residents / area, 1) if residents and area else None,
        **profile,
    }
