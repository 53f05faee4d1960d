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
import os
import threading
import time
import uuid
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
ALGORITHM_VERSION = "overlap-v4"  # v4: each touching cell once; v3: cached per geometry set;
#: v2: exact cell outlines


def equal_area_crs(geoms: gpd.GeoSeries) -> CRS:
    """A Lambert azimuthal equal-area projection centred on the data."""
    west, south, east, north = geoms.total_bounds
    lat0, lon0 = (south + north) / 2, (west + east) / 2
    return CRS.from_proj4(f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +datum=WGS84 +units=m")


def _cells_of(geom: shapely.Geometry, res: int, contain: str) -> list[int]:
    shape = h3.geo_to_h3shape(geom)
    found = h3.h3shape_to_cells_experimental(shape, res, contain=contain)
    # Each once: the experimental fill can list a cell several times (seen at res 7 on
    # NYC tracts), which would weight that cell's overlap several times in the shares.
    return [h3.str_to_int(c) for c in dict.fromkeys(found)]


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


class OverlapCache:
    """Overlaps already computed: on disk per set of geometries, in memory per geometry.

    One per city (the store holds it): when a boundary level and a land source share
    shapes — one file used twice, or a source that drops a few of the boundary's
    polygons — each shape is intersected once. ``directory`` None keeps nothing on disk.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        #: Per resolution: the (geometry_key, cell, area_m2) pieces seen, and their keys.
        self._pieces: dict[int, pd.DataFrame] = {}
        self._keys: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    def file(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"overlaps-{key}.parquet"

    def remember(self, res: int, by_geometry: pd.DataFrame) -> None:
        with self._lock:
            keys = self._keys.setdefault(res, set())
            new = ~by_geometry["geometry_key"].isin(keys)
            if not new.any():
                return
            added = by_geometry.loc[new]
            known = self._pieces.get(res)
            self._pieces[res] = added if known is None else pd.concat([known, added],
                                                                      ignore_index=True)
            keys.update(added["geometry_key"].unique().tolist())

    def known(self, res: int, geometry_keys: np.ndarray) -> pd.DataFrame | None:
        """The stored pieces of every key, or None unless all are known."""
        with self._lock:
            if not set(geometry_keys.tolist()) <= self._keys.get(res, set()):
                return None
            pieces = self._pieces[res]
        return pieces.loc[pieces["geometry_key"].isin(geometry_keys)].reset_index(drop=True)


def apportion(areas: gpd.GeoDataFrame, res: int,
              cache: OverlapCache | Path | None = None) -> pd.DataFrame:
    """Spread each area's ``value`` over its cells by overlap.

    Returns one row per (area, cell): ``cell``, ``id``, ``name``, ``source``,
    ``area_m2`` (overlap), ``area_km2``, ``value`` (the area's value × overlap share)
    and ``unit_area_km2`` (the whole area's). The overlaps — the costly part — come
    from :func:`cached_overlaps`: computed once per geometry (a folder is a cache
    without the in-memory part).
    """
    pieces = cached_overlaps(areas, res, cache)
    total = pieces.groupby("row")["area_m2"].transform("sum")
    share = (pieces["area_m2"] / total).to_numpy()
    source_rows = areas.iloc[pieces["row"].to_numpy()]
    return pd.DataFrame({
        "cell": pieces["cell"].to_numpy(),
        "id": source_rows["id"].astype(str).to_numpy(),
        "name": source_rows["name"].astype(str).to_numpy(),
        "source": source_rows["source"].astype(str).to_numpy(),
        "area_m2": pieces["area_m2"].to_numpy(),
        "area_km2": pieces["area_m2"].to_numpy() / 1e6,
        "value": source_rows["value"].to_numpy(dtype=float) * share,
        "unit_area_km2": total.to_numpy() / 1e6,
    })


def cached_overlaps(areas: gpd.GeoDataFrame, res: int,
                    cache: OverlapCache | Path | None = None) -> pd.DataFrame:
    """:func:`overlaps` of ``areas``, each geometry intersected at most once per cache.

    Geometries are keyed by their WKB in WGS84: ids, names and values do not change
    overlaps, so a boundary level and a land source read from one file share them, and
    so does a file whose values change while its shapes stay. On disk the pieces of a
    whole set are one file named by its sorted keys (and the algorithm's version), read
    back on the next start; in memory they are kept per geometry, so a set that is a
    subset of one seen before (a source that rejected a polygon) is not recomputed.
    """
    if not isinstance(cache, OverlapCache):
        cache = OverlapCache(cache)
    wkb = shapely.to_wkb(areas.geometry.to_crs("EPSG:4326").values)
    digests = np.array([hashlib.blake2b(w or b"", digest_size=16).hexdigest() for w in wkb])
    _, first = np.unique(digests, return_index=True)
    distinct = np.sort(first)  # each distinct shape once, in the frame's order
    cached = cache.file(_cache_key(digests, res))
    by_geometry = cache.known(res, digests[distinct])
    if by_geometry is None and cached is not None and cached.exists():
        by_geometry = pd.read_parquet(cached)
        log.debug("overlaps of %d areas at res %d from %s", len(areas), res, cached.name)
    elif by_geometry is None:
        started = time.perf_counter()
        pieces = overlaps(areas.iloc[distinct], res)
        by_geometry = pd.DataFrame({"geometry_key": digests[distinct][pieces["row"].to_numpy()],
                                    "cell": pieces["cell"].to_numpy(),
                                    "area_m2": pieces["area_m2"].to_numpy()})
        log.info("intersected %d areas with res-%d cells in %.1f s", len(distinct), res,
                 time.perf_counter() - started)
    if cached is not None and not cached.exists():
        _write_atomically(by_geometry, cached)
    cache.remember(res, by_geometry)
    # Back to this frame's rows: every row whose geometry has that key gets its pieces.
    rows = pd.DataFrame({"row": np.arange(len(digests), dtype=np.int64), "geometry_key": digests})
    merged = rows.merge(by_geometry, on="geometry_key", how="inner", sort=False)
    return merged.sort_values("row", kind="stable")[["row", "cell", "area_m2"]] \
        .reset_index(drop=True)


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` so that a reader (another worker) sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    frame.to_parquet(tmp)
    tmp.replace(path)


def _cache_key(digests: np.ndarray, res: int) -> str:
    digest = hashlib.sha256(f"{ALGORITHM_VERSION}|{res}".encode())
    for item in sorted(set(digests.tolist())):
        digest.update(item.encode())
    return digest.hexdigest()[:24]
