"""The postgis adapter against real PostgreSQL/PostGIS: reprojection, SQL-side filters,
incremental cursors, rejected rows, area sources, errors, and recovery after an outage.

Every test works in a schema of its own on the shared server and drops it; the
outage test stops and restarts a private server, never the shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import pytest

from app import parse_config
from config.city import ConfigError
from data import AdapterContext, SourceError, get_adapter_class
from tests.conftest import free_port, require
from tests.contract.sample import GOOD_ROWS
from tests.pgtools import PrivatePostgres, ensure_postgis, throwaway_schema

pytestmark = pytest.mark.service

CITY = {"name": "Test City", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}
#: Manhattan and a bit of the Bronx / Queens waterfront.
MANHATTAN = [-74.02, 40.70, -73.93, 40.85]


def source(schema: str, **table: Any) -> dict[str, Any]:
    """A government/requests source table; keys given override the defaults."""
    base = {"name": f"pg-{schema}", "layer": "government", "role": "requests",
            "adapter": "postgis", "id": "id", "time": "time", "category": "category"}
    return {**base, **table}


@pytest.fixture()
def pg(postgres_dsn: str) -> Iterator[tuple[Any, str]]:
    """An autocommit connection to the test database and a throwaway schema."""
    with throwaway_schema(postgres_dsn) as (conn, schema):
        yield conn, schema


@pytest.fixture()
def build(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Any]]:
    """Build adapters from ``[[sources]]`` tables the way the app does; closes them after."""
    made: list[Any] = []

    def make(table: dict[str, Any]) -> Any:
        config = parse_config({"city": CITY, "sources": [table]}, tmp_path)
        spec = config.sources[0]
        adapter = get_adapter_class(spec.adapter)(spec, AdapterContext(base_res=10, timezone="UTC"))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


def state_plane(lon: float, lat: float) -> tuple[float, float]:
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", "EPSG:2263", always_xy=True).transform(lon, lat)


def create_points(conn: Any, schema: str, srid: int = 2263) -> None:
    """``schema.points``: the sample's good rows as PostGIS points (in ``srid``), indexed."""
    conn.execute(f'CREATE TABLE "{schema}".points (id text, time timestamptz, category text, '
                 f'geom geometry(Point, {srid}))')
    conn.execute(f'CREATE INDEX ON "{schema}".points USING gist (geom)')
    for row in GOOD_ROWS:
        x, y = state_plane(row["lon"], row["lat"]) if srid == 2263 else (row["lon"], row["lat"])
        conn.execute(f'INSERT INTO "{schema}".points VALUES (%s, %s, %s, '
                     f'ST_SetSRID(ST_MakePoint(%s, %s), {srid}))',
                     [row["id"], row["time"] + "Z", row["category"], x, y])


def in_box(row: dict[str, Any], box: list[float]) -> bool:
    west, south, east, north = box
    return west <= row["lon"] <= east and south <= row["lat"] <= north


# ----------------------------------------------------------------- PostGIS itself
def test_create_extension_postgis(pg: tuple[Any, str]) -> None:
    conn, _ = pg
    ensure_postgis(conn)  # a second time: IF NOT EXISTS must hold
    version = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    assert version.startswith("3.")
    point = conn.execute("SELECT ST_AsText(ST_Transform(ST_SetSRID(ST_MakePoint(-74, 40.7), 4326),"
                         " 2263))").fetchone()[0]
    assert point.startswith("POINT(")


# -------------------------------------------------------------------- reading
def test_state_plane_points_are_reprojected_like_pyproj(pg: tuple[Any, str], build: Any) -> None:
    from pyproj import Transformer

    conn, schema = pg
    create_points(conn, schema)
    batch = build(source(schema, table=f"{schema}.points", geometry_column="geom",
                         dsn=conn.info.dsn)).snapshot()
    inverse = Transformer.from_crs("EPSG:2263", "EPSG:4326", always_xy=True)
    frame = batch.frame.set_index("id")
    assert sorted(frame.index) == sorted(r["id"] for r in GOOD_ROWS)
    assert not batch.rejected
    for row in GOOD_ROWS:
        x, y = state_plane(row["lon"], row["lat"])
        lon, lat = inverse.transform(x, y)
        got = frame.loc[row["id"]]
        assert got["lat"] == pytest.approx(lat, abs=1e-8)
        assert got["lon"] == pytest.approx(lon, abs=1e-8)
        assert got["lat"] == pytest.approx(row["lat"], abs=1e-6)
        assert got["cell"] == h3.str_to_int(h3.latlng_to_cell(row["lat"], row["lon"], 10))
        assert got["time"] == datetime.fromisoformat(row["time"]).replace(tzinfo=UTC)


def test_bbox_on_geometry_is_filtered_in_sql(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    create_points(conn, schema)
    # Outside any box: filtered by SQL, so not even counted as a rejected row.
    conn.execute(f'INSERT INTO "{schema}".points VALUES (%s, now(), %s, NULL)', ["nowhere", "x"])
    adapter = build(source(schema, table=f"{schema}.points", geometry_column="geom",
                           bbox=MANHATTAN, dsn=conn.info.dsn))
    batch = adapter.snapshot()
    expected = sorted(r["id"] for r in GOOD_ROWS if in_box(r, MANHATTAN))
    assert 0 < len(expected) < len(GOOD_ROWS)
    assert sorted(batch.frame["id"]) == expected
    assert not batch.rejected
    plan = adapter.explain()
    # The box reaches the table scan (index or filter) as a bounding-box test on geom.
    assert "geom &&" in plan, plan


def test_bbox_on_lat_lon_columns_is_filtered_in_sql(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".plain (id text, time text, category text, '
                 'latitude double precision, longitude double precision)')
    for row in GOOD_ROWS:
        conn.execute(f'INSERT INTO "{schema}".plain VALUES (%s, %s, %s, %s, %s)',
                     [row["id"], row["time"], row["category"], row["lat"], row["lon"]])
    adapter = build(source(schema, table=f"{schema}.plain", lat="latitude", lon="longitude",
                           bbox=MANHATTAN, dsn=conn.info.dsn))
    batch = adapter.snapshot()
    assert sorted(batch.frame["id"]) == sorted(r["id"] for r in GOOD_ROWS if in_box(r, MANHATTAN))
    plan = adapter.explain()
    assert "latitude >=" in plan and "longitude <=" in plan, plan


@pytest.mark.parametrize("kind", ["timestamptz", "timestamp", "bigint"])
def test_time_window_is_filtered_in_sql(pg: tuple[Any, str], build: Any, kind: str) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".recent (id text, reported {kind}, category text, '
                 'lat double precision, lon double precision)')
    now = datetime.now(UTC)
    ages = {"hour": timedelta(hours=1), "two-days": timedelta(days=2),
            "six-days": timedelta(days=6), "eight-days": timedelta(days=8),
            "month": timedelta(days=30)}
    for name, age in ages.items():
        moment = now - age
        value: Any = {"timestamptz": moment, "timestamp": moment.replace(tzinfo=None),
                      "bigint": int(moment.timestamp())}[kind]
        conn.execute(f'INSERT INTO "{schema}".recent VALUES (%s, %s, %s, 40.75, -73.98)',
                     [name, value, "Noise"])
    adapter = build(source(schema, table=f"{schema}.recent", time="reported", time_window="7d",
                           dsn=conn.info.dsn))
    batch = adapter.snapshot()
    assert sorted(batch.frame["id"]) == ["hour", "six-days", "two-days"]
    assert "reported" in adapter.explain()


def test_updates_by_id_cursor_return_only_new_rows(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".feed (seq bigserial PRIMARY KEY, id text, time text, '
                 'category text, lat double precision, lon double precision)')

    def add(*ids: str) -> None:
        for name in ids:
            conn.execute(f'INSERT INTO "{schema}".feed (id, time, category, lat, lon) '
                         "VALUES (%s, '2022-05-01T00:00:00', 'Noise', 40.75, -73.98)", [name])

    add("a", "b", "c")
    adapter = build(source(schema, table=f"{schema}.feed", cursor_column="seq", limit=2,
                           dsn=conn.info.dsn))
    first = adapter.snapshot()
    assert first.replace and sorted(first.frame["id"]) == ["a", "b", "c"]
    assert first.cursor == 3

    add("d", "e", "f")
    second = adapter.updates(first.cursor)
    assert not second.replace
    assert list(second.frame["id"]) == ["d", "e"]  # in cursor order, at most `limit`
    assert second.cursor == 5 and any("limit" in w for w in second.warnings)
    third = adapter.updates(second.cursor)
    assert list(third.frame["id"]) == ["f"] and third.cursor == 6
    nothing = adapter.updates(third.cursor)
    assert nothing.frame.empty and nothing.cursor == 6 and not nothing.replace
    assert "seq >" in adapter.explain(since=6)


def test_updates_by_time_cursor_return_only_new_rows(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".changes (id text, time timestamptz, '
                 'updated_at timestamptz, category text, lat double precision, '
                 'lon double precision)')
    start = datetime(2024, 3, 1, 12, tzinfo=UTC)

    def add(name: str, minutes: int) -> None:
        moment = start + timedelta(minutes=minutes)
        conn.execute(f'INSERT INTO "{schema}".changes VALUES (%s, %s, %s, %s, 40.75, -73.98)',
                     [name, moment, moment, "Noise"])

    add("early", 0)
    add("later", 5)
    adapter = build(source(schema, table=f"{schema}.changes", cursor_column="updated_at",
                           dsn=conn.info.dsn))
    first = adapter.snapshot()
    assert first.cursor == start + timedelta(minutes=5)
    add("new", 10)
    second = adapter.updates(first.cursor)
    assert list(second.frame["id"]) == ["new"]
    assert second.cursor == start + timedelta(minutes=10)


def test_bad_rows_are_rejected_and_counted(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".messy (id text, time text, category text, '
                 'closed_time timestamptz, geom geometry(Geometry, 4326))')
    rows = [
        ("good-1", "2022-05-01T00:00:00", None, "POINT(-73.98 40.75)"),
        ("good-2", "2022-05-01T00:05:00", "2022-05-01T01:00:00Z", "POINT(-73.95 40.80)"),
        ("no-geometry", "2022-05-01T00:06:00", None, None),
        ("empty-point", "2022-05-01T00:06:00", None, "POINT EMPTY"),
        ("bad-time", "not a time", None, "POINT(-73.97 40.76)"),
        ("a-line", "2022-05-01T00:07:00", None, "LINESTRING(-73.9 40.7, -73.8 40.8)"),
        # Out of Python's datetime range: the row is rejected, the source still reads.
        ("forever", "2022-05-01T00:08:00", "infinity", "POINT(-73.96 40.77)"),
    ]
    for name, time, closed, wkt in rows:
        conn.execute(f'INSERT INTO "{schema}".messy VALUES (%s, %s, %s, %s, '
                     'ST_GeomFromText(%s, 4326))', [name, time, "Noise", closed, wkt])
    batch = build(source(schema, table=f"{schema}.messy", geometry_column="geom",
                         closed_time="closed_time", dsn=conn.info.dsn)).snapshot()
    assert sorted(batch.frame["id"]) == ["good-1", "good-2"]
    assert dict(batch.rejected) == {"missing coordinates": 2, "unparseable time": 1,
                                    "not a point": 1, "unparseable closed_time": 1}


@pytest.mark.parametrize("mapping", [{"geometry_column": "shape"}, {"geometry": "shape"}])
def test_area_source_feeds_population(pg: tuple[Any, str], build: Any,
                                      mapping: dict[str, str]) -> None:
    from pyproj import Transformer

    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".tracts (tract text, tract_name text, residents integer, '
                 'shape geometry(MultiPolygon, 2263))')
    to_plane = Transformer.from_crs("EPSG:4326", "EPSG:2263", always_xy=True)
    boxes = {"t1": (-73.99, 40.74, -73.98, 40.75), "t2": (-73.96, 40.77, -73.95, 40.78)}
    for tract, (west, south, east, north) in boxes.items():
        (x0, x1), (y0, y1) = to_plane.transform([west, east], [south, north])
        conn.execute(f'INSERT INTO "{schema}".tracts VALUES (%s, %s, %s, '
                     'ST_Multi(ST_MakeEnvelope(%s, %s, %s, %s, 2263)))',
                     [tract, f"Tract {tract}", 1200, x0, y0, x1, y1])
    conn.execute(f'INSERT INTO "{schema}".tracts VALUES (%s, %s, %s, NULL)', ["t3", "none", 5])
    conn.execute(f'INSERT INTO "{schema}".tracts VALUES (%s, %s, NULL, ST_Multi('
                 'ST_MakeEnvelope(985000, 210000, 986000, 211000, 2263)))', ["t4", "no value"])
    table = {"name": f"pop-{schema}", "layer": "people", "role": "population",
             "adapter": "postgis", "table": f"{schema}.tracts", "dsn": conn.info.dsn,
             "id": "tract", "label": "tract_name", "value": "residents", **mapping}
    batch = build(table).snapshot()
    frame = batch.frame.set_index("id")
    assert sorted(frame.index) == ["t1", "t2"]
    assert frame.crs.to_epsg() == 4326
    assert frame.loc["t1", "value"] == 1200.0 and frame.loc["t1", "name"] == "Tract t1"
    for tract, (west, south, east, north) in boxes.items():
        bounds = frame.loc[tract, "geometry"].bounds
        # Corners of a state-plane rectangle: close to the degree box they came from.
        assert bounds == pytest.approx((west, south, east, north), abs=2e-4)
    assert dict(batch.rejected) == {"missing geometry": 1, "unparseable value": 1}


def test_empty_tables_give_empty_frames(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    create_points(conn, schema)
    conn.execute(f'DELETE FROM "{schema}".points')
    conn.execute(f'CREATE TABLE "{schema}".areas (id text, v float8, geom geometry(Polygon, 4326))')
    points = build(source(schema, table=f"{schema}.points", geometry_column="geom",
                          cursor_column="time", dsn=conn.info.dsn)).snapshot()
    assert points.frame.empty and "cell" in points.frame and points.cursor is None
    areas = build({"name": f"areas-{schema}", "layer": "people", "role": "population",
                   "adapter": "postgis", "table": f"{schema}.areas", "dsn": conn.info.dsn,
                   "id": "id", "value": "v", "geometry_column": "geom"}).snapshot()
    assert areas.frame.empty and "geometry" in areas.frame


def test_query_source(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    create_points(conn, schema)
    # '%' in the operator's SQL must reach PostgreSQL untouched.
    query = (f"SELECT p.id, p.time, upper(p.category) AS kind, p.geom FROM \"{schema}\".points p "
             "WHERE p.category LIKE 'Noise%';")
    batch = build(source(schema, query=query, category="kind", geometry_column="geom",
                         bbox=[-74.3, 40.4, -73.6, 41.0], dsn=conn.info.dsn)).snapshot()
    noise = [r for r in GOOD_ROWS if r["category"].startswith("Noise")]
    assert sorted(batch.frame["id"]) == sorted(r["id"] for r in noise)
    assert set(batch.frame["category"]) == {r["category"].upper() for r in noise}


def test_a_query_cannot_write(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".keep (id text)')
    adapter = build(source(schema, dsn=conn.info.dsn, query=(
        f"SELECT 1 AS id, 2 AS time, 3 AS category, 4 AS lat, 5 AS lon; "
        f'DROP TABLE "{schema}".keep')))
    with pytest.raises(SourceError):
        adapter.snapshot()
    assert conn.execute(f'SELECT count(*) FROM "{schema}".keep').fetchone()[0] == 0


def test_unknown_table_is_a_clear_source_error(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    adapter = build(source(schema, table=f"{schema}.no_such_table", dsn=conn.info.dsn))
    with pytest.raises(SourceError, match=rf"table '{schema}.no_such_table' does not exist"):
        adapter.snapshot()


def test_names_from_the_config_are_identifiers_not_sql(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    conn.execute(f'CREATE TABLE "{schema}".keep (id text)')
    hostile = ["x", f'y"; DROP TABLE "{schema}".keep; --']
    with pytest.raises(SourceError, match="does not exist"):
        build(source(schema, table=[schema, hostile[1]], dsn=conn.info.dsn)).snapshot()
    create_points(conn, schema)
    with pytest.raises(SourceError, match="missing column"):
        build(source(schema, table=f"{schema}.points", geometry_column=hostile[1],
                     dsn=conn.info.dsn)).snapshot()
    assert conn.execute(f'SELECT count(*) FROM "{schema}".keep').fetchone()[0] == 0


def test_dsn_and_password_come_from_the_environment(pg: tuple[Any, str], build: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    conn, schema = pg
    create_points(conn, schema)
    monkeypatch.setenv("CITYBRAIN_TEST_PG_DSN", conn.info.dsn)
    monkeypatch.delenv("CITYBRAIN_TEST_PG_PASSWORD", raising=False)
    adapter = build(source(schema, table=f"{schema}.points", geometry_column="geom",
                           dsn_env="CITYBRAIN_TEST_PG_DSN",
                           password_env="CITYBRAIN_TEST_PG_PASSWORD"))
    with pytest.raises(SourceError, match="CITYBRAIN_TEST_PG_PASSWORD"):
        adapter.snapshot()
    monkeypatch.setenv("CITYBRAIN_TEST_PG_PASSWORD", "not-needed-with-trust-auth")
    assert len(adapter.snapshot().frame) == len(GOOD_ROWS)


@pytest.mark.parametrize(("options", "message"), [
    ({"table": "t", "dsn": "host=db password=secret"}, "password"),
    ({"table": "t", "query": "SELECT 1", "dsn": "host=db"}, "exactly one of 'table' or 'query'"),
    ({"table": "t"}, "exactly one of 'dsn'"),
    ({"table": "t", "dsn": "host=db", "bbox": [10, 0, 5, 1]}, "bbox"),
    ({"table": "a.b.c", "dsn": "host=db"}, "schema.table"),
    ({"table": "t", "dsn": "host=db", "time_window": "soon"}, "duration"),
])
def test_bad_options_are_config_errors(build: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(source("config", **options))


def test_reopens_a_connection_the_server_dropped(pg: tuple[Any, str], build: Any) -> None:
    conn, schema = pg
    create_points(conn, schema)
    adapter = build(source(schema, table=f"{schema}.points", geometry_column="geom",
                           dsn=conn.info.dsn))
    assert len(adapter.snapshot().frame) == len(GOOD_ROWS)
    # Only this test's own adapter connection, found by its application_name.
    killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = %s", [f"citybrain:pg-{schema}"]).fetchall()
    assert killed == [(True,)]
    assert len(adapter.snapshot().frame) == len(GOOD_ROWS)


# --------------------------------------------------------------------- outage
def test_outage_is_reported_and_recovered_from(tmp_path: Path) -> None:
    """Stop the database under a loaded source: health shows the error, the layer keeps
    its rows; start it again: the adapter reconnects by itself."""
    import psycopg

    from store.city import CityData

    ok, reason = PrivatePostgres.available()
    require(ok, reason)
    with PrivatePostgres(free_port()) as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            ensure_postgis(conn)
            conn.execute("CREATE TABLE feed (seq serial PRIMARY KEY, id text, time timestamptz, "
                         "category text, geom geometry(Point, 4326))")
            conn.execute("INSERT INTO feed (id, time, category, geom) SELECT 'r' || i, now(), "
                         "'Noise', ST_SetSRID(ST_MakePoint(-73.98, 40.75 + i / 1000.0), 4326) "
                         "FROM generate_series(1, 3) AS i")
        config = parse_config({"city": CITY, "sources": [source(
            "outage", name="db", table="feed", geometry_column="geom", cursor_column="seq",
            dsn=server.dsn, connect_timeout=2)]}, tmp_path)
        spec = config.sources[0]
        data = CityData.load(config)
        try:
            health = data.health["db"]
            assert health.last_error is None and health.rows_loaded == 3
            adapter = data.adapter(spec)

            server.stop()
            with pytest.raises(SourceError, match=rf"cannot connect to PostgreSQL at "
                                                  rf"127.0.0.1:{server.port}"):
                adapter.snapshot()
            data.refresh_source(spec, incremental=True)
            assert f"127.0.0.1:{server.port}" in (health.last_error or "")
            assert health.is_stale()
            assert sorted(data.frame("government", "requests")["id"]) == ["r1", "r2", "r3"]

            server.start()
            with psycopg.connect(server.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO feed (id, time, category, geom) VALUES ('r4', now(), "
                             "'Noise', ST_SetSRID(ST_MakePoint(-73.97, 40.76), 4326))")
            data.refresh_source(spec, incremental=True)
            assert health.last_error is None
            assert sorted(data.frame("government", "requests")["id"]) == ["r1", "r2", "r3", "r4"]
        finally:
            data.adapter(spec).close()
