"""Areal apportionment is computed once per set of geometries, cached outside the checkout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from app import load_config
from config.city import REPO_ROOT, CacheSettings
from geo.areal import apportion, cached_overlaps
from store.city import CityData
from tests.synthetic_city import TESTBURG, write_city


def _squares() -> gpd.GeoDataFrame:
    """Four invented districts near Hangzhou, one of them listed twice under two ids."""
    boxes = [shapely.box(120.10 + 0.01 * i, 30.20, 120.11 + 0.01 * i, 30.215) for i in range(3)]
    return gpd.GeoDataFrame({
        "id": ["a", "b", "c", "c2"], "name": ["A", "B", "C", "C again"],
        "value": [100.0, 250.0, 40.0, 60.0], "source": "districts",
    }, geometry=[*boxes, boxes[2]], crs="EPSG:4326")


def _by_area(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["id", "cell"]).reset_index(drop=True)


def test_cached_apportionment_equals_a_fresh_one_in_any_row_order(tmp_path: Path) -> None:
    areas = _squares()
    fresh = apportion(areas, 10, None)
    first = apportion(areas, 10, tmp_path)
    shuffled = areas.iloc[[3, 1, 0, 2]].assign(value=[6.0, 25.0, 10.0, 4.0], source="other")
    again = apportion(shuffled, 10, tmp_path)
    assert len(list(tmp_path.glob("overlaps-*.parquet"))) == 1  # same shapes: one file
    pd.testing.assert_frame_equal(_by_area(first), _by_area(fresh))
    # Other values and order, same shapes: each area's share of each cell is unchanged.
    expected = _by_area(fresh).assign(
        value=lambda f: f["value"] / f["id"].map({"a": 100.0, "b": 250.0, "c": 40.0, "c2": 60.0})
        * f["id"].map({"a": 10.0, "b": 25.0, "c": 4.0, "c2": 6.0}), source="other")
    pd.testing.assert_frame_equal(_by_area(again), expected)


def test_each_area_is_spread_over_exactly_its_own_area(tmp_path: Path) -> None:
    """Against shapely directly: the overlaps of each area add up to its area (equal-area
    projection), and its value is conserved."""
    areas = _squares()
    pieces = cached_overlaps(areas, 9, tmp_path)
    laea = "+proj=laea +lat_0=30.2075 +lon_0=120.125 +datum=WGS84 +units=m"
    true_area = areas.to_crs(laea).area.to_numpy()
    summed = pieces.groupby("row")["area_m2"].sum().reindex(range(len(areas))).to_numpy()
    np.testing.assert_allclose(summed, true_area, rtol=1e-3)
    spread = apportion(areas, 9, tmp_path).groupby("id")["value"].sum()
    assert spread.to_dict() == pytest.approx(dict(zip(areas["id"], areas["value"], strict=True)))


def test_a_file_used_as_boundary_and_as_source_is_intersected_once(tmp_path: Path,
                                                                   caplog) -> None:
    """Testburg's neighbourhoods.geojson is its boundary level and its residents source."""
    city = write_city(tmp_path / "city", TESTBURG, cache_dir=tmp_path / "cache")
    config = load_config(city.config_path)
    caplog.set_level("INFO", logger="geo.areal")
    CityData.load(config)
    intersected = [r.getMessage() for r in caplog.records if r.name == "geo.areal"]
    area_sources = 3  # residents (= the boundary's shapes), zoning, wards
    # Areas are apportioned at every served resolution; the boundary at the base one only.
    served = len(config.map.served_resolutions)
    assert len(intersected) == area_sources * served, intersected
    assert len(list((tmp_path / "cache").glob("overlaps-*.parquet"))) == area_sources * served + 1
    caplog.clear()
    CityData.load(config)  # a warm start reads them all (the boundary set has its own file)
    assert not [r for r in caplog.records if r.name == "geo.areal" and r.levelname == "INFO"]


def test_the_cache_folder_is_outside_the_checkout_by_default(tmp_path: Path) -> None:
    settings = CacheSettings()
    assert settings.disk_directory(environ={"XDG_CACHE_HOME": str(tmp_path)}) \
        == tmp_path / "citybrain"
    assert settings.disk_directory(environ={}) == Path.home() / ".cache" / "citybrain"
    assert REPO_ROOT not in settings.disk_directory(environ={}).parents
    relative = dataclasses.replace(settings, directory="derived")
    assert relative.disk_directory(tmp_path) == tmp_path / "derived"
    absolute = dataclasses.replace(settings, directory=str(tmp_path / "x"))
    assert absolute.disk_directory(Path("/elsewhere")) == tmp_path / "x"
