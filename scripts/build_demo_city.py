"""Build the compact NYC demo dataset shipped in ``cities/nyc/data/``.

The script converts the staged NYC open data (see ``SOURCES.md`` in the source directory)
into small Parquet / GeoParquet files in EPSG:4326 and writes ``PROVENANCE.md`` next to them.

What it does, and deliberately does not do:

* it converts formats, selects and snake_cases columns and sorts rows by a stable key;
* polygons are simplified (``simplify(..., preserve_topology=True)``) and their coordinates
  rounded to 6 decimals; the area change per layer is measured and printed;
* it does NOT drop rows with missing or bad coordinates / dates and does not "fix" values:
  the app counts those as rejections itself;
* taxi trips have no coordinates; each trip is placed at the ``representative_point()`` of its
  pickup taxi zone (computed on the unsimplified polygon). Zone ids without a polygon
  (264/265 = unknown) keep NaN coordinates.

Rebuild with::

    python scripts/build_demo_city.py

Default paths are resolved relative to the repository root, so the command works from any
working directory. Paths passed explicitly are resolved relative to the working directory.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("../shared/data/nyc")
DEFAULT_OUT = Path("cities/nyc/data")

CRS = "EPSG:4326"
#: Projected CRS (NY State Plane Long Island, US ft) used only to measure area changes.
AREA_CRS = "EPSG:2263"
#: Simplification tolerance in degrees (about 5.5 m north-south, 4.2 m east-west at NYC).
SIMPLIFY_TOLERANCE = 0.00005
#: Coordinate grid for polygon output (6 decimals, about 0.1 m).
GRID_SIZE = 1e-6
#: Maximum accepted relative change of a layer's total area caused by simplification.
MAX_AREA_CHANGE = 0.005
COMPRESSION = "zstd"
FT2_TO_M2 = 0.09290304
EXPECTED_POPULATION_2010 = 8_175_133

# Source files, relative to --source.
SRC_BOROUGHS = "admin/nyc_boroughs.geojson"
SRC_ZIPS = "land/nyc_zip_code_areas.geojson"
SRC_TAXI_ZONES = "land/nyc_taxi_zones.geojson"
SRC_TRACTS = "people/nyc_census_tracts_2010_population.geojson"
SRC_TAXI_TRIPS = "people/nyc_yellow_taxi_trips_2024-01_sample.csv"
SRC_FOOD = "enterprises/nyc_retail_food_stores.csv"
SRC_OSM = "enterprises/nyc_osm_pois_2017.csv"
SRC_311 = "government/nyc_311_service_requests_combined.csv"
SRC_GOV = "government/nyc_gov_service_points_osm2017.csv"
SRC_WIFI = "things/nyc_wifi_hotspots.csv"


@dataclass
class LayerReport:
    """What was built for one output file (used for the console summary and PROVENANCE.md)."""

    name: str
    source: str
    rows: int
    area_change: float | None = None
    max_feature_area_change: float | None = None
    max_feature_label: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------------------------


def read_csv_as_text(path: Path) -> pd.DataFrame:
    """Read a CSV with every cell as text; empty cells become missing, nothing else does.

    ``keep_default_na=False`` stops pandas turning strings such as "NA" or "null" into NaN.
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return df.replace("", None).astype(object)


def to_float(series: pd.Series, label: str) -> pd.Series:
    """Convert text to float64; missing stays NaN. Fails on non-empty unparseable text."""
    out = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = series.notna() & out.isna()
    if bad.any():
        raise ValueError(f"{label}: {int(bad.sum())} non-empty values are not numbers")
    return out


def to_int(series: pd.Series, label: str) -> pd.Series:
    """Convert text (or floats like "1.0") to nullable Int64; fails on non-integral values."""
    as_float = to_float(series, label)
    integral = as_float.isna() | (as_float == np.floor(as_float))
    if not integral.all():
        raise ValueError(f"{label}: {int((~integral).sum())} values are not integers")
    return as_float.astype("Int64")


def text(series: pd.Series) -> pd.Series:
    """Return a column as Python strings (object dtype) with None for missing values."""
    return series.astype(object).where(series.notna(), None)


# --------------------------------------------------------------------------------------------
# Writing helpers
# --------------------------------------------------------------------------------------------


def write_table(df: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    """Write a plain (non-spatial) table as zstd Parquet with an explicit Arrow schema."""
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    pq.write_table(table, path, compression=COMPRESSION)


def write_geo(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Write a GeoDataFrame as zstd GeoParquet (WKB geometry, EPSG:4326)."""
    gdf = gdf.reset_index(drop=True)
    for col in gdf.columns:
        dtype = gdf[col].dtype
        if col != gdf.geometry.name and (
            isinstance(dtype, pd.StringDtype) or dtype is np.dtype(object)
        ):
            gdf[col] = text(gdf[col])
    gdf.to_parquet(path, compression=COMPRESSION, index=False)


# --------------------------------------------------------------------------------------------
# Polygons
# --------------------------------------------------------------------------------------------


def simplify_layer(
    gdf: gpd.GeoDataFrame, label: str, report: LayerReport, key: str
) -> gpd.GeoDataFrame:
    """Simplify, round to 6 decimals and validate a polygon layer; record the area change.

    The area change is measured in EPSG:2263 as |simplified - original| / original, both for the
    whole layer and as the maximum over single features.
    """
    original = gdf.geometry.to_crs(AREA_CRS).area.to_numpy()
    geoms = shapely.simplify(gdf.geometry.to_numpy(), SIMPLIFY_TOLERANCE, preserve_topology=True)
    geoms = shapely.set_precision(geoms, GRID_SIZE)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    if shapely.is_empty(geoms).any() or not shapely.is_valid(geoms).all():
        raise ValueError(f"{label}: simplification produced empty or invalid geometries")
    types = set(shapely.get_type_id(geoms).tolist())
    if not types <= {3, 6}:  # Polygon, MultiPolygon
        raise ValueError(f"{label}: simplification produced non-polygon geometries {types}")
    out = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=CRS))
    simplified = out.geometry.to_crs(AREA_CRS).area.to_numpy()
    change = abs(simplified.sum() - original.sum()) / original.sum()
    per_feature = np.abs(simplified - original) / original
    report.area_change = float(change)
    worst = int(np.argmax(per_feature))
    report.max_feature_area_change = float(per_feature[worst])
    report.max_feature_label = (
        f"{key} {gdf[key].iloc[worst]}, {original[worst] * FT2_TO_M2:,.0f} m²"
    )
    print(
        f"  {label}: tolerance {SIMPLIFY_TOLERANCE} deg, total area change {change:.4%}, "
        f"max per feature {per_feature[worst]:.4%} ({report.max_feature_label})"
    )
    if change >= MAX_AREA_CHANGE:
        raise ValueError(f"{label}: area change {change:.4%} exceeds {MAX_AREA_CHANGE:.1%}")
    return out


def read_polygons(path: Path) -> gpd.GeoDataFrame:
    """Read a GeoJSON polygon layer and make sure it is in EPSG:4326."""
    gdf = gpd.read_file(path)
    if gdf.crs is None:
        raise ValueError(f"{path}: no CRS")
    return gdf.to_crs(CRS)


def build_boroughs(src: Path, out: Path) -> LayerReport:
    """boroughs.parquet: boro_code, boro_name, geometry."""
    report = LayerReport("boroughs.parquet", SRC_BOROUGHS, 0)
    raw = read_polygons(src / SRC_BOROUGHS)
    gdf = gpd.GeoDataFrame(
        {
            "boro_code": raw["BoroCode"].astype("int64"),
            "boro_name": text(raw["BoroName"]),
        },
        geometry=raw.geometry,
        crs=CRS,
    ).sort_values("boro_code", kind="stable")
    gdf = simplify_layer(gdf, "boroughs", report, "boro_name")
    write_geo(gdf, out / report.name)
    report.rows = len(gdf)
    return report


def read_tracts(src: Path) -> gpd.GeoDataFrame:
    """Read the 2010 census tracts with the selected, renamed columns (unsimplified)."""
    raw = read_polygons(src / SRC_TRACTS)
    gdf = gpd.GeoDataFrame(
        {
            "boro_ct2010": text(raw["boro_ct2010"]),
            "ct_label": text(raw["ctlabel"]),
            "nta_code": text(raw["ntacode"]),
            "nta_name": text(raw["ntaname"]),
            "boro_name": text(raw["boro_name"]),
            "population": raw["Population"].astype("int64"),
        },
        geometry=raw.geometry,
        crs=CRS,
    )
    return gdf.sort_values("boro_ct2010", kind="stable").reset_index(drop=True)


def build_census_tracts(tracts: gpd.GeoDataFrame, out: Path) -> LayerReport:
    """census_tracts.parquet; checks that the population adds up to the 2010 census count."""
    report = LayerReport("census_tracts.parquet", SRC_TRACTS, len(tracts))
    total = int(tracts["population"].sum())
    print(f"  census tracts: population total {total:,}")
    if total != EXPECTED_POPULATION_2010:
        raise ValueError(f"population {total:,} != expected {EXPECTED_POPULATION_2010:,}")
    gdf = simplify_layer(tracts, "census_tracts", report, "boro_ct2010")
    write_geo(gdf, out / report.name)
    report.notes.append(f"population total {total:,} (official 2010 NYC count)")
    return report


def build_neighbourhoods(tracts: gpd.GeoDataFrame, out: Path) -> LayerReport:
    """neighbourhoods.parquet: NTAs made by dissolving the unsimplified tracts by nta_code."""
    report = LayerReport("neighbourhoods.parquet", SRC_TRACTS, 0)
    names = tracts.groupby("nta_code")[["nta_name", "boro_name"]].nunique()
    if (names > 1).any().any():
        raise ValueError("an nta_code maps to more than one nta_name / boro_name")
    gdf = tracts.dissolve(
        by="nta_code",
        aggfunc={"nta_name": "first", "boro_name": "first", "population": "sum"},
        sort=True,
    ).reset_index()
    gdf = gdf[["nta_code", "nta_name", "boro_name", "population", "geometry"]]
    gdf["population"] = gdf["population"].astype("int64")
    gdf = simplify_layer(gdf, "neighbourhoods", report, "nta_code")
    write_geo(gdf, out / report.name)
    report.rows = len(gdf)
    report.notes.append(f"population total {int(gdf['population'].sum()):,}")
    return report


def build_zip_areas(src: Path, out: Path) -> LayerReport:
    """zip_areas.parquet: zipcode, po_name, county, population; all parts kept."""
    report = LayerReport("zip_areas.parquet", SRC_ZIPS, 0)
    raw = read_polygons(src / SRC_ZIPS)
    gdf = gpd.GeoDataFrame(
        {
            "zipcode": text(raw["ZIPCODE"]),
            "po_name": text(raw["PO_NAME"]),
            "county": text(raw["COUNTY"]),
            "population": to_int(raw["POPULATION"], "zip POPULATION"),
            "_src_order": np.arange(len(raw)),
        },
        geometry=raw.geometry,
        crs=CRS,
    ).sort_values(["zipcode", "_src_order"], kind="stable")
    gdf = gdf.drop(columns="_src_order")
    gdf = simplify_layer(gdf, "zip_areas", report, "zipcode")
    write_geo(gdf, out / report.name)
    report.rows = len(gdf)
    dup = gdf["zipcode"].duplicated(keep=False)
    dedup_pop = int(gdf.drop_duplicates("zipcode")["population"].sum())
    report.notes.append(
        f"{int(dup.sum())} rows share a zipcode with another row "
        f"({gdf.loc[dup, 'zipcode'].nunique()} multi-part ZIPs); the source repeats the ZIP's "
        f"POPULATION on every part, so summing the column double-counts "
        f"({int(gdf['population'].sum()):,} vs {dedup_pop:,} counting each ZIP once)"
    )
    return report


def read_taxi_zones(src: Path) -> gpd.GeoDataFrame:
    """Read the taxi zones with the selected, renamed columns (unsimplified)."""
    raw = read_polygons(src / SRC_TAXI_ZONES)
    gdf = gpd.GeoDataFrame(
        {
            "location_id": raw["locationid"].astype("int64"),
            "zone": text(raw["zone"]),
            "borough": text(raw["borough"]),
            "_src_order": np.arange(len(raw)),
        },
        geometry=raw.geometry,
        crs=CRS,
    ).sort_values(["location_id", "_src_order"], kind="stable")
    return gdf.drop(columns="_src_order").reset_index(drop=True)


def build_taxi_zones(zones: gpd.GeoDataFrame, out: Path) -> LayerReport:
    """taxi_zones.parquet: location_id, zone, borough, geometry (all source rows kept)."""
    report = LayerReport("taxi_zones.parquet", SRC_TAXI_ZONES, len(zones))
    gdf = simplify_layer(zones, "taxi_zones", report, "zone")
    write_geo(gdf, out / report.name)
    counts = zones["location_id"].value_counts()
    dups = sorted(int(i) for i in counts[counts > 1].index)
    missing = sorted(set(range(1, 264)) - set(zones["location_id"].astype(int)))
    if dups or missing:
        report.notes.append(
            f"location_id values repeated in the source: {dups}; ids 1-263 without a polygon: "
            f"{missing} (kept as published); for the pickup points, rows sharing an id are "
            f"unioned"
        )
    return report


# --------------------------------------------------------------------------------------------
# Point tables
# --------------------------------------------------------------------------------------------


def zone_points(zones: gpd.GeoDataFrame) -> pd.DataFrame:
    """One representative point per location_id from the unsimplified zone polygons.

    Ids that occur on several rows are unioned first, so each id gets exactly one point.
    """
    merged = zones.dissolve(by="location_id", sort=True)
    pts = merged.geometry.representative_point()
    return pd.DataFrame(
        {"lon": np.round(pts.x.to_numpy(), 6), "lat": np.round(pts.y.to_numpy(), 6)},
        index=merged.index.astype("int64"),
    )


def build_taxi_pickups(src: Path, zones: gpd.GeoDataFrame, out: Path) -> LayerReport:
    """taxi_pickups.parquet: one row per trip, located at the pickup zone's representative point."""
    report = LayerReport("taxi_pickups.parquet", SRC_TAXI_TRIPS, 0)
    raw = read_csv_as_text(src / SRC_TAXI_TRIPS)
    width = max(5, len(str(len(raw))))
    fmt = "%Y-%m-%d %H:%M:%S"
    df = pd.DataFrame(
        {
            "trip_id": [f"tlc-2024-01-{i:0{width}d}" for i in range(1, len(raw) + 1)],
            "pickup_time": pd.to_datetime(raw["tpep_pickup_datetime"], format=fmt),
            "dropoff_time": pd.to_datetime(raw["tpep_dropoff_datetime"], format=fmt),
            "passenger_count": to_float(raw["passenger_count"], "passenger_count"),
            "trip_distance": to_float(raw["trip_distance"], "trip_distance"),
            "total_amount": to_float(raw["total_amount"], "total_amount"),
            "pu_location_id": to_int(raw["PULocationID"], "PULocationID"),
            "do_location_id": to_int(raw["DOLocationID"], "DOLocationID"),
        }
    )
    pts = zone_points(zones)
    df["lon"] = df["pu_location_id"].map(pts["lon"]).astype("float64")
    df["lat"] = df["pu_location_id"].map(pts["lat"]).astype("float64")
    df["located_by"] = "taxi zone representative point"
    df = df.sort_values("trip_id", kind="stable")
    schema = pa.schema(
        [
            ("trip_id", pa.string()),
            ("pickup_time", pa.timestamp("us")),
            ("dropoff_time", pa.timestamp("us")),
            ("passenger_count", pa.float64()),
            ("trip_distance", pa.float64()),
            ("total_amount", pa.float64()),
            ("pu_location_id", pa.int64()),
            ("do_location_id", pa.int64()),
            ("lon", pa.float64()),
            ("lat", pa.float64()),
            ("located_by", pa.string()),
        ]
    )
    write_table(df, schema, out / report.name)
    report.rows = len(df)
    unlocated = df["lat"].isna()
    ids = sorted(int(i) for i in df.loc[unlocated, "pu_location_id"].dropna().unique())
    report.notes.append(
        f"{int(unlocated.sum())} trips have a pickup zone id without a polygon {ids} and keep "
        f"NaN lat/lon; pickups span {df['pickup_time'].min()} to {df['pickup_time'].max()} "
        f"(naive local NYC time, as published)"
    )
    return report


def point_schema(fields: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """Build an Arrow schema from (name, type) pairs."""
    return pa.schema(fields)


def coordinate_note(df: pd.DataFrame, lon: str, lat: str) -> str:
    """Describe how many rows lack coordinates and the coordinate range of the others."""
    missing = int((df[lon].isna() | df[lat].isna()).sum())
    have = df.dropna(subset=[lon, lat])
    rng = (
        f"lon {have[lon].min():.6f}…{have[lon].max():.6f}, "
        f"lat {have[lat].min():.6f}…{have[lat].max():.6f}"
        if len(have)
        else "no coordinates"
    )
    return f"{missing} rows without coordinates (kept); {rng}"


def build_food_stores(src: Path, out: Path) -> LayerReport:
    """food_stores.parquet from the data.ny.gov Retail Food Stores extract."""
    report = LayerReport("food_stores.parquet", SRC_FOOD, 0)
    raw = read_csv_as_text(src / SRC_FOOD)
    number = raw["Street Number"].fillna("")
    street = raw["Street Name"].fillna("")
    address = (number + " " + street).str.strip().replace("", None)
    df = pd.DataFrame(
        {
            "license_number": text(raw["License Number"]),
            "county": text(raw["County"]),
            "operation_type": text(raw["Operation Type"]),
            "establishment_type": text(raw["Establishment Type"]),
            "entity_name": text(raw["Entity Name"]),
            "dba_name": text(raw["DBA Name"]),
            "address": text(address),
            "city": text(raw["City"]),
            "zip_code": text(raw["Zip Code"]),
            "square_footage": to_int(raw["Square Footage"], "Square Footage"),
            "lon": to_float(raw["lon"], "food lon"),
            "lat": to_float(raw["lat"], "food lat"),
        }
    )
    key = pd.to_numeric(df["license_number"], errors="coerce")
    df = (
        df.assign(_k=key)
        .sort_values(["_k", "license_number"], kind="stable", na_position="last")
        .drop(columns="_k")
    )
    schema = point_schema(
        [
            ("license_number", pa.string()),
            ("county", pa.string()),
            ("operation_type", pa.string()),
            ("establishment_type", pa.string()),
            ("entity_name", pa.string()),
            ("dba_name", pa.string()),
            ("address", pa.string()),
            ("city", pa.string()),
            ("zip_code", pa.string()),
            ("square_footage", pa.int64()),
            ("lon", pa.float64()),
            ("lat", pa.float64()),
        ]
    )
    write_table(df, schema, out / report.name)
    report.rows = len(df)
    report.notes.append(coordinate_note(df, "lon", "lat"))
    return report


def build_osm_points(src: Path, rel: str, name: str, out: Path) -> LayerReport:
    """osm_pois.parquet / gov_service_points.parquet: osm_id, name, fclass, lon, lat, borough."""
    report = LayerReport(name, rel, 0)
    raw = read_csv_as_text(src / rel)
    df = pd.DataFrame(
        {
            "osm_id": to_int(raw["osm_id"], f"{rel} osm_id"),
            "name": text(raw["name"]),
            "fclass": text(raw["fclass"]),
            "lon": to_float(raw["lon"], f"{rel} lon"),
            "lat": to_float(raw["lat"], f"{rel} lat"),
            "borough": text(raw["borough"]),
        }
    ).sort_values("osm_id", kind="stable")
    schema = point_schema(
        [
            ("osm_id", pa.int64()),
            ("name", pa.string()),
            ("fclass", pa.string()),
            ("lon", pa.float64()),
            ("lat", pa.float64()),
            ("borough", pa.string()),
        ]
    )
    write_table(df, schema, out / report.name)
    report.rows = len(df)
    report.notes.append(coordinate_note(df, "lon", "lat"))
    report.notes.append(f"{df['fclass'].nunique()} distinct fclass values")
    return report


ZIP_FLOAT_SUFFIX = re.compile(r"\.0$")


def build_311(src: Path, out: Path) -> LayerReport:
    """service_requests_311.parquet: all columns; dates kept as the CSV's text."""
    report = LayerReport("service_requests_311.parquet", SRC_311, 0)
    raw = read_csv_as_text(src / SRC_311)
    text_cols = [
        "created_date",
        "closed_date",
        "agency",
        "agency_name",
        "complaint_type",
        "descriptor",
        "location_type",
        "incident_zip",
        "status",
        "borough",
        "source_sample",
    ]
    df = pd.DataFrame({"unique_key": to_int(raw["unique_key"], "unique_key")})
    for col in text_cols:
        df[col] = text(raw[col])
    df["incident_zip"] = text(
        df["incident_zip"].map(lambda z: None if z is None else ZIP_FLOAT_SUFFIX.sub("", z))
    )
    df["latitude"] = to_float(raw["latitude"], "311 latitude")
    df["longitude"] = to_float(raw["longitude"], "311 longitude")
    df = df.sort_values("unique_key", kind="stable")
    order = [
        "unique_key",
        "created_date",
        "closed_date",
        "agency",
        "agency_name",
        "complaint_type",
        "descriptor",
        "location_type",
        "incident_zip",
        "status",
        "borough",
        "latitude",
        "longitude",
        "source_sample",
    ]
    types = {"unique_key": pa.int64(), "latitude": pa.float64(), "longitude": pa.float64()}
    schema = point_schema([(c, types.get(c, pa.string())) for c in order])
    write_table(df, schema, out / report.name)
    report.rows = len(df)
    report.notes.append(coordinate_note(df, "longitude", "latitude"))
    created_bad = int(
        pd.to_datetime(df["created_date"], format="%Y-%m-%d %H:%M:%S", errors="coerce").isna().sum()
    )
    closed_missing = int(df["closed_date"].isna().sum())
    report.notes.append(
        f"created_date unparseable/missing: {created_bad}; closed_date missing: {closed_missing}"
    )
    return report


def build_wifi(src: Path, out: Path) -> LayerReport:
    """wifi_hotspots.parquet from the NYC Wi-Fi Hotspot Locations export."""
    report = LayerReport("wifi_hotspots.parquet", SRC_WIFI, 0)
    raw = read_csv_as_text(src / SRC_WIFI)
    df = pd.DataFrame(
        {
            "object_id": to_int(raw["OBJECTID"], "OBJECTID"),
            "borough_name": text(raw["Borough Name"]),
            "type": text(raw["Type"]),
            "provider": text(raw["Provider"]),
            "name": text(raw["Name"]),
            "location": text(raw["Location"]),
            "ssid": text(raw["SSID"]),
            "activated": text(raw["Activated"]),
            "nta_code": text(raw["Neighborhood Tabulation Area Code (NTACODE)"]),
            "nta_name": text(raw["Neighborhood Tabulation Area (NTA)"]),
            "latitude": to_float(raw["Latitude"], "wifi Latitude"),
            "longitude": to_float(raw["Longitude"], "wifi Longitude"),
        }
    ).sort_values("object_id", kind="stable")
    types = {"object_id": pa.int64(), "latitude": pa.float64(), "longitude": pa.float64()}
    schema = point_schema([(c, types.get(c, pa.string())) for c in df.columns])
    write_table(df, schema, out / report.name)
    report.rows = len(df)
    report.notes.append(coordinate_note(df, "longitude", "latitude"))
    placeholder = int((df["activated"] == "09/09/9999").sum())
    report.notes.append(f"activated is the placeholder '09/09/9999' on {placeholder} rows")
    return report


# --------------------------------------------------------------------------------------------
# PROVENANCE.md
# --------------------------------------------------------------------------------------------

LICENCE_NYC = (
    "NYC Open Data. NYC Local Law 11 of 2012 (Admin. Code §23-502(d)) requires published "
    "datasets to be available without registration requirement, license requirement or usage "
    "restrictions; the portal Terms of Use add a no-warranty disclaimer and ask re-publishers "
    "to identify source, version and changes (this file does that)."
)
LICENCE_OPEN_NY = (
    "data.ny.gov, Open NY terms: permissive, no attribution or share-alike required, "
    "commercial use allowed, only lawful use required."
)
LICENCE_ODBL = (
    "**Open Database License (ODbL) 1.0, © OpenStreetMap contributors.** This file is a "
    "derived database of OpenStreetMap data and is itself licensed under ODbL 1.0: attribute "
    '"© OpenStreetMap contributors" and keep any redistributed derived database under ODbL '
    "(share-alike)."
)

ORIGINS: dict[str, tuple[str, str]] = {
    "boroughs.parquet": (
        'NYC Dept. of City Planning, "Borough Boundaries" release 16A, as bundled in the PyPI '
        "wheel `geopandas==0.14.4` (`geopandas/datasets/nybb_16a.zip`; geopandas is "
        "BSD-3-Clause). Staged copy re-projected EPSG:2263 → EPSG:4326.",
        LICENCE_NYC,
    ),
    "neighbourhoods.parquet": (
        "Derived from the 2010 census tracts below (NYC Open Data 2010 Census Tracts joined "
        'with "New York City Population By Census Tracts"), via GitHub `keplergl/kepler.gl-data` '
        "(Apache-2.0) `nyc_census/data.json` @ 2deaa09.",
        LICENCE_NYC,
    ),
    "census_tracts.parquet": (
        'NYC Open Data 2010 Census Tracts joined with "New York City Population By Census '
        'Tracts", via GitHub `keplergl/kepler.gl-data` (Apache-2.0) `nyc_census/data.json` '
        "@ 2deaa09.",
        LICENCE_NYC,
    ),
    "zip_areas.parquet": (
        'NYC DoITT "ZIP_CODE" boundary shapefile (NYC Open Data), via GitHub '
        "`kexinjiao/4501-final-project` `data/nyc_zipcodes.*` @ 8ed87ec (the repo has no "
        "LICENSE file; the data is NYC Open Data). Staged copy re-projected EPSG:2263 → 4326.",
        LICENCE_NYC,
    ),
    "taxi_zones.parquet": (
        'NYC TLC "Taxi Zones" (NYC Open Data GeoJSON export), via GitHub '
        "`Nittz/nyc-taxi-dashboard` `data/NYC Taxi Zones.geojson` @ 2645e2a (the repo has no "
        "LICENSE file; the data is NYC Open Data).",
        LICENCE_NYC,
    ),
    "taxi_pickups.parquet": (
        "NYC TLC Yellow Taxi Trip Records, January 2024 (first 10,000 rows of the month's "
        "file), via GitHub `hfxcarl/databricks-demo-nyc-taxi` `data/nyc_taxi_sample.csv` "
        "@ 5f48a2c (its LICENSE file is empty; the data is NYC Open Data). Pickup locations "
        "come from the TLC Taxi Zones (see taxi_zones.parquet).",
        LICENCE_NYC,
    ),
    "food_stores.parquet": (
        'data.ny.gov "Retail Food Stores" (9a8c-vfzj), NYS Dept. of Agriculture & Markets, '
        "via GitHub `wilcoxen-courses/x430-distance` `Retail_Food_Stores.csv` @ 7651f9a (the "
        "repo has no LICENSE file). Staged copy filtered to the five NYC counties, lon/lat "
        "parsed from the `Georeference` WKT.",
        LICENCE_OPEN_NY,
    ),
    "osm_pois.parquet": (
        'OpenStreetMap POIs as of 2017 (Geofabrik "pois" schema), via GitHub '
        "`Liyue-Chen/STContext` `Data/POI/POI_NYC-2017.xls` @ 30615d4 (the repo has no "
        "LICENSE file). Staged copy clipped to the five boroughs with a `borough` column added.",
        LICENCE_ODBL,
    ),
    "gov_service_points.parquet": (
        "Subset of the OpenStreetMap 2017 POIs above (fclass in town_hall, courthouse, police, "
        "fire_station, post_office, library, embassy, prison, community_centre, "
        "public_building), selected when the data was staged.",
        LICENCE_ODBL,
    ),
    "service_requests_311.parquet": (
        'NYC Open Data "311 Service Requests from 2010 to Present" (erm2-nwe9), four '
        "extracts combined when staged (column names snake_cased, dates parsed to ISO text, "
        "deduplicated on unique_key, `source_sample` added): plotly/datasets @ 0c447c4 "
        "`311_Animals_short.csv` (MIT repo); YangziXinJas/COMS6111-proj3 @ aad79e6; "
        "fedhere/PyBOOT @ 93b2c19; kexinjiao/4501-final-project @ 8ed87ec (no LICENSE files; "
        "the data is NYC Open Data). Small time-sliced samples, not a continuous record.",
        LICENCE_NYC,
    ),
    "wifi_hotspots.parquet": (
        'NYC Open Data "NYC Wi-Fi Hotspot Locations" (DoITT), snapshot ≤ 2021-02, via GitHub '
        "`kcorlay/DDDI21` `NYC_Wi-Fi_Hotspot_Locations.csv` @ a304fd1 (the repo has no LICENSE "
        "file; the data is NYC Open Data).",
        LICENCE_NYC,
    ),
}

CHANGES: dict[str, str] = {
    "boroughs.parquet": "Columns BoroCode → boro_code (int), BoroName → boro_name.",
    "neighbourhoods.parquet": (
        "Census tracts (unsimplified) dissolved by `ntacode`; nta_name and boro_name taken from "
        "the tracts (one value per code), population = sum of tract Population."
    ),
    "census_tracts.parquet": (
        "Columns boro_ct2010, ctlabel → ct_label, ntacode → nta_code, ntaname → nta_name, "
        "boro_name, Population → population (int)."
    ),
    "zip_areas.parquet": (
        "Columns ZIPCODE → zipcode, PO_NAME → po_name, COUNTY → county, POPULATION → "
        "population (int). All 263 source rows kept, including the several parts of multi-part "
        "ZIPs."
    ),
    "taxi_zones.parquet": "Columns locationid → location_id (int), zone, borough. All rows kept.",
    "taxi_pickups.parquet": (
        'One row per trip. trip_id = "tlc-2024-01-" + the 1-based row number in the CSV, '
        "zero-padded. tpep_pickup_datetime/tpep_dropoff_datetime → pickup_time/dropoff_time "
        "(naive timestamps, local NYC time as in the file); passenger_count, trip_distance, "
        "total_amount, PULocationID → pu_location_id, DOLocationID → do_location_id; other "
        "columns dropped. **The trips have no coordinates**: lat/lon are the "
        "`representative_point()` of the pickup taxi zone, computed on the *unsimplified* zone "
        "polygon (rows sharing a location_id are unioned first) and rounded to 6 decimals; "
        '`located_by` = "taxi zone representative point". Zone ids without a polygon '
        "(264/265 = unknown) keep NaN lat/lon."
    ),
    "food_stores.parquet": (
        "Columns License Number → license_number (text), County → county, Operation Type, "
        "Establishment Type, Entity Name, DBA Name (snake_cased), address = Street Number + ' ' "
        "+ Street Name, City → city, Zip Code → zip_code (text), Square Footage → "
        "square_footage (int; 0 means not reported), lon, lat. Dropped: Address Line 2/3 "
        "(always empty), State, Georeference (same as lon/lat)."
    ),
    "osm_pois.parquet": "Columns osm_id (int), name, fclass, lon, lat, borough, unchanged.",
    "gov_service_points.parquet": (
        "Columns osm_id (int), name, fclass, lon, lat, borough, unchanged."
    ),
    "service_requests_311.parquet": (
        "All columns kept. created_date/closed_date stay text exactly as in the CSV (the app "
        "parses them and counts unparseable ones); incident_zip stored as text with the "
        'trailing ".0" removed; unique_key int, latitude/longitude float.'
    ),
    "wifi_hotspots.parquet": (
        "Columns OBJECTID → object_id (int), Borough Name → borough_name, Type, Provider, Name, "
        'Location (the text column, not "Location (Lat, Long)"), SSID, Activated (text as in '
        "the file, MM/DD/YYYY), NTACODE → nta_code, NTA → nta_name, Latitude, Longitude. "
        "Dropped: borough number, X/Y (EPSG:2263), remarks, city, source/BIN/BBL ids etc."
    ),
}


def write_provenance(out: Path, reports: list[LayerReport]) -> None:
    """Write PROVENANCE.md describing every output file."""
    lines = [
        "# NYC demo data: provenance",
        "",
        "Generated by `scripts/build_demo_city.py` from the staged NYC open data described in "
        "`shared/data/nyc/SOURCES.md`. Do not edit by hand; rebuild with:",
        "",
        "```",
        "python scripts/build_demo_city.py",
        "```",
        "",
        "(options: `--source DIR`, default `../shared/data/nyc` relative to the repository "
        "root; `--out DIR`, default `cities/nyc/data`).",
        "",
        "## General processing",
        "",
        "* All files are EPSG:4326 (lon/lat). Point tables are Parquet (pyarrow, zstd); polygon "
        "layers are GeoParquet written with `GeoDataFrame.to_parquet` (zstd).",
        "* Only format conversion and column selection / snake_case renaming. Rows with missing "
        "or bad coordinates or dates are **not** dropped and values are **not** corrected: the "
        "app counts such rows as rejections. Rows are sorted by a stable key.",
        f"* Polygons: `shapely.simplify(tolerance={SIMPLIFY_TOLERANCE}°, "
        "preserve_topology=True)` (about 5 m), then coordinates rounded to 6 decimals with "
        f"`shapely.set_precision(grid_size={GRID_SIZE:g})`; all geometries are valid. Each "
        "polygon is simplified on its own, so boundaries shared by neighbouring polygons can "
        "show gaps/overlaps of a few metres. Area change measured in EPSG:2263.",
        '* Exception to "no derived values": taxi trips have no coordinates; they are placed '
        "at the representative point of their pickup taxi zone (see below).",
        "",
        "## Licences",
        "",
        "* NYC Open Data files: " + LICENCE_NYC,
        "* " + LICENCE_OPEN_NY,
        "* OpenStreetMap-derived files (`osm_pois.parquet`, `gov_service_points.parquet`) are "
        "under the **Open Database License (ODbL) 1.0, © OpenStreetMap contributors**. These "
        "two files are derived databases and remain under ODbL 1.0 (attribution and "
        "share-alike); the rest of this directory is not OpenStreetMap data.",
        "",
        "## Files",
        "",
        "| file | rows | shared source file | licence |",
        "|---|---:|---|---|",
    ]
    short = {
        LICENCE_NYC: "NYC Open Data",
        LICENCE_OPEN_NY: "Open NY terms",
        LICENCE_ODBL: "ODbL 1.0",
    }
    for r in reports:
        lines.append(f"| `{r.name}` | {r.rows:,} | `{r.source}` | {short[ORIGINS[r.name][1]]} |")
    lines.append("")
    for r in reports:
        origin, licence = ORIGINS[r.name]
        lines += [
            f"### {r.name}",
            "",
            f"* Source: `shared/data/nyc/{r.source}`.",
            f"* Origin: {origin}",
            f"* Licence: {licence}",
            f"* Changes: {CHANGES[r.name]}",
        ]
        if r.area_change is not None and r.max_feature_area_change is not None:
            lines.append(
                f"* Simplification: tolerance {SIMPLIFY_TOLERANCE}°, coordinates rounded to 6 "
                f"decimals; total area change {r.area_change:.3%} (largest change of a single "
                f"feature {r.max_feature_area_change:.3%}: {r.max_feature_label})."
            )
        lines.append(f"* Rows: {r.rows:,}.")
        lines += [f"* Note: {n}." for n in r.notes]
        lines.append("")
    (out / "PROVENANCE.md").write_text("\n".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def resolve_dir(value: Path | None, default: Path) -> Path:
    """Explicit paths are taken as given (relative to the CWD); defaults are repo-relative."""
    if value is not None:
        return value.resolve()
    return (REPO_ROOT / default).resolve()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help=f"staged NYC data directory (default: {DEFAULT_SOURCE} relative to the repo root)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output directory (default: {DEFAULT_OUT} relative to the repo root)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build every output file, PROVENANCE.md, and print a summary."""
    args = parse_args(argv)
    src = resolve_dir(args.source, DEFAULT_SOURCE)
    out = resolve_dir(args.out, DEFAULT_OUT)
    if not (src / "SOURCES.md").is_file():
        raise SystemExit(f"{src} does not look like the staged NYC data (no SOURCES.md)")
    out.mkdir(parents=True, exist_ok=True)
    print(f"source: {src}\nout:    {out}")

    tracts = read_tracts(src)
    zones = read_taxi_zones(src)
    reports = [
        build_boroughs(src, out),
        build_neighbourhoods(tracts, out),
        build_census_tracts(tracts, out),
        build_zip_areas(src, out),
        build_taxi_zones(zones, out),
        build_taxi_pickups(src, zones, out),
        build_food_stores(src, out),
        build_osm_points(src, SRC_OSM, "osm_pois.parquet", out),
        build_311(src, out),
        build_osm_points(src, SRC_GOV, "gov_service_points.parquet", out),
        build_wifi(src, out),
    ]
    write_provenance(out, reports)

    total = 0
    print("\nfile                              rows      bytes")
    for r in reports:
        size = (out / r.name).stat().st_size
        total += size
        print(f"{r.name:30s} {r.rows:7,d} {size:10,d}")
    print(f"{'total':30s} {'':7s} {total:10,d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
