"""Admin boundaries: each level's units in WGS84, the base cells each unit covers, and
their simplified shapes for drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from config.city import Boundary
from config.columns import check_boundary_file
from geo.areal import OverlapCache, apportion


@dataclass(frozen=True)
class BoundaryLevel:
    """One level of admin units, with each base cell assigned to the unit covering most of it."""

    spec: Boundary
    units: gpd.GeoDataFrame  # name, parent, geometry
    cells: pd.DataFrame  # cell (base res) → name

    def names(self, parent: str | None = None) -> list[str]:
        units = self.units
        if parent is not None and "parent" in units:
            units = units.loc[units["parent"] == parent]
        return sorted(units["name"].astype(str).unique())

    def bounds(self, name: str) -> tuple[float, float, float, float] | None:
        match = self.units.loc[self.units["name"] == name]
        if match.empty:
            return None
        west, south, east, north = match.total_bounds
        return float(west), float(south), float(east), float(north)


def cells_at(level: BoundaryLevel, res: int,
             cache: OverlapCache | Path | None = None) -> np.ndarray:
    """Every cell at ``res`` overlapping one of the level's units, sorted and distinct.

    Found by overlap at ``res`` itself (through ``cache``), not as parents of the base
    cells: an H3 parent does not cover its children, so parents miss hexagons at the
    edge that points inside the units fall in.
    """
    if level.units.empty:
        return np.empty(0, dtype=np.int64)
    pieces = apportion(_as_areas(level.units, level.spec.level), res, cache)
    return np.unique(pieces["cell"].to_numpy(dtype=np.int64))


def _as_areas(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """Units as areas for :func:`~geo.areal.apportion` (value 1, source the level)."""
    return units.assign(value=1.0, source=level)[["id", "name", "value", "source", "geometry"]]


def boundary_to_wgs84(units: gpd.GeoDataFrame, crs: str | None) -> gpd.GeoDataFrame:
    """Boundary polygons in WGS84: from the file's CRS, the configured one, or GCJ-02/BD-09."""
    import shapely

    from geo.crs import CHINA_DATUMS, to_wgs84

    if crs is not None and crs.upper() in CHINA_DATUMS:
        moved = shapely.transform(units.geometry.values, lambda xy: np.column_stack(
            to_wgs84(xy[:, 0], xy[:, 1], crs)))
        return units.set_geometry(gpd.GeoSeries(moved, crs="EPSG:4326"), crs="EPSG:4326")
    if units.crs is None:
        units = units.set_crs(crs or "EPSG:4326")
    return units.to_crs("EPSG:4326")


def load_boundary(spec: Boundary, base_res: int,
                  cache: OverlapCache | Path | None = None) -> BoundaryLevel:
    """One admin level read from its file, in WGS84, with every base cell assigned to a unit.

    A missing file or field is a :class:`~config.kit.ConfigError` naming the key to fix.
    """
    check_boundary_file(f"[[boundaries]] {spec.level!r}", spec)
    units = gpd.read_file(spec.path) if spec.path.suffix.lower() not in (".parquet",) \
        else gpd.read_parquet(spec.path)
    units = boundary_to_wgs84(units, spec.crs)
    frame = gpd.GeoDataFrame({
        "name": units[spec.name_field].astype(str).to_numpy(),
        "id": (units[spec.id_field] if spec.id_field else units[spec.name_field])
        .astype(str).to_numpy(),
    }, geometry=units.geometry.to_numpy(), crs="EPSG:4326")
    if spec.parent_field:
        frame["parent"] = units[spec.parent_field].astype(str).to_numpy()
    frame = frame.dissolve(by="name", as_index=False, aggfunc="first") \
        if frame["name"].duplicated().any() else frame
    pieces = apportion(_as_areas(frame, spec.level), base_res, cache)
    best = pieces.sort_values("area_m2", ascending=False).drop_duplicates("cell")
    return BoundaryLevel(spec=spec, units=frame, cells=best[["cell", "name"]]
                         .reset_index(drop=True))


#: Tolerance (degrees, ~15 m) for drawing boundaries: below a pixel at city and
#: district zooms, and it cuts the base map's bytes several-fold.
DISPLAY_TOLERANCE = 1.5e-4


def display_geometries(geoms: Any) -> Any:
    """Boundaries simplified for drawing (never for computing areas or membership)."""
    import shapely

    simplified = shapely.simplify(np.asarray(geoms), DISPLAY_TOLERANCE, preserve_topology=True)
    return shapely.transform(simplified, lambda xy: np.round(xy, 5))


__all__ = ["BoundaryLevel", "DISPLAY_TOLERANCE", "boundary_to_wgs84", "display_geometries",
           "load_boundary"]
