"""H3 helpers on integer cells: index points, walk up to parents, draw outlines.

Cells are kept as int64 (an H3 index fits in 63 bits) so that grouping millions
of rows is a numpy operation. Parents are computed with bit arithmetic on the
index layout — resolution in bits 52–55, fifteen 3-bit digits below — which is
exact and ~100× faster than calling ``h3.cell_to_parent`` per row; a unit test
proves it equal to h3's own function.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from itertools import repeat
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import NDArray

Cells = NDArray[np.int64]

_RES_SHIFT = 52
_RES_MASK = np.uint64(0xF << _RES_SHIFT)


#: What a cell id may look like before h3 judges it: 1 to 16 hex digits (64 bits).
_HEX_CELL = re.compile(r"[0-9a-fA-F]{1,16}")

def _bind_batch_indexer() -> Any:
    """The C loop of :mod:`geo._h3batch` bound to h3-py's own library, or None.

    It calls the very C function h3-py calls (so its cells are identical), once per
    array instead of twice through Python per point, and without the GIL. Without a
    compiled ``_h3batch`` (no C compiler at install) or with an h3-py build that does
    not export H3's C API, indexing goes through h3's Python API instead.
    """
    try:
        import h3._cy.latlng

        from geo import _h3batch
        _h3batch.bind(h3._cy.latlng.__file__)
    except (ImportError, OSError, AttributeError) as exc:
        logging.getLogger(__name__).info("H3 batch indexer unavailable (%s): "
                                         "indexing through h3's Python API", exc)
        return None
    return _h3batch


_BATCH = _bind_batch_indexer()
#: Which indexer :func:`index_points` uses (reported by the ingest benchmark).
INDEXER = "h3 C loop (geo._h3batch)" if _BATCH is not None else "h3 Python API"


def index_points(lat: NDArray[np.float64], lon: NDArray[np.float64], res: int) -> Cells:
    """H3 cells (int64) of WGS84 points (degrees); coordinates must already be valid.

    >>> index_points(np.array([40.7484]), np.array([-73.9857]), 10)   # doctest: +SKIP
    array([622236750558396415])
    """
    if len(lat) == 0:
        return np.empty(0, dtype=np.int64)
    if _BATCH is not None and is_valid_resolution(res):
        lat64 = np.ascontiguousarray(lat, dtype=np.float64)
        lon64 = np.ascontiguousarray(lon, dtype=np.float64)
        out = np.empty(len(lat64), dtype=np.uint64)
        failed = _BATCH.index(lat64, lon64, int(res), out)
        if failed < 0:
            return out.view(np.int64)
        # Let h3 raise its own error for the point it refused.
        h3i.latlng_to_cell(float(lat64[failed]), float(lon64[failed]), res)
    cells = list(map(h3i.latlng_to_cell, lat.tolist(), lon.tolist(), repeat(res)))
    return np.fromiter(cells, dtype=np.int64, count=len(cells))


def parents(cells: Cells, res: int) -> Cells:
    """The ancestors at ``res`` of cells at resolution ``res`` or finer (vectorised).

    The hierarchy of cell ids, not of points: an H3 parent does not cover all of its
    children, so a point's cell at ``res`` is :func:`geo.exact.index_exact`'s.
    """
    raw = np.asarray(cells, dtype=np.int64).view(np.uint64)
    unused_digits = np.uint64((1 << (3 * (15 - res))) - 1)
    out = (raw & ~_RES_MASK) | np.uint64(res << _RES_SHIFT) | unused_digits
    return out.view(np.int64)


def resolution_of(cells: Cells) -> NDArray[np.int64]:
    raw = np.asarray(cells, dtype=np.int64).view(np.uint64)
    return ((raw & _RES_MASK) >> np.uint64(_RES_SHIFT)).astype(np.int64)


def to_hex(cell: int) -> str:
    return format(int(cell), "x")


def from_hex(text: str) -> int:
    """Parse a cell id (1 to 16 hex digits); raises ValueError unless it is a valid H3 cell.

    Only plain hex digits: ``int(text, 16)`` alone would also take a sign, ``0x``,
    underscores and spaces, and a value outside 64 bits overflows h3's check.
    """
    if not isinstance(text, str) or not _HEX_CELL.fullmatch(text):
        raise ValueError(f"not an H3 cell id: {str(text)[:40]!r}")
    cell = int(text, 16)
    if not h3i.is_valid_cell(cell):
        raise ValueError(f"not an H3 cell id: {text!r}")
    return cell


def cell_resolution(cell: int) -> int:
    return int(h3i.get_resolution(cell))


@lru_cache(maxsize=200_000)
def cell_ring(cell: int) -> tuple[tuple[float, float], ...]:
    """The closed outline of a cell as (lon, lat) pairs rounded to 5 decimals (~1 m)."""
    ring = [(round(lng, 5), round(lat, 5)) for lat, lng in h3i.cell_to_boundary(cell)]
    ring.append(ring[0])
    return tuple(ring)


@lru_cache(maxsize=200_000)
def cell_center(cell: int) -> tuple[float, float]:
    """(lat, lon) of a cell's centre."""
    return h3i.cell_to_latlng(cell)


def cell_area_km2(cells: Iterable[int]) -> NDArray[np.float64]:
    return np.fromiter((h3i.cell_area(int(c), unit="km^2") for c in cells), dtype=float)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    Building ~10k polygon dicts triggers repeated full collections that find
    nothing to free; pausing them makes building 5–7× faster.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cells_geojson(cells: Sequence[int] | NDArray[np.int64]) -> dict[str, object]:
    """A GeoJSON FeatureCollection of cell outlines, feature ids = hex cell ids."""
    with gc_paused():
        features = [
            {"type": "Feature", "id": to_hex(c),
             "geometry": {"type": "Polygon", "coordinates": [cell_ring(int(c))]}}
            for c in cells
        ]
    return {"type": "FeatureCollection", "features": features}


def in_bbox(lat: NDArray[np.float64], lon: NDArray[np.float64],
            bbox: tuple[float, float, float, float] | None) -> NDArray[np.bool_]:
    """Mask of points inside (west, south, east, north); everything when bbox is None."""
    if bbox is None:
        return np.ones(len(lat), dtype=bool)
    west, south, east, north = bbox
    return (lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)


def cell_centers(cells: Cells) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lat, lon) arrays of cell centres.

    A map redraws the same grid tick after tick (the city's footprint in view), so
    whole arrays are memoised by content: a tick on 55k cells looks them up in
    ~0.5 ms instead of ~28 ms of per-cell calls.
    """
    if len(cells) == 0:
        return np.empty(0), np.empty(0)
    cells = np.asarray(cells, dtype=np.int64)
    key = hashlib.blake2b(cells.tobytes(), digest_size=16).digest()
    with _CENTRES_LOCK:
        hit = _CENTRES.get(key)
        if hit is not None:
            _CENTRES.move_to_end(key)
            return hit
    centers = [cell_center(int(c)) for c in cells]
    lat = np.fromiter((c[0] for c in centers), dtype=float, count=len(centers))
    lon = np.fromiter((c[1] for c in centers), dtype=float, count=len(centers))
    lat.flags.writeable = lon.flags.writeable = False  # shared between callers
    with _CENTRES_LOCK:
        _CENTRES[key] = (lat, lon)
        while len(_CENTRES) > 32:
            _CENTRES.popitem(last=False)
    return lat, lon


#: Memo of :func:`cell_centers` by the cells' digest (a cache of a pure function).
_CENTRES: OrderedDict[bytes, tuple[NDArray[np.float64], NDArray[np.float64]]] = OrderedDict()
_CENTRES_LOCK = threading.Lock()


def haversine_km(lat1: float, lon1: float, lat2: NDArray[np.float64],
                 lon2: NDArray[np.float64]) -> NDArray[np.float64]:
    p1, p2 = math.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(lon2) - math.radians(lon1)
    a = np.sin(dlat / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 6371.0088 * 2 * np.arcsin(np.sqrt(a))


def is_valid_resolution(res: int) -> bool:
    return 0 <= res <= 15

