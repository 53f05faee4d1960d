"""Contract cases for the file adapters: the sample written as each file format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest

from app import parse_config
from config.city import CityConfig
from data import AdapterContext, get_adapter_class
from tests.contract.sample import all_rows, source_table

CITY = {"name": "Contract City", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}


def load_config_tables(tmp_path: Path, tables: list[dict[str, Any]]) -> CityConfig:
    """A contract city's config with these ``[[sources]]`` tables, as the app loads one."""
    return parse_config({"city": CITY, "sources": tables}, tmp_path)


def make_adapter(tmp_path: Path, table: dict[str, Any]) -> Any:
    source = load_config_tables(tmp_path, [table]).sources[0]
    return get_adapter_class(source.adapter)(source, AdapterContext(base_res=10, timezone="UTC"))


def _frame() -> pd.DataFrame:
    return pd.DataFrame(all_rows())


def _geo(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """As a point layer, rows without coordinates keep an empty geometry."""
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
                            crs="EPSG:4326")


def csv_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    _frame().to_csv(tmp_path / "sample.csv", index=False)
    return make_adapter(tmp_path, source_table("csv", path="sample.csv"))


def parquet_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    _frame().to_parquet(tmp_path / "sample.parquet")
    return make_adapter(tmp_path, source_table("parquet", path="sample.parquet"))


def geojson_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    _geo(_frame()).to_file(tmp_path / "sample.geojson", driver="GeoJSON")
    return make_adapter(tmp_path, source_table("geojson", path="sample.geojson"))


def geopackage_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    _geo(_frame()).to_file(tmp_path / "sample.gpkg", driver="GPKG", layer="requests")
    return make_adapter(tmp_path, source_table("geopackage", path="sample.gpkg", layer_name="requests"))


def shapefile_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    frame = _frame().rename(columns={"closed_time": "closed"})
    _geo(frame).to_file(tmp_path / "sample.shp")
    table = source_table("shapefile", path="sample.shp")
    table["closed_time"] = "closed"  # shapefile field names are at most 10 characters
    return make_adapter(tmp_path, table)


def file_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    _frame().to_csv(tmp_path / "sample.csv", index=False)
    return make_adapter(tmp_path, source_table("file", path="sample.csv"))


CASES = {
    "csv": csv_case,
    "parquet": parquet_case,
    "geojson": geojson_case,
    "geopackage": geopackage_case,
    "shapefile": shapefile_case,
    "file": file_case,
}
