"""Exact H3 cells at every resolution a city serves, at about the cost of one.

An H3 parent does not cover all of its children: rolling a point's base cell up
with ``cellToParent`` puts ~6–9 % of points in another hexagon than
``latLngToCell`` at the coarser resolution does. :func:`index_exact` gives every
point its ``latLngToCell`` cell at each resolution asked for.

How, without calling ``latLngToCell`` once per point and resolution: the finest
resolution is indexed point by point (geo/_h3batch.c over H3's own C function).
At each coarser resolution a point's candidate is its base cell's parent. Within
one icosahedron face an H3 cell is a convex hexagon whose edges are great-circle
arcs (straight lines in the face's gnomonic plane), so "strictly inside" is six
sign tests. They are done on a first-order expansion of ``n · p`` about the cell's
centre, in degrees (no trigonometry per point), with a margin that bounds the
expansion's error over the cell's reach plus ~6 mm for rounding. A point strictly
inside its candidate, or one of the candidate's six neighbours, gets that cell;
the rest (about 1 in 1,000 points, those within metres of an edge, and every point
near a pentagon, a face edge or the antimeridian) ask ``latLngToCell``. The edge
tests come from H3's own outlines (``cellToBoundary``), kept in an
:class:`EdgeTable` that grows with the cells a city uses.

Without the C loop every resolution is indexed through h3's Python API.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.hexes import _BATCH, Cells, index_points, parents, resolution_of

#: Floats per table row: six edges (a, b, c), centre lat and lon, reach, margin.
ROW = 22
#: Rounding allowance (radians of arc, ~6 mm): far above the ~1e-15 error of the
#: vectors involved, so a point this far inside an edge is inside for H3 too.
ROUNDING = 1e-9
_DEG = math.pi / 180.0


def index_exact(lat: NDArray[np.float64], lon: NDArray[np.float64],
                resolutions: Iterable[int]) -> dict[int, Cells]:
    """Each point's cell at each resolution, equal to ``h3.latlng_to_cell`` at it.

    Coordinates must already be valid WGS84 degrees (as for
    :func:`geo.hexes.index_points`).

    >>> index_exact(np.array([40.7484]), np.array([-73.9857]), (8, 10))  # doctest: +SKIP
    {10: array([622236750558396415]), 8: array([613229551035105279])}
    """
    wanted = sorted({int(r) for r in resolutions}, reverse=True)
    if not wanted:
        return {}
    finest = wanted[0]
    out = {finest: index_points(lat, lon, finest)}
    if _BATCH is None or len(lat) == 0:
        out.update({res: index_points(lat, lon, res) for res in wanted[1:]})
        return out
    lat64 = np.ascontiguousarray(lat, dtype=np.float64)
    lon64 = np.ascontiguousarray(lon, dtype=np.float64)
    for res in wanted[1:]:
        candidates = parents(out[finest], res)
        codes, ids, rows, neighbours = EDGES.lookup(candidates)
        cells = np.ascontiguousarray(candidates).view(np.uint64)
        asked = _BATCH.refine(lat64, lon64, int(res), cells, codes, ids, rows, neighbours)
        if asked < -1:  # let h3 raise its own error for the point it refused
            failed = -asked - 2
            h3i.latlng_to_cell(float(lat64[failed]), float(lon64[failed]), res)
        out[res] = cells.view(np.int64)
    return out


def cell_column(res: int) -> str:
    """The column holding each row's exact cell at ``res`` (besides ``cell``, the base one)."""
    return f"cell_{res}"


def with_cells(rows: pd.DataFrame, base_res: int, resolutions: Iterable[int]) -> pd.DataFrame:
    """``rows`` (with ``lat``, ``lon``) with ``cell`` at ``base_res`` and :func:`cell_column`
    at each other resolution, all exact (:func:`index_exact`); a new frame."""
    extra = sorted({int(r) for r in resolutions} - {int(base_res)})
    cells = index_exact(rows["lat"].to_numpy(dtype=np.float64),
                        rows["lon"].to_numpy(dtype=np.float64), [base_res, *extra])
    out = rows.assign(cell=cells[base_res])
    for res in extra:
        out[cell_column(res)] = cells[res]
    return out


def cells_of_rows(rows: pd.DataFrame, res: int) -> Cells:
    """Each row's cell at ``res``, as ``latLngToCell`` puts a point.

    Read from the row's :func:`cell_column` (or ``cell`` when that is at ``res``),
    which indexing fills at every resolution the city serves; computed from ``lat``
    and ``lon`` for any other resolution. Rows that are cells rather than points
    (no coordinates: apportioned areas, data aggregated to cells elsewhere) roll
    their cell up the hierarchy.
    """
    column = cell_column(res)
    if column in rows:
        return rows[column].to_numpy(dtype=np.int64)
    base = rows["cell"].to_numpy(dtype=np.int64)
    if not len(base) or int(resolution_of(base[:1])[0]) == res:
        return base
    if "lat" in rows and "lon" in rows:
        lat = rows["lat"].to_numpy(dtype=np.float64, na_value=np.nan)
        lon = rows["lon"].to_numpy(dtype=np.float64, na_value=np.nan)
        usable = np.isfinite(lat) & np.isfinite(lon)
        if usable.all():
            return index_exact(lat, lon, [res])[res]
        out = parents(base, res) if int(resolution_of(base[:1])[0]) > res else base.copy()
        out[usable] = index_exact(lat[usable], lon[usable], [res])[res]
        return out
    return parents(base, res)


class EdgeTable:
    """Edge tests of the cells met so far, and each candidate's neighbours.

    A cache of a pure function of cell ids (their H3 outlines), shared by threads
    under a lock; lookups hand out arrays that are never changed afterwards (growing
    builds new ones). Past ``max_cells`` it starts over.
    """

    def __init__(self, max_cells: int = 400_000) -> None:
        self.max_cells = max_cells
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        # Row 0 stands for no cell (id 0, never inside): candidates not in the table.
        self._ids = np.zeros(1, dtype=np.uint64)
        self._rows = _NEVER.copy()
        self._neighbours = np.full((1, 6), -1, dtype=np.int64)
        self._complete = np.ones(1, dtype=bool)  # its neighbours are in the table
        self._index = pd.Index(np.zeros(1, dtype=np.int64))

    def lookup(self, candidates: Cells) -> tuple[NDArray[np.int64], NDArray[np.uint64],
                                                 NDArray[np.float64], NDArray[np.int64]]:
        """(row of each candidate, the table's cells, rows, neighbours) for :func:`refine`."""
        # Hash the candidates once (few distinct cells among many points), then look
        # only the distinct ones up in the table.
        positions, distinct = pd.factorize(candidates)
        distinct = np.asarray(distinct, dtype=np.int64)
        with self._lock:
            rows = self._index.get_indexer(distinct)
            missing = rows < 0
            missing[~missing] = ~self._complete[rows[~missing]]
            if missing.any():
                # Within a budget: building a cell's row costs about as much as asking
                # H3 for ~30 points, so sparse data (few points per cell) mostly asks.
                budget = max(64, len(candidates) // 30)
                self._add(distinct[missing][:budget])
                rows = self._index.get_indexer(distinct)
                rows[rows < 0] = 0  # the table's first row: nothing is inside, ask H3
            codes = rows.astype(np.int64, copy=False)[positions]
            return codes, self._ids, self._rows, self._neighbours

    def _add(self, cells: Cells) -> None:
        """Rows for ``cells`` (not yet complete) and for their neighbours."""
        rings = {int(c): [n for n in h3i.grid_disk(int(c), 1) if n != int(c)] for c in cells}
        if len(self._ids) + 7 * len(rings) > self.max_cells:
            self._clear()
        needed = np.array(sorted(set(rings) | {n for ring in rings.values() for n in ring}),
                          dtype=np.int64)
        fresh = needed[self._index.get_indexer(needed) < 0]
        ids = np.concatenate([self._ids, fresh.view(np.uint64)])
        rows = np.concatenate([self._rows, edge_rows(fresh.tolist())])
        index = pd.Index(ids.view(np.int64))
        neighbours = np.concatenate([self._neighbours,
                                     np.full((len(fresh), 6), -1, dtype=np.int64)])
        complete = np.concatenate([self._complete, np.zeros(len(fresh), dtype=bool)])
        for cell, ring in rings.items():
            at = index.get_loc(cell)
            neighbours[at, :len(ring)] = index.get_indexer(ring)
            complete[at] = True
        self._ids, self._rows, self._neighbours = ids, rows, neighbours
        self._complete, self._index = complete, index


def edge_rows(cells: Iterable[int]) -> NDArray[np.float64]:
    """Table rows (``(len(cells), 22)``): each cell's six edges linearised about its centre.

    Edge ``e`` holds ``(a, b, c)`` with ``n · p ≈ a + b Δlat + c Δlon`` (degrees from
    the centre), ``n`` the edge's inward unit normal. Within ``reach`` degrees of the
    centre the expansion is off by at most ``2 (reach·π/180)²``; the margin adds
    :data:`ROUNDING`. Pentagons and cells on two faces, across the antimeridian or
    near a pole get a negative reach: nothing is ever inside them, their points ask H3.
    """
    cells = [int(c) for c in cells]
    rows = np.zeros((len(cells), ROW), dtype=np.float64)
    rows[:, 20] = -1.0
    outlines = [h3i.cell_to_boundary(c) for c in cells]
    usable = [i for i, (c, ring) in enumerate(zip(cells, outlines, strict=True))
              if len(ring) == 6 and not h3i.is_pentagon(c)
              and len(h3i.get_icosahedron_faces(c)) == 1]
    if not usable:
        return rows
    ring = np.radians(np.array([outlines[i] for i in usable], dtype=np.float64))  # (k, 6, 2)
    centre = np.array([h3i.cell_to_latlng(cells[i]) for i in usable], dtype=np.float64)
    vertices = _units(ring[..., 0], ring[..., 1])  # (k, 6, 3)
    normals = np.cross(vertices, np.roll(vertices, -1, axis=1))
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    phi, lam = np.radians(centre[:, 0]), np.radians(centre[:, 1])
    p0 = _units(phi, lam)
    normals *= np.sign(np.einsum("kej,kj->ke", normals, p0))[..., None]  # inward
    d_lat = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], -1)
    d_lon = np.stack([-np.cos(phi) * np.sin(lam), np.cos(phi) * np.cos(lam),
                      np.zeros_like(phi)], -1)
    edges = np.stack([np.einsum("kej,kj->ke", normals, p0),
                      np.einsum("kej,kj->ke", normals, d_lat) * _DEG,
                      np.einsum("kej,kj->ke", normals, d_lon) * _DEG], -1)  # (k, 6, 3)
    degrees = np.degrees(ring)
    reach = 1.5 * np.maximum(np.abs(degrees[..., 0] - centre[:, :1]).max(axis=1),
                             np.abs(degrees[..., 1] - centre[:, 1:]).max(axis=1))
    out = np.column_stack([edges.reshape(len(usable), 18), centre, reach,
                           2.0 * (reach * _DEG) ** 2 + ROUNDING])
    wraps = (np.ptp(degrees[..., 1], axis=1) > 180.0) | (np.abs(centre[:, 0]) > 80.0)
    out[wraps, 20] = -1.0
    rows[usable] = out
    return rows


def _units(phi: NDArray[np.float64], lam: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit vectors of latitudes and longitudes in radians (any shape; one more axis)."""
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)


_NEVER = np.zeros((1, ROW), dtype=np.float64)
_NEVER[0, 20] = -1.0

#: The process's edge table (a cache of a pure function of cell ids).
EDGES = EdgeTable()
