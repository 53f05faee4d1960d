"""Synthetic test cities: files shaped like a real city's open-data exports, but not New York's.

**Everything here is invented** (seeded random numbers). Two cities are described:

``TESTBURG`` (测试堡)
    A made-up city placed on Boston's coordinates, so that its projected sources use
    Massachusetts State Plane (EPSG:26986, metres) the way a Massachusetts city's
    exports would. Boston-311-like requests (``case_enquiry_id``, ``open_dt`` as
    ``MM/DD/YYYY hh:mm:ss AM``, ``type``) in State Plane ``x_coord``/``y_coord``;
    business licences as a semicolon-separated Latin-1 file; bike-share trips; street
    assets; neighbourhood polygons (GeoJSON, one of them with an island, population in
    ``pop2020``); zoning districts (GeoPackage in EPSG:26986); wards (Shapefile);
    city offices as points in a State Plane GeoPackage.
``CESHI`` (测试镇)
    A small made-up city on Hangzhou's coordinates, exported the way Chinese systems
    do: 12345-hotline requests with Chinese column names in GCJ-02 (a UTF-8 file with
    a byte-order mark), shops from a map provider in BD-09, land units in CGCS2000 /
    Gauss-Kruger (EPSG:4547), offices as GCJ-02 GeoJSON.

Each city gets a few malformed rows of the kinds real exports carry (unparseable and
blank coordinates, unparseable and blank dates, a short and a long line, a repeated
id, a point at (0, 0), a latitude out of range, a polygon without population), and
:class:`SyntheticCity` records what citybrain should make of every file: the rows it
should keep with their true WGS84 positions, and the rejections by reason.

Points are placed at least ~1.4 m from the edges of their H3 resolution-10 cell, so
expected cells computed from the true positions cannot differ from citybrain's by a
reprojection's rounding. ``write_city(folder)`` writes the files and ``city.toml``::

    city = write_city(tmp_path)                 # Testburg, seed 7
    city.config_path                            # tmp_path / "city.toml"
    city.sources["requests"].truth              # id, lat, lon, … of the rows to keep
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

#: Column of :attr:`WrittenSource.table` naming what is wrong with a record (None: nothing).
DEFECT = "_defect"
#: Columns of :attr:`WrittenSource.table` holding a record's true WGS84 position.
TRUE_LAT, TRUE_LON = "_lat", "_lon"

#: What citybrain's normaliser counts when it reads each defect from a file.
FILE_REASONS = {
    "short line": "missing coordinates",  # a truncated line: the fields after the cut are empty
    "long line": "malformed line",  # more fields than the header: the CSV reader skips it
    "superseded": "duplicate id",  # an older version of a row exported again later
}


def file_reason(defect: str) -> str:
    """The rejection reason citybrain reports for a defect in a file."""
    return FILE_REASONS.get(defect, defect)


@dataclass(frozen=True)
class RequestFormat:
    """How one city exports its service requests: column names, time format, CRS."""

    id: str
    opened: str
    closed: str
    status: str
    category: str
    agency: str
    channel: str
    description: str
    x: str
    y: str
    time_format: str
    crs: str
    encoding: str = "utf-8"
    unparseable_time: str = "13/45/2024 25:61:00 PM"
    categories: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    statuses: tuple[str, str] = ("Open", "Closed")


@dataclass(frozen=True)
class CitySpec:
    """What one synthetic city is: where, how big, and in which shapes its data come."""

    key: str
    name: str
    name_zh: str
    center_lat: float
    center_lon: float
    zoom: float
    timezone: str
    language: str
    #: Half the side of the city's square, in km.
    half_km: float
    #: Neighbourhood grid (columns, rows); the last neighbourhood also gets an island.
    grid: tuple[int, int]
    neighbourhood_names: tuple[str, ...]
    requests: RequestFormat
    #: CRS of the business points ("EPSG:4326" or "BD-09") and of the land-unit files.
    businesses_crs: str
    land_crs: str
    #: How the offices (government service points) come: a projected GeoPackage, or GCJ-02 GeoJSON.
    offices_crs: str
    n_requests: int
    n_businesses: int
    n_trips: int
    n_assets: int
    n_offices: int
    header_comment: str = ""


TESTBURG = CitySpec(
    key="testburg",
    name="Testburg",
    name_zh="测试堡",
    center_lat=42.33,
    center_lon=-71.07,
    zoom=11.5,
    timezone="America/New_York",
    language="en",
    half_km=4.0,
    grid=(3, 3),
    neighbourhood_names=("Harbourside", "Mill Hill", "Côte-Verte", "Old Town", "Fenwick",
                         "Riverbend", "Northgate", "Saint-Aubin Heights", "Eastfield Islands"),
    requests=RequestFormat(
        id="case_enquiry_id", opened="open_dt", closed="closed_dt", status="case_status",
        category="type", agency="department", channel="source", description="case_title",
        x="x_coord", y="y_coord", time_format="%m/%d/%Y %I:%M:%S %p", crs="EPSG:26986",
        categories=("Pothole Repair", "Street Light Outage", "Graffiti Removal", "Missed Trash",
                    "Tree Maintenance", "Sidewalk Repair"),
        agencies=("PWDx", "BTDT", "PARK", "ISD"),
        channels=("Citizens Connect App", "Constituent Call", "Self Service", "Employee Generated"),
    ),
    businesses_crs="EPSG:4326",
    land_crs="EPSG:26986",
    offices_crs="EPSG:26986",
    n_requests=400,
    n_businesses=150,
    n_trips=300,
    n_assets=200,
    n_offices=6,
)

CESHI = CitySpec(
    key="ceshi",
    name="Ceshi Town",
    name_zh="测试镇",
    center_lat=30.27,
    center_lon=120.15,
    zoom=12.5,
    timezone="Asia/Shanghai",
    language="zh-CN",
    half_km=2.0,
    grid=(2, 2),
    neighbourhood_names=("西湖片区", "湖滨", "北山", "南屏"),
    requests=RequestFormat(
        id="工单编号", opened="受理时间", closed="办结时间", status="办理状态",
        category="诉求类型", agency="承办单位", channel="来源渠道", description="诉求内容",
        x="经度", y="纬度", time_format="%Y/%m/%d %H:%M:%S", crs="GCJ-02", encoding="utf-8-sig",
        unparseable_time="2024年13月45日", categories=("噪音扰民", "道路破损", "垃圾清运", "路灯故障"),
        agencies=("城管局", "交通局", "住建局"), channels=("12345热线", "微信", "网站"),
        statuses=("办理中", "已办结"),
    ),
    businesses_crs="BD-09",
    land_crs="EPSG:4547",
    offices_crs="GCJ-02",
    n_requests=80,
    n_businesses=40,
    n_trips=40,
    n_assets=30,
    n_offices=4,
)


@dataclass
class WrittenSource:
    """One source file as written, and what citybrain should make of it."""

    name: str
    layer: str
    role: str
    path: Path
    #: The rows citybrain should keep, by id: ``id``, true WGS84 ``lat``/``lon`` (point
    #: roles) or ``geometry`` (area roles), and normalised attributes.
    truth: pd.DataFrame
    #: What citybrain should reject when reading the file, by reason.
    rejected: Counter[str]
    #: Every record as exported (text columns as in the file), with :data:`DEFECT`,
    #: :data:`TRUE_LAT` and :data:`TRUE_LON`, for loading the same data elsewhere.
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class SyntheticCity:
    """A generated city: its folder, config and sources."""

    spec: CitySpec
    directory: Path
    config_path: Path
    sources: dict[str, WrittenSource]
    #: The neighbourhoods in WGS84: ``nbhd_id``, ``name``, ``pop2020`` (None for one), geometry.
    neighbourhoods: gpd.GeoDataFrame


# ---------------------------------------------------------------- coordinates
_GCJ_A = 6378245.0  # the Krasovsky semi-major axis the published GCJ-02 formula uses
_GCJ_EE = 0.00669342162296594323
_BD_FACTOR = math.pi * 3000.0 / 180.0


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The published GCJ-02 forward formula (valid inside China, where the test city lies)."""
    x, y = lon - 105.0, lat - 35.0
    wave = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + wave
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + wave
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    radians = math.radians(lat)
    magic = 1.0 - _GCJ_EE * math.sin(radians) ** 2
    dlat = dlat * 180.0 / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * math.sqrt(magic)) * math.pi)
    dlon = dlon * 180.0 / (_GCJ_A / math.sqrt(magic) * math.cos(radians) * math.pi)
    return lon + dlon, lat + dlat


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Baidu's BD-09: GCJ-02, then the published BD-09 rotation and offset."""
    gx, gy = wgs84_to_gcj02(lon, lat)
    z = math.hypot(gx, gy) + 0.00002 * math.sin(gy * _BD_FACTOR)
    theta = math.atan2(gy, gx) + 0.000003 * math.cos(gx * _BD_FACTOR)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def forward(crs: str) -> Callable[[float, float], tuple[float, float]]:
    """WGS84 (lon, lat) → coordinates in ``crs`` (an EPSG code, GCJ-02 or BD-09)."""
    if crs == "GCJ-02":
        return wgs84_to_gcj02
    if crs == "BD-09":
        return wgs84_to_bd09
    if crs == "EPSG:4326":
        return lambda lon, lat: (lon, lat)
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return lambda lon, lat: transformer.transform(lon, lat)


def coordinate_text(crs: str, value: float) -> str:
    """Coordinates as an export writes them: millimetres when projected, else 1e-8 degrees."""
    projected = crs not in ("EPSG:4326", "GCJ-02", "BD-09")
    return f"{value:.3f}" if projected else f"{value:.8f}"


def far_from_cell_edges(lat: float, lon: float, res: int = 10, metres: float = 1.5) -> bool:
    """True when moving ``metres`` in any of eight directions stays in the same H3 cell."""
    cell = h3.latlng_to_cell(lat, lon, res)
    dlat = metres / 110_574.0
    dlon = metres / (111_320.0 * math.cos(math.radians(lat)))
    for angle in range(0, 360, 45):
        a = math.radians(angle)
        if h3.latlng_to_cell(lat + dlat * math.sin(a), lon + dlon * math.cos(a), res) != cell:
            return False
    return True


# ------------------------------------------------------------------ geometry
class _Frame:
    """The city's square in degrees, and seeded sampling inside it."""

    def __init__(self, spec: CitySpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.dlat = spec.half_km / 110.574
        self.dlon = spec.half_km / (111.320 * math.cos(math.radians(spec.center_lat)))
        self.west, self.east = spec.center_lon - self.dlon, spec.center_lon + self.dlon
        self.south, self.north = spec.center_lat - self.dlat, spec.center_lat + self.dlat

    def points(self, n: int, margin: float = 0.03) -> list[tuple[float, float]]:
        """``n`` (lat, lon) points inside the square, rounded to 1e-7°, away from cell edges."""
        out: list[tuple[float, float]] = []
        while len(out) < n:
            lat = round(float(self.rng.uniform(self.south + margin * self.dlat,
                                               self.north - margin * self.dlat)), 7)
            lon = round(float(self.rng.uniform(self.west + margin * self.dlon,
                                               self.east - margin * self.dlon)), 7)
            if far_from_cell_edges(lat, lon):
                out.append((lat, lon))
        return out

    def grid(self, cols: int, rows: int, bounds: tuple[float, float, float, float] | None = None,
             jitter: float = 0.2) -> list[shapely.Polygon]:
        """Quadrilaterals tiling ``bounds`` (default: the square), inner corners jittered."""
        west, south, east, north = bounds or (self.west, self.south, self.east, self.north)
        xs = np.linspace(west, east, cols + 1)
        ys = np.linspace(south, north, rows + 1)
        corners = np.empty((cols + 1, rows + 1, 2))
        for i, x in enumerate(xs):
            for j, y in enumerate(ys):
                inner = 0 < i < cols and 0 < j < rows
                sx = (east - west) / cols * jitter * float(self.rng.uniform(-1, 1)) if inner else 0.0
                sy = (north - south) / rows * jitter * float(self.rng.uniform(-1, 1)) if inner else 0.0
                corners[i, j] = (x + sx, y + sy)
        return [shapely.Polygon([corners[i, j], corners[i + 1, j], corners[i + 1, j + 1],
                                 corners[i, j + 1]])
                for j in range(rows) for i in range(cols)]


# ------------------------------------------------------------------- writing
def _write_csv(path: Path, header: Sequence[str], records: list[list[str]], defects: list[str | None],
               delimiter: str = ",", encoding: str = "utf-8") -> None:
    """Write records as an export would, truncating or extending the defective lines."""
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(header)
        for record, defect in zip(records, defects, strict=True):
            if defect == "short line":
                record = record[:3]  # the export was cut off after the third field
            elif defect == "long line":
                record = [*record, "unexpected", "extra fields"]
            writer.writerow(record)


def _with_defects(rng: np.random.Generator, good: list[dict[str, Any]],
                  bad: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Good and defective records shuffled together (deterministically)."""
    records = good + bad
    order = rng.permutation(len(records))
    return [records[i] for i in order]


def _table(records: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=[*columns, DEFECT, TRUE_LAT, TRUE_LON])


def _rejections(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(file_reason(r[DEFECT]) for r in records if r.get(DEFECT))


def _truth(records: list[dict[str, Any]], id_column: str, **attributes: str) -> pd.DataFrame:
    """The rows citybrain keeps (last version per id), under normalised names."""
    kept = [r for r in records if not r.get(DEFECT)]
    frame = pd.DataFrame({
        "id": [str(r[id_column]) for r in kept],
        "lat": [r[TRUE_LAT] for r in kept],
        "lon": [r[TRUE_LON] for r in kept],
        **{name: [r.get(column) for r in kept] for name, column in attributes.items()},
    })
    assert not frame["id"].duplicated().any(), "a kept id twice: the generator is wrong"
    return frame


def _requests(spec: CitySpec, frame: _Frame, rng: np.random.Generator, directory: Path) -> WrittenSource:
    fmt = spec.requests
    to_crs = forward(fmt.crs)
    start = datetime(2024, 5, 1, 0, 0, 0)  # May: no daylight-saving change in either city
    columns = [fmt.id, fmt.opened, fmt.closed, fmt.status, fmt.category, fmt.agency, fmt.channel,
               fmt.description, fmt.x, fmt.y]
    records: list[dict[str, Any]] = []
    for n, (lat, lon) in enumerate(frame.points(spec.n_requests)):
        opened = start + timedelta(seconds=int(rng.integers(0, 30 * 86400)))
        closed = opened + timedelta(minutes=int(rng.integers(30, 6 * 24 * 60))) \
            if rng.random() < 0.6 else None
        x, y = to_crs(lon, lat)
        category = str(rng.choice(fmt.categories))
        records.append({
            fmt.id: str(101005000000 + 17 * n), fmt.opened: opened.strftime(fmt.time_format),
            fmt.closed: closed.strftime(fmt.time_format) if closed else "",
            fmt.status: fmt.statuses[1] if closed else fmt.statuses[0],
            fmt.category: category, fmt.agency: str(rng.choice(fmt.agencies)),
            fmt.channel: str(rng.choice(fmt.channels)),
            # A comma inside a quoted field, as free text has.
            fmt.description: f"{category}, reported near house {int(rng.integers(1, 400))}",
            fmt.x: coordinate_text(fmt.crs, x), fmt.y: coordinate_text(fmt.crs, y),
            DEFECT: None, TRUE_LAT: lat, TRUE_LON: lon,
        })
    # An older version of one request, exported before it was closed: the later row wins.
    closed_one = next(r for r in records if r[fmt.closed])
    older = {**closed_one, fmt.closed: "", fmt.status: fmt.statuses[0], DEFECT: "superseded"}
    bad = [older]
    ids = iter(range(900_000, 900_100))

    def broken(defect: str, **changes: str) -> dict[str, Any]:
        base = dict(records[int(rng.integers(0, len(records)))])
        return {**base, fmt.id: str(101005000000 + next(ids)), DEFECT: defect,
                TRUE_LAT: None, TRUE_LON: None, **changes}

    bad += [
        broken("unparseable coordinates", **{fmt.x: "#VALUE!", fmt.y: "#VALUE!"}),
        broken("missing coordinates", **{fmt.x: "", fmt.y: ""}),
        # "n/a" is one of the CSV reader's not-available markers: missing, not unparseable.
        broken("missing coordinates", **{fmt.x: "n/a", fmt.y: "n/a"}),
        # A placeholder of zeros, in the file's own CRS (not WGS84 (0, 0) once converted).
        broken("coordinates at (0, 0)", **{fmt.x: "0", fmt.y: "0"}),
        broken("unparseable time", **{fmt.opened: fmt.unparseable_time}),
        broken("unparseable time", **{fmt.opened: "not recorded"}),
        broken("missing time", **{fmt.opened: ""}),
        broken("short line"),
        broken("long line"),
    ]
    # The superseded version must come before the row that replaces it.
    others = _with_defects(rng, [r for r in records if r is not closed_one], bad[1:])
    ordered = [older, *others]
    ordered.insert(len(ordered) // 2 + 1, closed_one)
    path = directory / "requests.csv"
    _write_csv(path, columns, [[str(r[c]) for c in columns] for r in ordered],
               [r[DEFECT] for r in ordered], encoding=fmt.encoding)
    truth = _truth(ordered, fmt.id, category=fmt.category, status=fmt.status,
                   opened=fmt.opened, closed=fmt.closed)
    return WrittenSource("requests", "government", "requests", path, truth, _rejections(ordered),
                         _table(ordered, columns))


def _businesses(spec: CitySpec, frame: _Frame, rng: np.random.Generator,
                directory: Path) -> WrittenSource:
    to_crs = forward(spec.businesses_crs)
    kinds = ("Restaurant", "Café", "Retail", "Pharmacy", "Bakery", "Hair Salon")
    if spec.businesses_crs == "BD-09":
        columns = ["uid", "name", "tag", "area_m2", "bd_lng", "bd_lat"]
        names = ("小笼包", "茶馆", "书店", "药房", "面馆")
        delimiter, encoding = ",", "utf-8"
    else:
        columns = ["licence_no", "business_name", "licence_cat", "floor_area_sqft",
                   "Longitude", "Latitude"]
        names = ("Crêperie", "Corner Shop", "Bäckerei", "Pharmacie", "Déli")
        # A European-style spreadsheet export: semicolons and Latin-1.
        delimiter, encoding = ";", "latin-1"
    uid, name, tag, size, xcol, ycol = columns
    records: list[dict[str, Any]] = []
    for n, (lat, lon) in enumerate(frame.points(spec.n_businesses)):
        x, y = to_crs(lon, lat)
        records.append({
            uid: f"BL-{2024_0000 + n}", name: f"{rng.choice(names)} {n}", tag: str(rng.choice(kinds)),
            size: "" if rng.random() < 0.1 else str(int(rng.integers(200, 9000))),
            xcol: coordinate_text(spec.businesses_crs, x), ycol: coordinate_text(spec.businesses_crs, y),
            DEFECT: None, TRUE_LAT: lat, TRUE_LON: lon,
        })
    template = records[0]
    bad = [
        {**template, uid: "BL-99990001", xcol: "0", ycol: "0", DEFECT: "coordinates at (0, 0)",
         TRUE_LAT: None, TRUE_LON: None},
        {**template, uid: "", DEFECT: "missing id", TRUE_LAT: None, TRUE_LON: None},
    ]
    ordered = _with_defects(rng, records, bad)
    path = directory / "businesses.csv"
    _write_csv(path, columns, [[str(r[c]) for c in columns] for r in ordered],
               [r[DEFECT] for r in ordered], delimiter=delimiter, encoding=encoding)
    truth = _truth(ordered, uid, category=tag, size=size)
    return WrittenSource("businesses", "enterprises", "establishments", path, truth,
                         _rejections(ordered), _table(ordered, columns))


def _trips(spec: CitySpec, frame: _Frame, rng: np.random.Generator, directory: Path) -> WrittenSource:
    columns = ["ride_id", "rideable_type", "started_at", "ended_at", "start_station_name",
               "start_lat", "start_lng", "member_casual"]
    start = datetime(2024, 5, 6, 6, 0, 0)
    records: list[dict[str, Any]] = []
    for lat, lon in frame.points(spec.n_trips):
        began = start + timedelta(seconds=int(rng.integers(0, 7 * 86400)))
        ended = began + timedelta(seconds=int(rng.integers(120, 5400)))
        records.append({
            "ride_id": rng.bytes(8).hex().upper(), "rideable_type": str(rng.choice(
                ("classic_bike", "electric_bike"))),
            "started_at": began.strftime("%Y-%m-%d %H:%M:%S"),
            "ended_at": ended.strftime("%Y-%m-%d %H:%M:%S"),
            "start_station_name": f"Station {int(rng.integers(1, 60))}",
            "start_lat": f"{lat:.7f}", "start_lng": f"{lon:.7f}",
            "member_casual": str(rng.choice(("member", "casual"))),
            DEFECT: None, TRUE_LAT: lat, TRUE_LON: lon,
        })
    bad = [
        {**records[1], "ride_id": "FFFF000000000001", "start_lat": "91.2500000",
         DEFECT: "coordinates out of range", TRUE_LAT: None, TRUE_LON: None},
        {**records[2], "ride_id": "FFFF000000000002", "started_at": "",
         DEFECT: "missing time", TRUE_LAT: None, TRUE_LON: None},
    ]
    ordered = _with_defects(rng, records, bad)
    path = directory / "bike_trips.csv"
    _write_csv(path, columns, [[str(r[c]) for c in columns] for r in ordered],
               [r[DEFECT] for r in ordered])
    truth = _truth(ordered, "ride_id", category="member_casual")
    return WrittenSource("bike-trips", "people", "mobility", path, truth, _rejections(ordered),
                         _table(ordered, columns))


#: Columns of the street-asset file (also the keys of its MQTT messages).
ASSET_COLUMNS = ("asset_id", "asset_type", "owner", "condition", "lat_dd", "lon_dd")


def _assets(spec: CitySpec, frame: _Frame, rng: np.random.Generator, directory: Path) -> WrittenSource:
    records: list[dict[str, Any]] = []
    for n, (lat, lon) in enumerate(frame.points(spec.n_assets)):
        records.append({
            "asset_id": f"SA-{n:05d}",
            "asset_type": str(rng.choice(("streetlight", "fire hydrant", "parking meter",
                                          "traffic signal", "bike dock"))),
            "owner": str(rng.choice(("Public Works", "Transportation", "Water & Sewer"))),
            "condition": str(rng.choice(("good", "fair", "poor"))),
            "lat_dd": f"{lat:.7f}", "lon_dd": f"{lon:.7f}",
            DEFECT: None, TRUE_LAT: lat, TRUE_LON: lon,
        })
    bad = [
        {**records[3], "asset_id": "", DEFECT: "missing id", TRUE_LAT: None, TRUE_LON: None},
        {**records[4], "asset_id": "SA-99999", "lat_dd": "42.3x", DEFECT: "unparseable coordinates",
         TRUE_LAT: None, TRUE_LON: None},
    ]
    ordered = _with_defects(rng, records, bad)
    path = directory / "street_assets.csv"
    _write_csv(path, ASSET_COLUMNS, [[str(r[c]) for c in ASSET_COLUMNS] for r in ordered],
               [r[DEFECT] for r in ordered])
    truth = _truth(ordered, "asset_id", category="asset_type", provider="owner", status="condition")
    return WrittenSource("street-assets", "things", "devices", path, truth, _rejections(ordered),
                         _table(ordered, ASSET_COLUMNS))


def _offices(spec: CitySpec, frame: _Frame, rng: np.random.Generator, directory: Path) -> WrittenSource:
    kinds = ("city hall", "library", "police station", "service centre")
    points = frame.points(spec.n_offices)
    ids = [f"OF{n + 1:02d}" for n in range(len(points))] + ["OF99"]
    to_crs = forward(spec.offices_crs)
    geometries = [shapely.Point(to_crs(lon, lat)) for lat, lon in points] + [None]
    offices = gpd.GeoDataFrame(
        {"office_id": ids, "office_name": [f"Office {i}" for i in ids],
         "kind": [str(rng.choice(kinds)) for _ in ids]},
        geometry=geometries,
        # GCJ-02 has no EPSG code: such files say WGS84, and the config's crs says GCJ-02.
        crs=spec.offices_crs if spec.offices_crs.startswith("EPSG") else "EPSG:4326",
    )
    if spec.offices_crs.startswith("EPSG"):
        path = directory / "offices.gpkg"
        offices.to_file(path, layer="offices", driver="GPKG")
    else:
        path = directory / "offices.geojson"
        offices.to_file(path, driver="GeoJSON")
    truth = pd.DataFrame({"id": ids[:-1], "lat": [p[0] for p in points],
                          "lon": [p[1] for p in points], "category": offices["kind"][:-1]})
    return WrittenSource("offices", "government", "service_points", path, truth,
                         Counter({"missing coordinates": 1}))


def _incidents(spec: CitySpec, frame: _Frame, rng: np.random.Generator,
               directory: Path) -> WrittenSource:
    """Recorded incidents, gzip-compressed: crimes (Testburg, a Boston-like export in
    WGS84) or traffic crashes (Ceshi, Chinese columns in the requests' GCJ-02)."""
    if spec.language == "zh-CN":
        columns = ["事故编号", "事故类型", "发生时间", "伤亡人数", "经度", "纬度"]
        kinds, crs, time_format = ("追尾", "刮擦", "行人"), spec.requests.crs, "%Y-%m-%d %H:%M"
    else:
        columns = ["INCIDENT_NUMBER", "OFFENSE_DESCRIPTION", "OCCURRED_ON_DATE", "VICTIMS",
                   "Long", "Lat"]
        kinds, crs, time_format = ("LARCENY", "VANDALISM", "ASSAULT"), "EPSG:4326", \
            "%Y-%m-%d %H:%M:%S"
    uid, kind, when, victims, xcol, ycol = columns
    to_crs = forward(crs)
    start = datetime(2024, 5, 1)
    records: list[dict[str, Any]] = []
    for n, (lat, lon) in enumerate(frame.points(spec.n_requests // 4)):
        x, y = to_crs(lon, lat)
        occurred = start + timedelta(seconds=int(rng.integers(0, 30 * 86400)))
        records.append({
            uid: f"I{242_000_000 + n}", kind: str(rng.choice(kinds)),
            when: occurred.strftime(time_format), victims: str(int(rng.integers(0, 3))),
            xcol: coordinate_text(crs, x), ycol: coordinate_text(crs, y),
            DEFECT: None, TRUE_LAT: lat, TRUE_LON: lon,
        })
    template = records[0]
    bad = [{**template, uid: "I999000001", xcol: "", ycol: "", DEFECT: "missing coordinates",
            TRUE_LAT: None, TRUE_LON: None},
           {**template, uid: "I999000002", when: "unknown", DEFECT: "unparseable time",
            TRUE_LAT: None, TRUE_LON: None}]
    ordered = _with_defects(rng, records, bad)
    plain = directory / "incidents.csv"
    _write_csv(plain, columns, [[str(r[c]) for c in columns] for r in ordered],
               [r[DEFECT] for r in ordered])
    path = directory / "incidents.csv.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    truth = _truth(ordered, uid, category=kind, victims=victims)
    truth["victims"] = truth["victims"].astype(float)
    return WrittenSource("incidents", "government", "incidents", path, truth,
                         _rejections(ordered), _table(ordered, columns))


def _neighbourhoods(spec: CitySpec, frame: _Frame, rng: np.random.Generator,
                    directory: Path) -> tuple[gpd.GeoDataFrame, WrittenSource]:
    polygons: list[shapely.Geometry] = list(frame.grid(*spec.grid))
    # The last neighbourhood has an island offshore, east of the square: a MultiPolygon.
    island_w = frame.east + frame.dlon * 0.08
    island = shapely.box(island_w, frame.south + frame.dlat * 0.2, island_w + frame.dlon * 0.1,
                         frame.south + frame.dlat * 0.32)
    polygons[-1] = shapely.MultiPolygon([polygons[-1], island])
    population: list[int | None] = [int(rng.integers(2_000, 40_000)) for _ in polygons]
    population[1] = None  # not surveyed: the people layer rejects it, boundaries keep it
    units = gpd.GeoDataFrame(
        {"nbhd_id": [f"N{n + 1:02d}" for n in range(len(polygons))],
         "name": list(spec.neighbourhood_names[:len(polygons)]), "pop2020": population},
        geometry=polygons, crs="EPSG:4326")
    path = directory / "neighbourhoods.geojson"
    units.to_file(path, driver="GeoJSON")
    kept = units.loc[units["pop2020"].notna()]
    truth = gpd.GeoDataFrame({"id": kept["nbhd_id"], "name": kept["name"],
                              "value": kept["pop2020"].astype(float)}, geometry=kept.geometry,
                             crs="EPSG:4326").reset_index(drop=True)
    source = WrittenSource("residents", "people", "population", path, truth,
                           Counter({"unparseable value": 1}))
    return units, source


def _land(spec: CitySpec, frame: _Frame, rng: np.random.Generator,
          directory: Path) -> list[WrittenSource]:
    # Zoning districts: a grid that does not line up with the neighbourhoods and reaches
    # a little beyond the square, in the city's projected CRS.
    bounds = (frame.west, frame.south - frame.dlat * 0.1, frame.east + frame.dlon * 0.05, frame.north)
    zones = frame.grid(3, 2, bounds=bounds, jitter=0.25)
    zoning = gpd.GeoDataFrame(
        {"zone_code": [f"Z-{n + 1}" for n in range(len(zones))],
         "zone_name": [f"{kind} district {n + 1}" for n, kind in enumerate(
             rng.choice(("Residential", "Commercial", "Industrial", "Open space"), len(zones)))]},
        geometry=zones, crs="EPSG:4326")
    zoning_path = directory / "zoning.gpkg"
    zoning.to_crs(spec.land_crs).to_file(zoning_path, layer="zoning_districts", driver="GPKG")
    # Wards as a Shapefile (upper-case, ten-character field names, a .prj in WGS84).
    wards = gpd.GeoDataFrame({"WARD_NO": [f"W{n + 1}" for n in range(4)],
                              "WARD_NAME": [f"Ward {n + 1}" for n in range(4)]},
                             geometry=frame.grid(2, 2, jitter=0.15), crs="EPSG:4326")
    wards_path = directory / "wards.shp"
    wards.to_file(wards_path, driver="ESRI Shapefile")

    def truth(units: gpd.GeoDataFrame, id_column: str, name_column: str) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"id": units[id_column], "name": units[name_column]},
                                geometry=units.geometry, crs="EPSG:4326")

    return [
        WrittenSource("zoning", "land", "units", zoning_path,
                      truth(zoning, "zone_code", "zone_name"), Counter()),
        WrittenSource("wards", "land", "units", wards_path, truth(wards, "WARD_NO", "WARD_NAME"),
                      Counter()),
    ]


# -------------------------------------------------------------------- config
def city_toml(spec: CitySpec = TESTBURG, cache_dir: Path | None = None) -> str:
    """The city's config as it would be written by hand (``cache_dir`` only for tests)."""
    fmt = spec.requests
    request_crs = f'crs = "{fmt.crs}"' + ("                 # Massachusetts State Plane, metres"
                                          if fmt.crs == "EPSG:26986" else
                                          "                     # as Amap / Gaode maps show them")
    business_cols = (("uid", "name", "tag", "area_m2", "bd_lng", "bd_lat")
                     if spec.businesses_crs == "BD-09" else
                     ("licence_no", "business_name", "licence_cat", "floor_area_sqft",
                      "Longitude", "Latitude"))
    business_options = ('crs = "BD-09"                     # Baidu map coordinates\n'
                        if spec.businesses_crs == "BD-09" else
                        'delimiter = ";"                   # a spreadsheet export: semicolons…\n'
                        'encoding = "latin-1"              # …and Latin-1\n')
    if spec.offices_crs.startswith("EPSG"):
        offices = ('adapter = "geopackage"\npath = "offices.gpkg"\nlayer_name = "offices"\n'
                   f'# no crs: the GeoPackage says its points are in {spec.offices_crs}\n')
    else:
        offices = (f'adapter = "geojson"\npath = "offices.geojson"\ncrs = "{spec.offices_crs}"'
                   '                  # the file says WGS84; its numbers are GCJ-02\n')
    cache = f'\n[cache]\ndirectory = "{cache_dir.as_posix()}"\n' if cache_dir else ""
    if spec.language == "zh-CN":
        incidents_zh, incidents_en = "交通事故", "Traffic crashes"
        incidents_fields = (f'crs = "{fmt.crs}"\nid = "事故编号"\ntime = "发生时间"\n'
                            'category = "事故类型"\nvictims = "伤亡人数"\nlon = "经度"\nlat = "纬度"')
    else:
        incidents_zh, incidents_en = "治安案件", "Crime incidents"
        incidents_fields = ('id = "INCIDENT_NUMBER"\ntime = "OCCURRED_ON_DATE"\n'
                            'category = "OFFENSE_DESCRIPTION"\nvictims = "VICTIMS"\n'
                            'lon = "Long"\nlat = "Lat"')
    return f'''\
# {spec.name} ({spec.name_zh}): a SYNTHETIC city written by tests/synthetic_city.py.
# Every number in its files is invented (seeded random); only the shapes of the files
# follow real city exports. Paths are relative to this file.

[city]
name = "{spec.name}"
name_zh = "{spec.name_zh}"
center = {{ lat = {spec.center_lat}, lon = {spec.center_lon} }}
zoom = {spec.zoom}
timezone = "{spec.timezone}"           # times without an offset are local times
language = "{spec.language}"
attributions = ["Synthetic data generated by tests/synthetic_city.py: not a real city"]
{cache}
[[boundaries]]
path = "neighbourhoods.geojson"
name_field = "name"
id_field = "nbhd_id"
level = "neighbourhood"
title_zh = "街区"
title_en = "Neighbourhood"

# ------------------------------------------------------------------ 人 people
[[sources]]
name = "residents"
title_zh = "常住人口（街区）"
title_en = "Residents (neighbourhoods)"
layer = "people"
role = "population"
adapter = "geojson"
path = "neighbourhoods.geojson"
id = "nbhd_id"
label = "name"
value = "pop2020"                     # spread over H3 cells by area of overlap

[[sources]]
name = "bike-trips"
title_zh = "共享单车出行"
title_en = "Bike-share trips"
layer = "people"
role = "mobility"
adapter = "csv"
path = "bike_trips.csv"
id = "ride_id"
time = "started_at"
end_time = "ended_at"
lat = "start_lat"
lon = "start_lng"
category = "member_casual"

# ------------------------------------------------------------- 企 enterprises
[[sources]]
name = "businesses"
title_zh = "商户"
title_en = "Businesses"
layer = "enterprises"
role = "establishments"
adapter = "csv"
path = "businesses.csv"
{business_options}id = "{business_cols[0]}"
label = "{business_cols[1]}"
category = "{business_cols[2]}"
size = "{business_cols[3]}"
lon = "{business_cols[4]}"
lat = "{business_cols[5]}"

# -------------------------------------------------------------------- 地 land
[[sources]]
name = "zoning"
title_zh = "用地分区"
title_en = "Zoning districts"
layer = "land"
role = "units"
adapter = "geopackage"
path = "zoning.gpkg"
layer_name = "zoning_districts"
# no crs: the GeoPackage says it is in {spec.land_crs}
id = "zone_code"
label = "zone_name"

[[sources]]
name = "wards"
title_zh = "选区"
title_en = "Wards"
layer = "land"
role = "units"
adapter = "shapefile"
path = "wards.shp"
id = "WARD_NO"
label = "WARD_NAME"

# ------------------------------------------------------------------ 物 things
[[sources]]
name = "street-assets"
title_zh = "市政设施"
title_en = "Street assets"
layer = "things"
role = "devices"
adapter = "csv"
path = "street_assets.csv"
id = "asset_id"
lat = "lat_dd"
lon = "lon_dd"
category = "asset_type"
provider = "owner"
status = "condition"

# -------------------------------------------------------------- 政 government
[[sources]]
name = "requests"
title_zh = "市民诉求"
title_en = "Service requests"
layer = "government"
role = "requests"
adapter = "csv"
path = "requests.csv"
{request_crs}
id = "{fmt.id}"
time = "{fmt.opened}"
closed_time = "{fmt.closed}"
status = "{fmt.status}"
category = "{fmt.category}"
agency = "{fmt.agency}"
channel = "{fmt.channel}"
descriptor = "{fmt.description}"
lon = "{fmt.x}"
lat = "{fmt.y}"

[[sources]]
name = "offices"
title_zh = "政务服务点"
title_en = "City offices"
layer = "government"
role = "service_points"
{offices}id = "office_id"
label = "office_name"
category = "kind"

[[sources]]
name = "incidents"
title_zh = "{incidents_zh}"
title_en = "{incidents_en}"
layer = "government"
role = "incidents"                    # counted and mapped; not cases for the event queue
adapter = "csv"
path = "incidents.csv.gz"             # compressed: read as it is decompressed
{incidents_fields}
'''


def write_city(directory: Path, spec: CitySpec = TESTBURG, seed: int = 7,
               cache_dir: Path | None = None) -> SyntheticCity:
    """Write a synthetic city's files and ``city.toml`` into ``directory`` (deterministic)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frame = _Frame(spec, rng)
    neighbourhoods, residents = _neighbourhoods(spec, frame, rng, directory)
    written = [residents, _trips(spec, frame, rng, directory),
               _businesses(spec, frame, rng, directory), *_land(spec, frame, rng, directory),
               _assets(spec, frame, rng, directory), _requests(spec, frame, rng, directory),
               _offices(spec, frame, rng, directory), _incidents(spec, frame, rng, directory)]
    config_path = directory / "city.toml"
    config_path.write_text(city_toml(spec, cache_dir), encoding="utf-8")
    return SyntheticCity(spec=spec, directory=directory, config_path=config_path,
                         sources={s.name: s for s in written}, neighbourhoods=neighbourhoods)


__all__ = ["CESHI", "TESTBURG", "CitySpec", "SyntheticCity", "WrittenSource", "city_toml",
           "file_reason", "write_city", "wgs84_to_bd09", "wgs84_to_gcj02"]
