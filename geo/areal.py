"""Areas onto H3 cells by area of overlap.

A census tract's population is spread over the cells it touches in proportion
to the part of the tract each cell covers — not dropped on the cell of its
centroid, which would pile a whole tract into one hexagon. The result is one row
per (area, cell) with the overlap area, at the city's base resolution; coarser
resolutions are exact sums of it.

Cells wholly inside an area need no geometry work (their overlap is the whole
cell); only the cells on an area's edge are intersected, vectorised in GEOS, in
a local equal-area projection so that areas are true square metres.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import geopandas as gpd
import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

log = logging.getLogger(__name__)

#: Bump when the algorithm changes, so cached results are recomputed.
ALGORITHM_VERSION = "overlap-v2"  # v2: exact cell outlines (v1 used 1e-5° rounded ones)


def equal_area_crs(geoms: gpd.GeoSeries) -> CRS:
    """A Lambert azimuthal equal-area projection centred on the data."""
    west, south, east, north = geoms.total_bounds
    lat0, lon0 = (south + north) / 2, (west + east) / 2
    return CRS.from_proj4(f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +datum=WGS84 +units=m")


def _cells_of(geom: shapely.Geometry, res: int, contain: str) -> list[int]:
    shape = h3.geo_to_h3shape(geom)
    return [h3.str_to_int(c) for c in h3.h3shape_to_cells_experimental(shape, res, contain=contain)]


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Exact cell outlines as (lon, lat) polygons.

    Not :func:`geo.hexes.cell_ring`: its ~1 m rounding is fine for drawing but moves
    up to ~1% of a small cell's share of an area to its neighbours.
    """
    return shapely.polygons([[(lng, lat) for lat, lng in h3i.cell_to_boundary(int(c))]
                             for c in cells])


def overlaps(areas: gpd.GeoDataFrame, res: int) -> pd.DataFrame:
    """Rows (``row``, ``cell``, ``area_m2``): how much of each area lies in each cell.

    ``row`` is the positional index into ``areas``. Every area's overlaps add up
    to its own area (up to floating point), so apportioning by them conserves totals.
    """
    geoms = areas.geometry.to_crs("EPSG:4326")
    crs = equal_area_crs(geoms)
    rows: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    full: list[np.ndarray] = []
    for i, geom in enumerate(geoms.values):
        if geom is None or geom.is_empty:
            continue
        touching = _cells_of(geom, res, "overlap")
        if not touching:  # smaller than a cell and between centres: use its point's cell
            point = geom.representative_point()
            touching = [h3.str_to_int(h3.latlng_to_cell(point.y, point.x, res))]
        inside = set(_cells_of(geom, res, "full"))
        rows.append(np.full(len(touching), i, dtype=np.int64))
        cells.append(np.array(touching, dtype=np.int64))
        full.append(np.array([c in inside for c in touching], dtype=bool))
    if not rows:
        return pd.DataFrame({"row": [], "cell": [], "area_m2": []})
    row = np.concatenate(rows)
    cell = np.concatenate(cells)
    is_full = np.concatenate(full)

    hexes = gpd.GeoSeries(cell_polygons(cell), crs="EPSG:4326").to_crs(crs).values
    projected = geoms.to_crs(crs).values
    area = shapely.area(hexes)
    edge = ~is_full
    area[edge] = shapely.area(shapely.intersection(projected[row[edge]], hexes[edge]))
    result = pd.DataFrame({"row": row, "cell": cell, "area_m2": area})
    return result.loc[result["area_m2"] > 0].reset_index(drop=True)


def apportion(areas: gpd.GeoDataFrame, res: int, cache_dir: Path | None = None) -> pd.DataFrame:
    """Spread each area's ``value`` over its cells by overlap.

    Returns one row per (area, cell): ``cell``, ``id``, ``name``, ``source``,
    ``area_m2`` (overlap), ``area_km2``, ``value`` (the area's value × overlap share)
    and ``unit_area_km2`` (the whole area's). Results are cached on disk by content.
    """
    key = _cache_key(areas, res)
    cached = cache_dir / f"apportion-{key}.parquet" if cache_dir else None
    if cached is not None and cached.exists():
        return pd.read_parquet(cached)
    pieces = overlaps(areas, res)
    total = pieces.groupby("row")["area_m2"].transform("sum")
    share = (pieces["area_m2"] / total).to_numpy()
    source_rows = areas.iloc[pieces["row"].to_numpy()]
    result = pd.DataFrame({
        "cell": pieces["cell"].to_numpy(),
        "id": source_rows["id"].astype(str).to_numpy(),
        "name": source_rows["name"].astype(str).to_numpy(),
        "source": source_rows["source"].astype(str).to_numpy(),
        "area_m2": pieces["area_m2"].to_numpy(),
        "area_km2": pieces["area_m2"].to_numpy() / 1e6,
        "value": source_rows["value"].to_numpy(dtype=float) * share,
        "unit_area_km2": total.to_numpy() / 1e6,
    })
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        result.to_parquet(tmp)
        tmp.replace(cached)
    return result


def _cache_key(areas: gpd.GeoDataFrame, res: int) -> str:
    digest = hashlib.sha256(f"{ALGORITHM_VERSION}|{res}".encode())
    digest.update(b"".join(shapely.to_wkb(areas.geometry.values)))
    for column in ("id", "name", "value", "source"):
        digest.update(pd.util.hash_pandas_object(areas[column], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:24]
