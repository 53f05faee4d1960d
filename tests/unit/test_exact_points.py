"""Points are placed by latLngToCell at the resolution asked, never by their base cell's
parent: an event's merge cell, a district panel's rows, and the map's footprint.

Points are laid along H3 cell outlines (vertices included) and moved by a few
centimetres either way, so many of them have an exact cell that is not their base
cell's parent; each test checks that such points exist (the old roll-up would fail)
and compares with plain ``h3.latlng_to_cell`` one point at a time. Two cities: New York
and Hangzhou (the other side of the globe, another icosahedron face).
"""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.exact import with_cells
from ops.events.intake import reports_from_frame
from render.profile import cells_selector
from tests.synthetic_city import TESTBURG, SyntheticCity, write_city

BASE = 10
CITIES = {"new-york": (40.7484, -73.9857), "hangzhou": (30.2741, 120.1551)}


def truth(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """Plain h3-py, one point at a time."""
    return np.array([h3.str_to_int(h3.latlng_to_cell(float(a), float(b), res))
                     for a, b in zip(lat, lon, strict=True)], dtype=np.int64)


def edge_points(centre: tuple[float, float], res: int,
                seed: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """Points along the outlines of the cells around ``centre`` at ``res``, jittered by
    up to ~5 cm (5e-7°) either way."""
    rng = np.random.default_rng(seed)
    lats, lons = [], []
    for cell in h3.grid_disk(h3.latlng_to_cell(*centre, res), 2):
        ring = h3.cell_to_boundary(cell)
        for (a_lat, a_lon), (b_lat, b_lon) in zip(ring, ring[1:] + ring[:1], strict=True):
            t = np.linspace(0.0, 1.0, 40, endpoint=False)
            lats.append(a_lat + t * (b_lat - a_lat))
            lons.append(a_lon + t * (b_lon - a_lon))
    lat, lon = np.concatenate(lats), np.concatenate(lons)
    return (lat + rng.uniform(-5e-7, 5e-7, len(lat)),
            lon + rng.uniform(-5e-7, 5e-7, len(lon)))


def rolled_up(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """What the roll-up gave: the base cell's parent."""
    return np.array([h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res))
                     for c in truth(lat, lon, BASE)], dtype=np.int64)


def request_rows(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    n = len(lat)
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(n)], "source": "hotline",
        "time": pd.Timestamp(datetime(2026, 3, 1, 12, tzinfo=UTC)),
        "lat": lat, "lon": lon, "cell": truth(lat, lon, BASE), "category": "noise",
    })


@pytest.mark.parametrize("city", sorted(CITIES))
@pytest.mark.parametrize("merge_res", [8, 9])
@pytest.mark.parametrize("indexed", [False, True], ids=["base-cell-only", "cell-columns"])
def test_merge_cells_are_latlng_to_cell_at_merge_res(city: str, merge_res: int,
                                                     indexed: bool) -> None:
    lat, lon = edge_points(CITIES[city], merge_res)
    expected = truth(lat, lon, merge_res)
    assert (rolled_up(lat, lon, merge_res) != expected).sum() > 20, "no point tests the edges"
    frame = request_rows(lat, lon)
    if indexed:  # as the live pipeline stores them: cell_<res> at every served res
        frame = with_cells(frame.drop(columns="cell"), BASE, (7, 8, 9))
    reports, rejected = reports_from_frame(frame, merge_res)
    assert not rejected and len(reports) == len(lat)
    np.testing.assert_array_equal([r.merge_cell for r in reports], expected)
    np.testing.assert_array_equal([r.cell for r in reports], truth(lat, lon, BASE))


def test_merge_cells_of_rows_without_cells_or_coordinates() -> None:
    lat, lon = edge_points(CITIES["hangzhou"], 9)
    frame = request_rows(lat, lon).drop(columns="cell")
    frame.loc[3, "lat"] = np.nan  # refused, and does not stop the others
    reports, rejected = reports_from_frame(frame, 9)
    assert rejected == {"missing coordinates": 1}
    keep = np.arange(len(lat)) != 3
    np.testing.assert_array_equal([r.merge_cell for r in reports],
                                  truth(lat[keep], lon[keep], 9))


@pytest.mark.parametrize("city", sorted(CITIES))
@pytest.mark.parametrize("district_res", [8, BASE])
def test_a_district_picks_the_points_latlng_to_cell_puts_in_it(city: str,
                                                               district_res: int) -> None:
    lat, lon = edge_points(CITIES[city], district_res)
    centre = h3.latlng_to_cell(*CITIES[city], district_res)
    district = np.array([h3.str_to_int(c) for c in h3.grid_disk(centre, 1)], dtype=np.int64)
    expected = np.isin(truth(lat, lon, district_res), district)
    assert expected.any() and not expected.all()
    if district_res != BASE:
        assert (np.isin(rolled_up(lat, lon, district_res), district) != expected).sum() > 5
    frame = request_rows(lat, lon)
    np.testing.assert_array_equal(cells_selector(district)(frame), expected)
    indexed = with_cells(frame.drop(columns="cell"), BASE, (7, 8, 9))
    np.testing.assert_array_equal(cells_selector(district)(indexed), expected)
    assert not cells_selector(np.empty(0, dtype=np.int64))(frame).any()


@pytest.fixture(scope="module")
def testburg(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCity:
    root = tmp_path_factory.mktemp("testburg-footprint")
    return write_city(root / "city", TESTBURG, cache_dir=root / "cache")


@pytest.fixture(scope="module")
def city_data(testburg: SyntheticCity):
    from app import load_config
    from store.city import CityData

    return CityData.load(load_config(testburg.config_path))


def _cells_overlapping(union: shapely.Geometry, res: int, near: np.ndarray) -> np.ndarray:
    """Cells at ``res`` around ``near`` whose hexagon shares area with ``union`` (shapely)."""
    candidates = {c for cell in near for c in h3.grid_disk(h3.int_to_str(int(cell)), 2)}
    kept = []
    for cell in sorted(candidates):
        hexagon = shapely.Polygon([(b, a) for a, b in h3.cell_to_boundary(cell)])
        if hexagon.intersection(union).area > 1e-14:
            kept.append(h3.str_to_int(cell))
    return np.unique(np.array(kept, dtype=np.int64))


@pytest.mark.parametrize("res", [7, 8, 9])
def test_footprint_holds_every_cell_a_point_of_the_city_falls_in(
        testburg: SyntheticCity, city_data, res: int) -> None:
    footprint = city_data.footprint(res)
    units: gpd.GeoDataFrame = testburg.neighbourhoods
    union = shapely.union_all(units.geometry.to_numpy())
    # Independent: every hexagon at res sharing area with the neighbourhoods' union.
    base = city_data.boundaries[0].cells["cell"].to_numpy()
    near = np.unique([h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res))
                      for c in base])
    np.testing.assert_array_equal(footprint, _cells_overlapping(union, res, near))
    # Points just inside the city's outline land in footprint cells.
    rng = np.random.default_rng(5)
    outline = shapely.get_coordinates(shapely.segmentize(union.boundary, 2e-5))
    lat, lon = outline[:, 1] + rng.uniform(-1e-5, 1e-5, len(outline)), \
        outline[:, 0] + rng.uniform(-1e-5, 1e-5, len(outline))
    inside = shapely.contains_xy(union, lon, lat)
    assert inside.sum() > 1000
    assert np.isin(truth(lat[inside], lon[inside], res), footprint).all()
