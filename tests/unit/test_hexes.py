from __future__ import annotations

import h3
import numpy as np
import pytest

from core.hexes import (
    cell_ring,
    cells_geojson,
    from_hex,
    index_points,
    parents,
    resolution_for_zoom,
    resolution_of,
    to_hex,
)


def test_vectorised_parents_equal_h3_cell_to_parent() -> None:
    rng = np.random.default_rng(7)
    lat = rng.uniform(-60, 70, 500)
    lon = rng.uniform(-180, 180, 500)
    cells = index_points(lat, lon, 12)
    for res in range(0, 13):
        expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in cells]
        assert parents(cells, res).tolist() == expected
        assert set(resolution_of(parents(cells, res)).tolist()) == {res}


def test_index_points_matches_h3() -> None:
    lat = np.array([40.7128, 31.2304, -33.8688])
    lon = np.array([-74.006, 121.4737, 151.2093])
    cells = index_points(lat, lon, 10)
    assert [to_hex(c) for c in cells] == [h3.latlng_to_cell(a, b, 10) for a, b in zip(lat, lon, strict=False)]
    assert index_points(np.array([]), np.array([]), 10).dtype == np.int64


def test_cell_ring_is_closed_lon_lat_rounded() -> None:
    cell = h3.str_to_int(h3.latlng_to_cell(40.7, -74.0, 8))
    ring = cell_ring(cell)
    assert ring[0] == ring[-1] and len(ring) == 7
    lon, lat = ring[0]
    assert -75 < lon < -73 and 40 < lat < 41
    assert all(round(v, 5) == v for point in ring for v in point)


def test_cells_geojson_ids_are_hex() -> None:
    cell = h3.str_to_int(h3.latlng_to_cell(40.7, -74.0, 8))
    collection = cells_geojson([cell])
    assert collection["features"][0]["id"] == h3.int_to_str(cell)


def test_from_hex_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        from_hex("not-a-cell")
    with pytest.raises(ValueError):
        from_hex("ffffffffffffffff")
    assert from_hex("882a100001fffff") == int("882a100001fffff", 16)


@pytest.mark.parametrize(("zoom", "res"), [(5, 7), (9.0, 8), (11.4, 8), (11.5, 9), (13, 10),
                                            (18, 10)])
def test_resolution_follows_zoom(zoom: float, res: int) -> None:
    steps = ((0.0, 7), (9.0, 8), (11.5, 9), (12.75, 10))
    assert resolution_for_zoom(zoom, steps) == res
