"""citybrain runs a city that is not New York: from files, then from PostGIS and MQTT.

The city is synthetic (:mod:`tests.synthetic_city`): Testburg's files are generated into a
temporary folder with their own column names, Massachusetts State Plane coordinates,
a Latin-1 semicolon file, a GeoPackage, a Shapefile and malformed rows. The real app
is started on it from the command line, and what it serves is checked against
expectations computed here, independently, from the generator's true positions with
pandas, h3, shapely and pyproj. The same city's requests are then loaded into PostGIS
(State Plane geometry) and its street assets published over MQTT, and a second config
that ``extends`` the first serves them from there. A small Chinese variant (GCJ-02 and
BD-09 coordinates, Chinese column names) is built in-process.

H3: a point's expected cell at resolution 8 is ``latlng_to_cell(lat, lon, 8)`` (the
standard; not its resolution-10 cell's parent). The generator keeps points ≥1.4 m from
their resolution-10 cell's edges, so reprojection rounding cannot move a point to
another base cell; a resolution-8 edge within reprojection rounding (nanometres) of a
point would be a coincidence this seed does not meet.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from data import BUILTIN
from tests.conftest import REPO, free_port, start_server, stop_server
from tests.synthetic_city import (
    CESHI,
    DEFECT,
    TESTBURG,
    TRUE_LAT,
    TRUE_LON,
    SyntheticCity,
    write_city,
)

LAYER_IDS = ["people", "enterprises", "land", "things", "government"]
RES = 8
#: Overlaps smaller than this (m²) may be found by one area computation and not another.
SLIVER_M2 = 1.0


# ------------------------------------------------------------------ helpers
def get(base: str, path: str, **params: Any) -> Any:
    import requests

    response = requests.get(f"{base}{path}", params=params, timeout=30)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    return response.json()


def api_cells(base: str, layer: str, metric: str | None = None) -> dict[str, float]:
    params = {"res": RES, **({"metric": metric} if metric else {})}
    return {c["cell"]: c["value"] for c in get(base, f"/api/layers/{layer}/cells", **params)}


def point_cell(lat: float, lon: float, res: int = RES) -> str:
    return h3.latlng_to_cell(lat, lon, res)


def expected_counts(truth: pd.DataFrame, mask: Any = None) -> dict[str, float]:
    """Rows per resolution-8 cell from true WGS84 positions."""
    rows = truth if mask is None else truth.loc[mask]
    return {c: float(n) for c, n in Counter(map(point_cell, rows["lat"], rows["lon"])).items()}


@dataclass
class Overlaps:
    """How much of each area lies in each resolution-8 cell, computed here."""

    #: ``id``, ``cell`` and ``parent`` (both the res-8 hex id: areas are apportioned at
    #: each served resolution itself, not rolled up from res 10), ``area_m2``.
    frame: pd.DataFrame
    #: Resolution-8 cells holding a sliver overlap, where counting a unit or not is a
    #: matter of floating point and another equal-area projection.
    uncertain: set[str]


def overlaps(units: gpd.GeoDataFrame, center: tuple[float, float]) -> Overlaps:
    """Overlap areas of ``units`` (``id``, WGS84 geometry) with res-8 hexagons.

    Candidate cells are those whose centre lies within ~1 km of the unit (h3's
    centre-containment fill of a buffered unit; a res-8 cell reaches ~530 m from its
    centre), so every overlapping cell is found;
    areas are exact polygon intersections in a Lambert equal-area projection.
    """
    from pyproj import CRS, Transformer

    laea = CRS.from_proj4(f"+proj=laea +lat_0={center[0]} +lon_0={center[1]} +datum=WGS84 +units=m")
    project = Transformer.from_crs("EPSG:4326", laea, always_xy=True)

    def projected(geometry: Any) -> Any:
        return shapely.transform(geometry, lambda xy: np.column_stack(project.transform(xy[:, 0],
                                                                                       xy[:, 1])))

    rows = []
    for unit_id, geometry in zip(units["id"], units.geometry, strict=True):
        cells = sorted(h3.geo_to_cells(geometry.buffer(0.012), RES))
        hexes = projected(np.array([shapely.Polygon([(lng, lat) for lat, lng in
                                                     h3.cell_to_boundary(c)]) for c in cells]))
        area = shapely.area(shapely.intersection(projected(geometry), hexes))
        rows += [(str(unit_id), c, float(a)) for c, a in zip(cells, area, strict=True) if a > 0]
    frame = pd.DataFrame(rows, columns=["id", "cell", "area_m2"])
    frame["parent"] = frame["cell"]
    return Overlaps(frame, set(frame.loc[frame["area_m2"] < SLIVER_M2, "parent"]))


def expected_residents(city: SyntheticCity) -> dict[str, float]:
    """Each neighbourhood's population spread over cells in proportion to overlap area."""
    truth = city.sources["residents"].truth
    pieces = overlaps(truth, (city.spec.center_lat, city.spec.center_lon)).frame
    share = pieces["area_m2"] / pieces.groupby("id")["area_m2"].transform("sum")
    value = pieces["id"].map(truth.set_index("id")["value"]) * share
    return value.groupby(pieces["parent"]).sum().to_dict()


def assert_close(got: dict[str, float], want: dict[str, float], rel: float, abs_: float,
                 what: str) -> None:
    assert set(got) == set(want), (f"{what}: cells only served {sorted(set(got) - set(want))[:5]}, "
                                   f"only expected {sorted(set(want) - set(got))[:5]}")
    wrong = {c: (got[c], want[c]) for c in want
             if not math.isclose(got[c], want[c], rel_tol=rel, abs_tol=abs_)}
    assert not wrong, f"{what}: {len(wrong)} cells differ, e.g. {list(wrong.items())[:3]}"


def geodesic_km2(units: gpd.GeoDataFrame) -> float:
    """The units' total area on the WGS84 ellipsoid."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    return sum(abs(geod.geometry_area_perimeter(g)[0]) for g in units.geometry) / 1e6


def parse_local(text: Any, fmt: str) -> datetime | None:
    return datetime.strptime(text, fmt) if isinstance(text, str) and text else None


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def testburg(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCity:
    root = tmp_path_factory.mktemp("testburg")
    return write_city(root / "city", TESTBURG, cache_dir=root / "cache")


@pytest.fixture(scope="module")
def files_app(testburg: SyntheticCity) -> Iterator[str]:
    """``python app.py --config <tmp>/city.toml`` in a subprocess; yields its base URL."""
    port = free_port()
    process = start_server([sys.executable, "app.py", "--config", str(testburg.config_path),
                            "--port", str(port)], port, log_name="any-city-files")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def land_overlaps(testburg: SyntheticCity) -> Overlaps:
    units = pd.concat([testburg.sources["zoning"].truth, testburg.sources["wards"].truth],
                      ignore_index=True)
    return overlaps(gpd.GeoDataFrame(units, crs="EPSG:4326"),
                    (TESTBURG.center_lat, TESTBURG.center_lon))


# ----------------------------------------------------------- 1. from files
def test_health_counts_every_source_as_written(files_app: str, testburg: SyntheticCity) -> None:
    health = get(files_app, "/api/health")
    assert health["city"] == "Testburg"
    assert health["status"] == "ok", health
    sources = {s["name"]: s for s in health["sources"]}
    assert set(sources) == set(testburg.sources)
    for name, written in testburg.sources.items():
        served = sources[name]
        assert served["last_error"] is None, (name, served["last_error"])
        assert served["warnings"] == [], (name, served["warnings"])
        assert served["rows_loaded"] == len(written.truth), name
        assert served["rejected_by_reason"] == dict(sorted(written.rejected.items())), name
    total = sum((w.rejected for w in testburg.sources.values()), Counter())
    assert health["rejected_by_reason"] == dict(sorted(total.items()))


def test_the_five_layers_and_their_sources(files_app: str, testburg: SyntheticCity) -> None:
    layers = get(files_app, "/api/layers")
    assert [layer["id"] for layer in layers] == LAYER_IDS
    served = {layer["id"]: {s["name"] for s in layer["sources"]} for layer in layers}
    written: dict[str, set[str]] = {}
    for source in testburg.sources.values():
        written.setdefault(source.layer, set()).add(source.name)
    assert served == written
    assert not any(layer["stale"] for layer in layers)


@pytest.mark.parametrize(("layer", "source"), [
    ("enterprises", "businesses"),  # WGS84, semicolons, Latin-1
    ("things", "street-assets"),
    ("government", "requests"),  # Massachusetts State Plane
])
def test_point_layer_cells(files_app: str, testburg: SyntheticCity, layer: str, source: str) -> None:
    assert api_cells(files_app, layer) == expected_counts(testburg.sources[source].truth)


def test_cell_pages_walked_by_cursor_equal_the_pandas_counts(files_app: str,
                                                              testburg: SyntheticCity) -> None:
    import requests

    expected = expected_counts(testburg.sources["requests"].truth)
    served: list[dict[str, Any]] = []
    url: str | None = f"{files_app}/api/layers/government/cells?res={RES}&limit=7"
    while url is not None:
        response = requests.get(url, timeout=30)
        assert response.status_code == 200
        served.extend(response.json())
        link = response.links.get("next")
        url = None if link is None else f"{files_app}{link['url']}"
    assert len(expected) > 14 and len(served) == len(expected)
    assert {c["cell"]: c["value"] for c in served} == expected


def test_government_metrics_beyond_counts(files_app: str, testburg: SyntheticCity) -> None:
    truth = testburg.sources["requests"].truth
    fmt = TESTBURG.requests
    assert api_cells(files_app, "government", "open") == \
        expected_counts(truth, truth["closed"].eq("").to_numpy())
    # Offices come from a GeoPackage in State Plane whose config has no crs key.
    assert api_cells(files_app, "government", "service_points") == \
        expected_counts(testburg.sources["offices"].truth)
    hours = [(parse_local(c, fmt.time_format) - parse_local(o, fmt.time_format)).total_seconds() / 3600
             if c else np.nan for o, c in zip(truth["opened"], truth["closed"], strict=True)]
    cells = [point_cell(lat, lon) for lat, lon in zip(truth["lat"], truth["lon"], strict=True)]
    median = pd.Series(hours).groupby(cells).median().dropna().to_dict()
    assert_close(api_cells(files_app, "government", "hours_to_close"), median, 1e-9, 1e-6,
                 "median hours to close")


def test_people_cells(files_app: str, testburg: SyntheticCity) -> None:
    assert api_cells(files_app, "people", "trips") == \
        expected_counts(testburg.sources["bike-trips"].truth)
    residents = api_cells(files_app, "people")  # the default metric
    # Exact outlines in two equal-area projections agree to well under a part per 10⁵.
    assert_close(residents, expected_residents(testburg), 1e-5, 1e-3, "residents")


def test_population_apportioned_by_area_adds_up(files_app: str, testburg: SyntheticCity) -> None:
    population = testburg.neighbourhoods["pop2020"].dropna().sum()
    assert population > 0
    assert sum(api_cells(files_app, "people").values()) == pytest.approx(population, rel=1e-9)


def test_land_cells(files_app: str, testburg: SyntheticCity, land_overlaps: Overlaps) -> None:
    pieces = land_overlaps.frame
    units = api_cells(files_app, "land")  # distinct land units per cell, zoning and wards
    want = pieces.groupby("parent")["id"].nunique().astype(float).to_dict()
    certain = set(want) - land_overlaps.uncertain
    assert len(certain) > 0.9 * len(want)
    assert {c: units.get(c) for c in certain} == {c: want[c] for c in certain}
    assert set(units) - set(want) <= land_overlaps.uncertain
    # Zoning comes from a GeoPackage in State Plane: its area per cell, and in all.
    zoning_ids = set(testburg.sources["zoning"].truth["id"])
    zoning = pieces.loc[pieces["id"].isin(zoning_ids)]
    area = (zoning.groupby("parent")["area_m2"].sum() / 1e6).to_dict()
    assert_close(api_cells(files_app, "land", "area:zoning"), area, 1e-4, 1e-5, "zoning km²")
    assert sum(api_cells(files_app, "land", "area:zoning").values()) == pytest.approx(
        geodesic_km2(testburg.sources["zoning"].truth), rel=1e-4)


def test_cell_profile_has_all_five_layers(files_app: str, testburg: SyntheticCity,
                                          land_overlaps: Overlaps) -> None:
    requests = expected_counts(testburg.sources["requests"].truth)
    cell = max((c for c in requests if c not in land_overlaps.uncertain), key=requests.__getitem__)
    profile = get(files_app, f"/api/cells/{cell}")
    assert profile["cell"] == cell and profile["res"] == RES
    assert set(profile["layers"]) == set(LAYER_IDS)  # a JSON object: keys sorted
    metrics = {layer: {m["name"]: m["value"] for m in section["metrics"]}
               for layer, section in profile["layers"].items()}

    def count(source: str) -> float:
        return expected_counts(testburg.sources[source].truth).get(cell, 0.0)

    assert metrics["government"]["requests"] == requests[cell]
    assert metrics["enterprises"]["enterprises"] == count("businesses")
    assert metrics["things"]["things"] == count("street-assets")
    assert metrics["people"]["trips"] == count("bike-trips")
    assert metrics["people"]["residents"] == pytest.approx(expected_residents(testburg).get(cell, 0),
                                                           rel=1e-5, abs=1e-3)
    pieces = land_overlaps.frame
    assert metrics["land"]["units"] == pieces.loc[pieces["parent"] == cell, "id"].nunique()
    # Request types as exported, counted by value.
    types = next(b for b in profile["layers"]["government"]["breakdowns"]
                 if b["role"] == "requests" and b["field"] == "category")
    truth = testburg.sources["requests"].truth
    in_cell = truth.loc[[point_cell(a, o) == cell for a, o in zip(truth["lat"], truth["lon"],
                                                                  strict=True)]]
    top = in_cell["category"].value_counts()
    assert {i["value"]: i["count"] for i in types["items"]} == top.to_dict()
    nearest = profile["layers"]["government"]["nearest_service_points"]
    assert {p["id"] for p in nearest} <= set(testburg.sources["offices"].truth["id"])


def test_the_page_is_the_synthetic_city(files_app: str) -> None:
    import requests

    assert requests.get(files_app + "/", timeout=30).status_code == 200
    layout = requests.get(files_app + "/_dash-layout", timeout=30).text
    assert "Testburg" in layout
    assert "New York" not in layout


@pytest.mark.parametrize(("change", "message", "valid"), [
    (('lat = "lat_dd"', 'lattitude = "lat_dd"'), "unknown key(s) 'lattitude'",
     ["lat", "lon", "id", "time", "category", "provider", "status", "path"]),
    (('adapter = "csv"\npath = "businesses.csv"', 'adapter = "xlsx"\npath = "businesses.csv"'),
     "unknown adapter 'xlsx'", sorted(BUILTIN)),
], ids=["unknown-key", "unknown-adapter"])
def test_a_bad_config_exits_with_code_2_naming_the_valid_choices(
        testburg: SyntheticCity, change: tuple[str, str], message: str, valid: list[str]) -> None:
    text = testburg.config_path.read_text(encoding="utf-8")
    assert change[0] in text
    bad = testburg.directory / f"bad-{uuid.uuid4().hex[:6]}.toml"
    bad.write_text(text.replace(change[0], change[1]), encoding="utf-8")
    result = subprocess.run([sys.executable, "app.py", "--config", str(bad)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    listed = set(result.stderr.strip().rsplit(" are: ", 1)[1].split(", "))
    assert set(valid) <= listed, result.stderr


# ------------------------------------------- 2. the same city from PostGIS and MQTT
#: What the PostGIS copy of the requests makes of each defect in the CSV: a loader puts
#: NULL where a value cannot be typed, and a line the CSV reader refused is not loaded.
POSTGIS_REASONS = {
    "unparseable coordinates": "missing coordinates", "missing coordinates": "missing coordinates",
    "short line": "missing coordinates", "coordinates at (0, 0)": "coordinates at (0, 0)",
    "unparseable time": "missing time", "missing time": "missing time",
    "superseded": "duplicate id", "long line": None,
}


def load_requests_into_postgis(conn: Any, schema: str, city: SyntheticCity) -> Counter[str]:
    """The requests as a city database holds them: typed columns, State Plane points."""
    fmt = city.spec.requests
    table = city.sources["requests"].table
    conn.execute(f'''CREATE TABLE "{schema}".requests (
        case_enquiry_id text, open_dt timestamp, closed_dt timestamp, case_status text,
        type text, department text, source text, case_title text,
        geom geometry(Point, 26986))''')
    expected: Counter[str] = Counter()
    with conn.cursor() as cur:
        for record in table.to_dict("records"):
            defect = record[DEFECT]
            if defect == "long line":
                continue
            reason = POSTGIS_REASONS.get(defect) if defect else None
            if reason:
                expected[reason] += 1
            cut = defect == "short line"  # only id, open_dt and closed_dt survived

            def number(text: Any) -> float | None:
                try:
                    return float(text)
                except (TypeError, ValueError):
                    return None

            attributes = [None] * 5 if cut else [record[fmt.status], record[fmt.category],
                                                  record[fmt.agency], record[fmt.channel],
                                                  record[fmt.description]]
            x, y = (None, None) if cut else (number(record[fmt.x]), number(record[fmt.y]))
            # ST_MakePoint of NULLs is NULL: a row without a position has no geometry.
            cur.execute(f'INSERT INTO "{schema}".requests VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '
                        "ST_SetSRID(ST_MakePoint(%s::float8, %s::float8), 26986))",
                        [record[fmt.id], _timestamp(record[fmt.opened], fmt.time_format),
                         _timestamp(record[fmt.closed], fmt.time_format), *attributes, x, y])
    return expected


def _timestamp(text: Any, fmt: str) -> datetime | None:
    try:
        return parse_local(text, fmt)
    except ValueError:
        return None


def publish(host: str, port: int, topic: str, messages: list[Any]) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"citybrain-test-pub-{uuid.uuid4().hex}")
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        for n, message in enumerate(messages):
            info = client.publish(f"{topic}/batch-{n}", json.dumps(message).encode(), qos=1)
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def asset_messages(city: SyntheticCity, per_message: int = 50) -> list[list[dict[str, Any]]]:
    """The street assets as gateway messages (JSON arrays), positions as numbers."""
    records = []
    for row in city.sources["street-assets"].table.to_dict("records"):
        message = {k: v for k, v in row.items() if not k.startswith("_")}
        if row[DEFECT] is None:
            message["lat_dd"], message["lon_dd"] = row[TRUE_LAT], row[TRUE_LON]
        records.append(message)
    return [records[i:i + per_message] for i in range(0, len(records), per_message)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


LIVE_TOML = '''\
# The same city with its requests in the operations database and its street assets
# reported live over MQTT; everything else as in city.toml.
extends = "city.toml"

[live]
ingest_interval = 0.2

[[sources]]
name = "requests"
title_zh = "市民诉求（业务库）"
title_en = "Service requests (operations database)"
layer = "government"
role = "requests"
adapter = "postgis"
dsn = "{dsn}"
table = "{schema}.requests"
geometry_column = "geom"          # geometry(Point, 26986): PostGIS reprojects it
id = "case_enquiry_id"
time = "open_dt"
closed_time = "closed_dt"
status = "case_status"
category = "type"
agency = "department"
channel = "source"
descriptor = "case_title"

[[sources]]
name = "street-assets"
title_zh = "市政设施（实时）"
title_en = "Street assets (live)"
layer = "things"
role = "devices"
adapter = "mqtt"
host = "{host}"
port = {port}
topics = ["{topic}/#"]
client_id = "{client_id}"
session_expiry = 0                # a test leaves no session behind on the shared broker
id = "asset_id"
lat = "lat_dd"
lon = "lon_dd"
category = "asset_type"
provider = "owner"
status = "condition"
'''


@pytest.mark.service
def test_the_same_city_from_postgis_and_mqtt(files_app: str, testburg: SyntheticCity,
                                             postgres_dsn: str,
                                             mqtt_broker: tuple[str, int]) -> None:
    from tests.pgtools import throwaway_schema

    host, port = mqtt_broker
    topic = f"citybrain-test/any-city/{uuid.uuid4().hex}"
    with throwaway_schema(postgres_dsn, prefix="cb_anycity") as (conn, schema):
        expected_rejections = load_requests_into_postgis(conn, schema, testburg)
        live = testburg.directory / "live.toml"
        live.write_text(LIVE_TOML.format(dsn=postgres_dsn, schema=schema, host=host, port=port,
                                         topic=topic, client_id=f"citybrain-test-{uuid.uuid4().hex}"),
                        encoding="utf-8")
        app_port = free_port()
        process = start_server([sys.executable, "app.py", "--config", str(live),
                                "--port", str(app_port)], app_port, log_name="any-city-live")
        base = f"http://127.0.0.1:{app_port}"
        try:
            def source(name: str) -> dict[str, Any]:
                return next(s for s in get(base, "/api/health")["sources"] if s["name"] == name)

            requests_health = source("requests")
            assert requests_health["adapter"] == "postgis"
            assert requests_health["last_error"] is None, requests_health
            assert requests_health["rows_loaded"] == len(testburg.sources["requests"].truth)
            assert requests_health["rejected_by_reason"] == dict(sorted(expected_rejections.items()))
            assert api_cells(base, "government") == api_cells(files_app, "government")

            # Publish once the subscription is up: the source has been read.
            wait_for(lambda: source("street-assets")["last_read"] is not None, 20,
                     "the MQTT source's first read")
            assert api_cells(base, "things") == {}
            publish(host, port, topic, asset_messages(testburg))
            want = api_cells(files_app, "things")
            wait_for(lambda: api_cells(base, "things") == want, 20, "the street assets over MQTT")
            assets = source("street-assets")
            assert assets["adapter"] == "mqtt"
            assert assets["rows_loaded"] == len(testburg.sources["street-assets"].truth)
            assert assets["rejected_by_reason"] == \
                dict(sorted(testburg.sources["street-assets"].rejected.items()))
            assert get(base, "/api/health")["ingest"]["streaming_sources"] == ["street-assets"]
        finally:
            stop_server(process)


# -------------------------------------------------- a Chinese city: GCJ-02 and BD-09
def test_a_chinese_city_with_gcj02_and_bd09_coordinates(tmp_path: Path) -> None:
    """Ceshi Town: requests with Chinese headers in GCJ-02, shops in BD-09, land in EPSG:4547."""
    from app import create_app, load_config

    city = write_city(tmp_path / "city", CESHI, cache_dir=tmp_path / "cache")
    app = create_app(load_config(city.config_path), start_ingest=False)
    client = app.server.test_client()

    def cells(layer: str, metric: str | None = None) -> dict[str, float]:
        query = f"?res={RES}" + (f"&metric={metric}" if metric else "")
        return {c["cell"]: c["value"] for c in client.get(f"/api/layers/{layer}/cells{query}").json}

    health = client.get("/api/health").json
    assert health["city"] == "Ceshi Town"
    assert health["status"] == "ok", health
    for served in health["sources"]:
        written = city.sources[served["name"]]
        assert served["rows_loaded"] == len(written.truth), served
        assert served["rejected_by_reason"] == dict(sorted(written.rejected.items())), served
    assert cells("government") == expected_counts(city.sources["requests"].truth)
    assert cells("enterprises") == expected_counts(city.sources["businesses"].truth)
    assert cells("government", "service_points") == expected_counts(city.sources["offices"].truth)
    assert cells("things") == expected_counts(city.sources["street-assets"].truth)
    assert sum(cells("people").values()) == pytest.approx(
        city.neighbourhoods["pop2020"].dropna().sum(), rel=1e-9)
    assert sum(cells("land", "area:zoning").values()) == pytest.approx(
        geodesic_km2(city.sources["zoning"].truth), rel=1e-4)


# ------------------------------------------------------- 3. docs/new-city.md
DOC = REPO / "docs" / "new-city.md"
REGENERATE = ".venv/bin/python -m tests.integration.test_any_city --write-docs"


def _rst_to_markdown(text: str) -> str:
    return text.replace("``", "`")


def layers_reference() -> str:
    """Roles and mappable keys per layer, and the metrics each layer offers, from ``LAYERS``."""
    from config.city import Source
    from layers import LAYERS

    kinds = {"time": " (time)", "float": " (number)"}
    lines = ["| layer | role | geometry | keys that map your columns |", "|---|---|---|---|"]
    for layer in LAYERS.values():
        for n, role in enumerate(layer.roles.values()):
            kind_of = {f.name: f.kind for f in role.fields}
            keys = ", ".join(f"`{k}`{kinds.get(kind_of.get(k, ''), '')}" for k in role.field_names())
            default = " (default)" if role.name == layer.default_role else ""
            head = f"{layer.symbol} `{layer.id}`" if n == 0 else ""
            lines.append(f"| {head} | `{role.name}`{default} | {role.geometry} | {keys} |")
    lines += ["", "| layer | metric | shows | computed per cell as |", "|---|---|---|---|"]
    for layer in LAYERS.values():
        # Per-source metrics, shown for a source called <name> (with `value` mapped) of the
        # layer's default role, or of its first point role when the default is an area.
        point_roles = [r.name for r in layer.roles.values() if r.geometry == "point"]
        role = layer.default_role if layer.roles[layer.default_role].geometry == "point" \
            or not point_roles else point_roles[0]
        example = [Source(name="<name>", layer=layer.id, role=role, adapter="csv",
                          title_zh="", title_en="(source title)", fields={"value": "…"}, options={},
                          base_dir=Path("."))]
        for n, metric in enumerate(layer.metrics(example)):
            what = metric.aggregation.describe(metric.column, metric.role)
            if metric.where:
                what += " where " + ", ".join(f"`{c}` is {' or '.join(map(str, v))}"
                                              for c, v in metric.where)
            if metric.source:
                what += " of that source only"
            head = f"{layer.symbol} `{layer.id}`" if n == 0 else ""
            default = " (default)" if n == 0 else ""
            lines.append(f"| {head} | `{metric.name}`{default} | {metric.title_en} | {what} |")
    return "\n".join(lines)


def adapters_reference() -> str:
    """Every built-in adapter, what it reads and its options, from ``data.BUILTIN``."""
    import importlib

    from data import get_adapter_class

    lines = ["| adapter | reads | options (**required**) | kind |", "|---|---|---|---|"]
    for name in sorted(BUILTIN):
        cls = get_adapter_class(name)
        doc = cls.__doc__ or importlib.import_module(cls.__module__).__doc__ or ""
        reads = _rst_to_markdown(doc.strip().splitlines()[0]).rstrip(".")
        reads = reads.removeprefix(f"`{name}`: ")
        options = ", ".join(f"**`{o}`**" if o in cls.required_options else f"`{o}`"
                            for o in sorted(cls.options, key=lambda o: (o not in cls.required_options, o)))
        lines.append(f"| `{name}` | {reads} | {options} | {'streaming' if cls.streaming else 'snapshot'} |")
    return "\n".join(lines)


def rules_reference() -> str:
    """Every rule kind, what it checks and its own keys, from ``ops.signs.rules.RULE_KINDS``."""
    import importlib

    from ops.signs.rules import RULE_KINDS

    lines = ["| kind | fires when | its keys |", "|---|---|---|"]
    for kind, cls in RULE_KINDS.items():
        doc = importlib.import_module(cls.__module__).__doc__ or ""
        what = " ".join(_rst_to_markdown(doc.strip().split("\n\n")[0]).split())
        what = what.removeprefix(f"`{kind}`: ").rstrip(".:")
        keys = ", ".join(f"`{k}`" for k in sorted(cls.keys))
        lines.append(f"| `{kind}` | {what} | {keys} |")
    return "\n".join(lines)


def generated_blocks() -> dict[str, str]:
    from tests.synthetic_city import city_toml

    return {"layers": layers_reference(), "adapters": adapters_reference(),
            "rules": rules_reference(),
            "example": f"```toml\n{city_toml(TESTBURG).rstrip()}\n```"}


def _block(text: str, name: str) -> tuple[int, int]:
    start = text.index(f"<!-- generated:{name} -->\n") + len(f"<!-- generated:{name} -->\n")
    return start, text.index(f"\n<!-- /generated:{name} -->", start)


def test_new_city_doc_is_generated_from_the_registries() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, block in generated_blocks().items():
        start, end = _block(text, name)
        assert text[start:end] == block, f"docs/new-city.md '{name}' is out of date: run {REGENERATE}"


def test_new_city_doc_names_every_config_key() -> None:
    from config import city as config

    text = DOC.read_text(encoding="utf-8")
    tables = {"[city]": config.CITY_KEYS, "[map]": config.MAP_KEYS,
              "[live]": config.LIVE_KEYS, "[cache]": config.CACHE_KEYS,
              "[[boundaries]]": config.BOUNDARY_KEYS, "[[sources]]": config.SOURCE_COMMON_KEYS}
    missing = {table: sorted(k for k in keys if f"`{k}`" not in text) for table, keys in tables.items()}
    assert not any(missing.values()), f"keys not described in docs/new-city.md: {missing}"


def write_docs() -> None:
    """Rewrite the generated blocks of docs/new-city.md in place."""
    text = DOC.read_text(encoding="utf-8")
    for name, block in generated_blocks().items():
        start, end = _block(text, name)
        text = text[:start] + block + text[end:]
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-docs"]:
        write_docs()
    else:
        sys.exit(f"usage: {REGENERATE}")
