"""geo.exact.index_exact against h3's own latlng_to_cell: random points, points on and
right next to cell edges and vertices, pentagons, face edges, the antimeridian."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from geo import hexes
from geo.exact import EdgeTable, edge_rows, index_exact
from geo.hexes import parents

SERVED = (7, 8, 9, 10)


def truth(lat: np.ndarray, lon: np.ndarray, res: int) -> list[int]:
    """Plain h3-py, one point at a time: the standard every other system uses."""
    return [h3.str_to_int(h3.latlng_to_cell(float(a), float(b), res))
            for a, b in zip(lat, lon, strict=True)]


def assert_exact(lat: np.ndarray, lon: np.ndarray, resolutions: tuple[int, ...] = SERVED) -> None:
    cells = index_exact(lat, lon, resolutions)
    assert sorted(cells) == sorted(resolutions)
    for res in resolutions:
        expected = truth(lat, lon, res)
        wrong = np.flatnonzero(cells[res] != np.array(expected, dtype=np.int64))
        assert not len(wrong), (f"res {res}: {len(wrong)} of {len(lat)} points differ from "
                                f"latlng_to_cell, e.g. ({lat[wrong[0]]}, {lon[wrong[0]]})")


def boundary_points(cells: list[str], per_edge: int, jitter: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points interpolated along the cells' outlines (vertices included), moved by up to
    ``jitter`` degrees either way."""
    lats, lons = [], []
    for cell in cells:
        ring = h3.cell_to_boundary(cell)
        for (a_lat, a_lon), (b_lat, b_lon) in zip(ring, ring[1:] + ring[:1], strict=True):
            t = np.linspace(0.0, 1.0, per_edge, endpoint=False)
            lats.append(a_lat + t * (b_lat - a_lat))
            lons.append(a_lon + t * (b_lon - a_lon))
    lat, lon = np.concatenate(lats), np.concatenate(lons)
    if jitter:
        lat = lat + rng.uniform(-jitter, jitter, len(lat))
        lon = lon + rng.uniform(-jitter, jitter, len(lon))
    return lat, lon


def test_the_c_loop_is_what_is_tested() -> None:
    assert hexes._BATCH is not None, "geo/_h3batch.c is not built: only the fallback is tested"


def test_random_points_in_two_cities_and_over_the_globe() -> None:
    rng = np.random.default_rng(13)
    # New York, Hangzhou (a second, differently placed city), and anywhere at all.
    for (south, north), (west, east) in (((40.49, 40.92), (-74.26, -73.70)),
                                         ((30.1, 30.4), (120.0, 120.4)),
                                         ((-89.9, 89.9), (-180.0, 180.0))):
        lat = rng.uniform(south, north, 60_000)
        lon = rng.uniform(west, east, 60_000)
        assert_exact(lat, lon)


def test_other_resolution_sets() -> None:
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-60, 70, 20_000), rng.uniform(-180, 180, 20_000)
    assert_exact(lat, lon, (5, 9))
    assert_exact(lat, lon, (6, 7, 8, 12))
    assert_exact(lat, lon, (10,))


@pytest.mark.parametrize("res", [7, 8, 9, 10])
def test_points_on_and_next_to_cell_edges_and_vertices(res: int) -> None:
    """Points along the outlines of cells at ``res``, exactly on them and moved by 1e-12 to
    1e-5 degrees (~0.1 µm to ~1 m): on both sides of edges of every served resolution."""
    rng = np.random.default_rng(res)
    centres = [(40.7, -73.95), (30.25, 120.17), (-33.87, 151.21), (64.1, -21.9)]
    cells: list[str] = []
    for lat, lon in centres:
        cells += list(h3.grid_disk(h3.latlng_to_cell(lat, lon, res), 2))
    for jitter in (0.0, 1e-12, 1e-9, 1e-7, 1e-5):
        assert_exact(*boundary_points(cells, 25, jitter, rng))


def test_pentagons_face_edges_and_the_antimeridian() -> None:
    rng = np.random.default_rng(5)
    spots = [h3.cell_to_latlng(p) for p in h3.get_pentagons(7)]
    # Cells crossing icosahedron faces: res-2 cells on more than one face.
    spots += [h3.cell_to_latlng(c) for c in h3.get_res0_cells()
              if len(h3.get_icosahedron_faces(c)) > 1][:12]
    spots += [(0.0, 180.0), (52.0, -179.999), (-16.0, 179.9999), (89.99, 0.0), (-89.99, 45.0)]
    for lat, lon in spots:
        a = lat + rng.normal(0, 0.05, 4_000)
        b = ((lon + rng.normal(0, 0.05, 4_000) + 180.0) % 360.0) - 180.0
        assert_exact(np.clip(a, -89.999, 89.999), b)
    pentagon_cells = [p for res in SERVED for p in h3.get_pentagons(res)]
    assert_exact(*boundary_points(pentagon_cells, 40, 1e-9, rng))


def test_most_points_keep_their_parent_and_the_rest_move_to_a_neighbour() -> None:
    """What index_exact changes: some points leave their base cell's parent (the roll-up
    counts them wrongly), always for an adjacent cell."""
    rng = np.random.default_rng(11)
    lat, lon = rng.uniform(40.49, 40.92, 50_000), rng.uniform(-74.26, -73.70, 50_000)
    cells = index_exact(lat, lon, SERVED)
    for res in (7, 8, 9):
        rolled = parents(cells[10], res)
        moved = rolled != cells[res]
        assert 0.02 < moved.mean() < 0.15
        assert all(h3.grid_distance(h3.int_to_str(int(a)), h3.int_to_str(int(b))) == 1
                   for a, b in zip(rolled[moved][:200], cells[res][moved][:200], strict=True))


def test_edge_rows_and_a_table_that_starts_over() -> None:
    pentagon = h3.str_to_int(h3.get_pentagons(8)[0])
    assert edge_rows([pentagon])[0, 20] < 0  # nothing is ever inside: its points ask H3
    row = edge_rows([h3.str_to_int(h3.latlng_to_cell(40.7, -73.95, 8))])[0]
    assert row[20] > 0 and all(row[3 * e] > row[21] for e in range(6))  # the centre is inside
    table = EdgeTable(max_cells=300)
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(40.49, 40.92, 3_000), rng.uniform(-74.26, -73.70, 3_000)
    cells = hexes.index_points(lat, lon, 10)
    for res in (7, 8, 7, 9):
        candidates = parents(cells, res)
        codes, ids, rows, neighbours = table.lookup(candidates)
        known = codes > 0  # row 0: not in the table (yet), ask H3
        assert known.any() and (ids[codes[known]].view(np.int64) == candidates[known]).all()
        assert (ids[codes[~known]] == 0).all() and rows[0, 20] < 0
        complete = codes[known][table._complete[codes[known]]]  # others: a neighbour's row
        assert len(complete) and ((neighbours[complete] >= 0).sum(axis=1) == 6).all()
    assert len(table._ids) <= 300 + 7 * 100  # started over instead of growing past the cap
