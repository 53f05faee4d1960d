"""The HTTP adapters (open311, sensorthings, ngsi-ld) against real local HTTP servers.

The servers (:mod:`tests.http_fixtures`) answer in the shape of each
specification's own examples and misbehave on demand, so every path — paging,
normalising, rejecting bad records, failing cleanly, recovering in the app — runs
over a real HTTP connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app import parse_config
from data import AdapterContext, SourceError, get_adapter_class
from tests.conftest import free_port
from tests.http_fixtures import (
    ApiServer,
    NgsiLdServer,
    Open311Server,
    SensorThingsServer,
    ngsild_spec_example,
    open311_request,
    open311_spec_example,
    sensorthings_spec_example,
    sensorthings_thing,
)

CITY = {"name": "HTTP City", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}


def source_table(adapter: str, layer: str = "government", **options: Any) -> dict[str, Any]:
    return {"name": "api", "layer": layer, "adapter": adapter, **options}


def make_adapter(tmp_path: Path, table: dict[str, Any]) -> Any:
    source = parse_config({"city": CITY, "sources": [table]}, tmp_path).sources[0]
    return get_adapter_class(source.adapter)(source, AdapterContext(base_res=10, timezone="UTC"))


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


@pytest.fixture
def servers() -> Iterator[list[ApiServer]]:
    """Servers a test starts; all stopped at its end."""
    started: list[ApiServer] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[ApiServer], server: ApiServer) -> Any:
    servers.append(server.start())
    return server


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ------------------------------------------------------------------------- config
@pytest.mark.parametrize(("table", "message"), [
    (source_table("open311"), "missing required key 'endpoint'"),
    (source_table("open311", endpoint="ftp://311.city.gov"), "expected an http"),
    (source_table("open311", endpoint="https://me:pw@311.city.gov"), "credentials do not belong"),
    (source_table("open311", endpoint="https://311.city.gov?api_key=x"), "without '\\?"),
    (source_table("open311", endpoint="https://311.city.gov", window="soon"), "window"),
    (source_table("open311", endpoint="https://311.city.gov", api_key_param="api_key"),
     "needs token_env"),
    (source_table("open311", endpoint="https://311.city.gov", token_env="not a name"),
     "environment variable"),
    (source_table("sensorthings", layer="things", endpoint="https://sta.city.gov/v1.1",
                  page_size=0), "page_size"),
    (source_table("ngsi-ld", layer="things", endpoint="http://broker:1026", page_size=5000),
     "page_size"),
    (source_table("ngsi-ld", layer="things", endpoint="http://broker:1026", timeout=-1),
     "timeout"),
    (source_table("ngsi-ld", layer="things", endpoint="http://broker:1026", limit=10),
     "unknown key"),
    (source_table("open311", endpoint="https://311.city.gov", max_body_mb=0), "max_body_mb"),
    (source_table("sensorthings", layer="things", endpoint="https://sta.city.gov/v1.1",
                  max_body_mb="50MB"), "max_body_mb"),
])
def test_option_mistakes_fail_at_load(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    from config.city import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config({"city": CITY, "sources": [table]}, tmp_path)


# ------------------------------------------------------------------------ Open311
def test_open311_spec_example_normalises(tmp_path: Path, servers: list[ApiServer]) -> None:
    records = open311_spec_example(_now())
    server = start(servers, Open311Server(records))
    adapter = make_adapter(tmp_path, source_table("open311", endpoint=server.endpoint))
    batch = adapter.snapshot()
    frame = batch.frame.set_index("id")

    assert sorted(frame.index) == ["638344", "638349"]
    assert not batch.rejected
    closed, open_ = frame.loc["638344"], frame.loc["638349"]
    assert closed.lat == pytest.approx(37.762221815) and closed.lon == pytest.approx(-122.4651145)
    # The spec's times carry -08:00; normalised times are UTC.
    assert closed.time == utc(records[0]["requested_datetime"])
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert closed.category == "Sidewalk and Curb Issues"
    assert (closed.status, open_.status) == ("closed", "open")
    assert not closed.is_open and open_.is_open
    assert closed.closed_time == utc(records[0]["updated_datetime"])
    assert pd.isna(open_.closed_time)
    assert closed["name"] == "8TH AVE and JUDAH ST"
    assert server.log[0].path == "/open311/v2/requests.json"


def test_open311_pages_by_date_window_and_merges_duplicates(tmp_path: Path,
                                                            servers: list[ApiServer]) -> None:
    now = _now()
    records = [open311_request(f"r{hours}", now - timedelta(hours=hours), 40.7 + hours / 1000,
                               -73.9) for hours in (1, 10, 20, 30, 40, 50, 60, 70)]
    records.append(open311_request("other-service", now - timedelta(hours=2), 40.7, -73.9,
                                   service_code="007"))
    # Rounding windows to whole days makes neighbouring windows answer the same requests.
    server = start(servers, Open311Server(records, round_to_days=True))
    adapter = make_adapter(tmp_path, source_table(
        "open311", endpoint=server.endpoint, lookback="3d", window="1d",
        jurisdiction_id="city.gov", service_code=["006"]))
    batch = adapter.snapshot()

    calls = server.requests_to("/open311/v2/requests.json")
    windows = [(datetime.fromisoformat(c.query["start_date"]),
                datetime.fromisoformat(c.query["end_date"])) for c in calls]
    assert len(windows) == 3
    assert all(c.query["start_date"].endswith("Z") and c.query["end_date"].endswith("Z")
               for c in calls)
    assert all(high - low == timedelta(days=1) for low, high in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(2))
    assert windows[-1][1] - windows[0][0] == timedelta(days=3)
    assert abs(windows[-1][1] - now) < timedelta(minutes=5)
    assert all(c.query["jurisdiction_id"] == "city.gov" and c.query["service_code"] == "006"
               for c in calls)

    assert server.served > len(records) - 1  # the windows did overlap …
    assert sorted(batch.frame["id"]) == sorted(r["service_request_id"] for r in records[:-1])
    assert not batch.rejected  # … and the repeats were merged, not counted as duplicates


def test_open311_updates_from_the_cursor(tmp_path: Path, servers: list[ApiServer]) -> None:
    now = _now()
    server = start(servers, Open311Server([
        open311_request("old", now - timedelta(hours=30), 40.70, -73.90),
        open311_request("newest", now - timedelta(hours=5), 40.71, -73.91),
    ]))
    adapter = make_adapter(tmp_path, source_table("open311", endpoint=server.endpoint,
                                                  lookback="2d"))
    first = adapter.snapshot()
    assert first.cursor == server.records[1]["requested_datetime"].replace("+00:00", "Z")

    server.records.append(open311_request("fresh", now - timedelta(minutes=1), 40.72, -73.92))
    later = adapter.updates(first.cursor)
    assert server.log[-1].query["start_date"] == first.cursor
    assert later.replace is False
    assert list(later.frame["id"]) == ["fresh"]  # 'newest', at the cursor, is not repeated
    assert later.cursor > first.cursor

    again = adapter.updates(later.cursor)
    assert again.frame.empty and again.cursor == later.cursor


def test_open311_api_key_comes_from_the_environment(tmp_path: Path, servers: list[ApiServer],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server = start(servers, Open311Server(open311_spec_example(_now()), api_key="s3cret-key"))
    adapter = make_adapter(tmp_path, source_table(
        "open311", endpoint=server.endpoint, token_env="CITY_311_KEY", api_key_param="api_key"))

    monkeypatch.setenv("CITY_311_KEY", "s3cret-key")
    assert len(adapter.snapshot().frame) == 2
    assert server.log[-1].query["api_key"] == "s3cret-key"

    monkeypatch.setenv("CITY_311_KEY", "wrong-key")
    with pytest.raises(SourceError, match="HTTP 403.*Invalid api_key received") as failure:
        adapter.snapshot()
    assert "wrong-key" not in str(failure.value)
    assert server.endpoint in str(failure.value)

    monkeypatch.delenv("CITY_311_KEY")
    with pytest.raises(SourceError, match="CITY_311_KEY"):
        adapter.snapshot()


# ------------------------------------------------------------------- SensorThings
def test_sensorthings_spec_example_normalises(tmp_path: Path, servers: list[ApiServer],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server = start(servers, SensorThingsServer())
    server.things = sensorthings_spec_example(server.endpoint) + [
        sensorthings_thing(
            server.endpoint, "kiosk-7", "Kiosk 7", properties={"owner": "LinkNYC"},
            location={"type": "Point", "coordinates": [-73.9855, 40.758, 12.0]},
            datastreams=[
                {"id": 71, "name": "footfall", "unit": "1",
                 "observation": ("2024-05-01T10:00:00Z/2024-05-01T11:00:00Z", 340)},
                {"id": 72, "name": "status", "unit": "", "observation": ("2024-05-01T11:05:00Z", "ok")},
            ]),
        sensorthings_thing(server.endpoint, 99, "Filtered out", location=(-73.9, 40.7)),
    ]
    monkeypatch.setenv("CITY_STA_TOKEN", "sta-token")
    adapter = make_adapter(tmp_path, source_table(
        "sensorthings", layer="things", endpoint=server.endpoint, token_env="CITY_STA_TOKEN",
        things_filter="properties/owner eq 'LinkNYC'",
        provider="properties.owner"))
    # The filter keeps only the kiosk; the spec's oven is read without one below.
    kiosk = adapter.snapshot().frame.set_index("id")
    assert sorted(kiosk.index) == ["kiosk-7/71", "kiosk-7/72"]
    assert kiosk.loc["kiosk-7/71", "lat"] == pytest.approx(40.758)
    assert kiosk.loc["kiosk-7/71", "lon"] == pytest.approx(-73.9855)
    assert kiosk.loc["kiosk-7/71", "time"] == utc("2024-05-01T11:00:00Z")  # interval end
    assert kiosk.loc["kiosk-7/71", "reading"] == 340
    assert pd.isna(kiosk.loc["kiosk-7/72", "reading"])  # "ok" is not a number
    assert set(kiosk["provider"]) == {"LinkNYC"}
    request = server.log[-1]
    assert request.query["$filter"] == "properties/owner eq 'LinkNYC'"
    assert request.query["$expand"] == ("Locations,Datastreams/Observations"
                                        "($orderby=phenomenonTime desc;$top=1)")
    assert request.headers["Authorization"] == "Bearer sta-token"

    oven = make_adapter(tmp_path, source_table("sensorthings", layer="things",
                                               endpoint=server.endpoint)).snapshot()
    row = oven.frame.set_index("id").loc["1/1"]
    # The spec's Location is [-114.06, 51.05]: GeoJSON puts longitude first.
    assert (row.lat, row.lon) == (pytest.approx(51.05), pytest.approx(-114.06))
    assert row.time == utc("2014-12-31T03:59:59Z")  # 11:59:59+08:00
    assert (row["name"], row.category, row.reading) == ("Oven", "oven temperature", 70.4)
    assert oven.rejected == {"missing time": 1}  # thing 99 has no Datastream to time it


def test_sensorthings_follows_next_link(tmp_path: Path, servers: list[ApiServer]) -> None:
    server = start(servers, SensorThingsServer(max_top=3))
    server.things = [
        sensorthings_thing(server.endpoint, i, f"Dock {i}", location=(-73.95 + i / 100, 40.7),
                           datastreams=[{"id": i * 10, "name": "bikes available",
                                         "observation": ("2024-05-01T12:00:00Z", i)}])
        for i in range(1, 8)
    ]
    batch = make_adapter(tmp_path, source_table("sensorthings", layer="things",
                                                endpoint=server.endpoint, page_size=50)).snapshot()
    assert sorted(batch.frame["id"]) == sorted(f"{i}/{i * 10}" for i in range(1, 8))
    skips = [int(entry.query.get("$skip", 0)) for entry in server.log]
    assert skips == [0, 3, 6]
    assert all("$expand" in entry.query for entry in server.log)  # the link keeps the query

    bounded = make_adapter(tmp_path, source_table("sensorthings", layer="things",
                                                  endpoint=server.endpoint, max_pages=2)).snapshot()
    assert len(bounded.frame) == 6
    assert any("max_pages" in warning for warning in bounded.warnings)


# ------------------------------------------------------------------------ NGSI-LD
@pytest.mark.parametrize("key_values", [False, True], ids=["normalized", "keyValues"])
def test_ngsild_spec_example_normalises(tmp_path: Path, servers: list[ApiServer],
                                        key_values: bool) -> None:
    server = start(servers, NgsiLdServer(ngsild_spec_example()))
    adapter = make_adapter(tmp_path, source_table(
        "ngsi-ld", layer="things", endpoint=server.url, tenant="openiot", key_values=key_values,
        context="https://smartdatamodels.org/context.jsonld", reading="availableSpotNumber",
        provider="address.addressLocality"))
    batch = adapter.snapshot()
    frame = batch.frame.set_index("id")

    air = frame.loc["urn:ngsi-ld:AirQualityObserved:Madrid-Plaza-de-Espana"]
    assert (air.lat, air.lon) == (pytest.approx(40.423852777), pytest.approx(-3.712247222))
    assert air.time == utc("2016-03-15T11:00:00Z")  # dateObserved, a JSON-LD DateTime
    assert (air.category, air.provider) == ("AirQualityObserved", "Madrid")
    if key_values:
        # The simplified representation drops observedAt: the parking has no time left.
        assert "urn:ngsi-ld:OffStreetParking:Downtown1" not in frame.index
        assert batch.rejected == {"missing coordinates": 1, "missing time": 1}
    else:
        parking = frame.loc["urn:ngsi-ld:OffStreetParking:Downtown1"]
        # The spec's [-8.5, 41.2] is [longitude, latitude].
        assert (parking.lat, parking.lon) == (pytest.approx(41.2), pytest.approx(-8.5))
        assert parking.time == utc("2017-07-29T12:05:02Z")  # its observedAt
        assert (parking["name"], parking.category, parking.reading) == (
            "Downtown One", "OffStreetParking", 121)
        assert batch.rejected == {"missing coordinates": 1}  # the Vehicle has no location

    request = server.log[0]
    assert request.headers["NGSILD-Tenant"] == "openiot"
    assert request.headers["Link"].startswith("<https://smartdatamodels.org/context.jsonld>")
    assert "application/ld+json" in request.headers["Accept"]
    assert (request.query.get("options") == "keyValues") == key_values


@pytest.mark.parametrize(("count", "total", "offsets"), [
    (True, 25, [0, 10, 20]),       # a short third page ends it
    (True, 20, [0, 10]),           # the results count ends it without an empty page
    (False, 20, [0, 10, 20]),      # no count: the empty page is the short one
])
def test_ngsild_pages_by_offset(tmp_path: Path, servers: list[ApiServer], count: bool,
                                total: int, offsets: list[int]) -> None:
    entities = [{"id": f"urn:ngsi-ld:Streetlight:{i}", "type": "Streetlight",
                 "status": {"type": "Property", "value": "on",
                            "observedAt": "2024-05-01T20:00:00Z"},
                 "location": {"type": "GeoProperty",
                              "value": {"type": "Point", "coordinates": [-73.95, 40.70 + i / 1000]}}}
                for i in range(total)]
    entities.append({"id": "urn:ngsi-ld:Bench:1", "type": "Bench"})  # another type
    server = start(servers, NgsiLdServer(entities, count_header=count))
    batch = make_adapter(tmp_path, source_table(
        "ngsi-ld", layer="things", endpoint=server.url + "/ngsi-ld/v1",
        entity_type="Streetlight", page_size=10, status="status")).snapshot()

    assert len(batch.frame) == total and batch.frame["id"].is_unique
    assert [int(entry.query["offset"]) for entry in server.log] == offsets
    assert all(entry.query["limit"] == "10" and entry.query["type"] == "Streetlight"
               for entry in server.log)
    assert [entry.query.get("count") for entry in server.log][:1] == ["true"]
    assert set(batch.frame["status"]) == {"on"}


# ------------------------------------------------------------------------- faults
def _serve(kind: str, servers: list[ApiServer]) -> tuple[ApiServer, dict[str, Any]]:
    """A healthy server of ``kind`` with one good record, and a source table reading it."""
    now = _now()
    if kind == "open311":
        server = start(servers, Open311Server([open311_request("r1", now, 40.7, -73.9)]))
        return server, source_table("open311", endpoint=server.endpoint, lookback="1d")
    if kind == "sensorthings":
        server = start(servers, SensorThingsServer())
        server.things = sensorthings_spec_example(server.endpoint)
        return server, source_table("sensorthings", layer="things", endpoint=server.endpoint)
    server = start(servers, NgsiLdServer(ngsild_spec_example()[:1]))
    return server, source_table("ngsi-ld", layer="things", endpoint=server.url)


KINDS = ["open311", "sensorthings", "ngsi-ld"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("fault", "message"), [
    ("500", r"HTTP 500 Internal Server Error: internal error \(test fault\)"),
    ("hang", r"no answer within 0\.5 s"),
    ("garbage", r"not JSON \(application/json\): '<html>"),
    ("shape", r"expected a"),
])
def test_faults_raise_source_error(tmp_path: Path, servers: list[ApiServer], kind: str,
                                   fault: str, message: str) -> None:
    server, table = _serve(kind, servers)
    adapter = make_adapter(tmp_path, {**table, "timeout": 0.5})
    assert len(adapter.snapshot().frame) >= 1
    server.fail(fault)  # type: ignore[arg-type]
    with pytest.raises(SourceError, match=message) as failure:
        adapter.snapshot()
    assert f"127.0.0.1:{server.port}" in str(failure.value)
    server.fail(None)
    assert len(adapter.snapshot().frame) >= 1  # the same adapter reads again


@pytest.mark.parametrize("kind", KINDS)
def test_a_trickling_answer_is_cut_at_the_deadline(tmp_path: Path, servers: list[ApiServer],
                                                   kind: str) -> None:
    """A byte every 0.2 s keeps each socket read alive; the deadline is on the whole call."""
    server, table = _serve(kind, servers)
    adapter = make_adapter(tmp_path, {**table, "timeout": 1})
    server.trickle_seconds = 0.2
    server.fail("trickle")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"took longer than 1 s \(timeout on the whole call; "
                                          r"\d+ bytes arrived\)"):
        adapter.snapshot()
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.0, elapsed  # 10,000 bytes at 5/s would take 2,000 s
    server.fail(None)
    assert len(adapter.snapshot().frame) >= 1


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_a_huge_answer_is_refused_not_read_whole(tmp_path: Path, servers: list[ApiServer],
                                                 declared: bool) -> None:
    server, table = _serve("open311", servers)
    adapter = make_adapter(tmp_path, {**table, "max_body_mb": 1, "timeout": 20})
    server.huge_bytes, server.huge_declared = 300_000_000, declared
    server.fail("huge")
    if declared:
        message = r"the answer is 300 MB \(Content-Length\), over max_body_mb = 1: refused unread"
    else:
        message = r"the answer is over max_body_mb = 1 \((\d+) bytes read, refused\)"
    with pytest.raises(SourceError, match=message) as refused:
        adapter.snapshot()
    if not declared:
        read = int(str(refused.value).rsplit("(", 1)[1].split()[0])
        assert 1_000_000 < read <= 1_000_000 + 64 * 1024
    # What the server got rid of before the client hung up: socket buffers, not 300 MB.
    time.sleep(0.2)
    assert server.streamed < 30_000_000, server.streamed
    server.fail(None)
    assert len(adapter.snapshot().frame) >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused_raises_source_error(tmp_path: Path, kind: str) -> None:
    port = free_port()  # nothing listens there
    endpoint = f"http://127.0.0.1:{port}" + ("/v1.1" if kind == "sensorthings" else "")
    layer = "government" if kind == "open311" else "things"
    adapter = make_adapter(tmp_path, source_table(kind, layer=layer, endpoint=endpoint,
                                                  timeout=2))
    with pytest.raises(SourceError, match=rf"127\.0\.0\.1:{port}.*cannot connect.*refused"):
        adapter.snapshot()


# -------------------------------------------------------------------- bad records
def test_open311_bad_records_are_counted(tmp_path: Path, servers: list[ApiServer]) -> None:
    now = _now()
    server = start(servers, Open311Server([
        open311_request("good", now - timedelta(hours=1), 40.7, -73.9),
        open311_request("no-place", now - timedelta(hours=2), None, None),
        open311_request("bad-time", "yesterday at noon", 40.7, -73.9),
        open311_request(None, now - timedelta(hours=3), 40.7, -73.9),
    ]))
    server.records.append("not a request")  # type: ignore[arg-type]
    batch = make_adapter(tmp_path, source_table("open311", endpoint=server.endpoint)).snapshot()
    assert list(batch.frame["id"]) == ["good"]
    assert batch.rejected == {"missing coordinates": 1, "unparseable time": 1, "missing id": 1,
                              "not a JSON object": 1}


def test_sensorthings_bad_records_are_counted(tmp_path: Path, servers: list[ApiServer]) -> None:
    server = start(servers, SensorThingsServer())
    stream = [{"id": 1, "name": "pm25", "observation": ("2024-05-01T12:00:00Z", 8.5)}]
    polygon = {"type": "Polygon", "coordinates": [[[-73.9, 40.7], [-73.8, 40.7], [-73.8, 40.8],
                                                   [-73.9, 40.7]]]}
    server.things = [
        sensorthings_thing(server.endpoint, "good", "Good", location=(-73.9, 40.7),
                           datastreams=stream),
        sensorthings_thing(server.endpoint, "nowhere", "No location", datastreams=stream),
        sensorthings_thing(server.endpoint, "area", "Polygon", location=polygon,
                           datastreams=stream),
        sensorthings_thing(server.endpoint, "late", "Bad time", location=(-73.9, 40.7),
                           datastreams=[{"id": 2, "name": "pm25",
                                         "observation": ("half past nine", 3)}]),
        sensorthings_thing(server.endpoint, "silent", "No observation", location=(-73.9, 40.7),
                           datastreams=[{"id": 3, "name": "pm25", "observation": None}]),
    ]
    batch = make_adapter(tmp_path, source_table("sensorthings", layer="things",
                                                endpoint=server.endpoint)).snapshot()
    assert list(batch.frame["id"]) == ["good/1"]
    assert batch.rejected == {"missing coordinates": 1, "location not a point": 1,
                              "unparseable time": 1, "missing time": 1}


def test_ngsild_bad_records_are_counted(tmp_path: Path, servers: list[ApiServer]) -> None:
    def entity(name: str, location: Any, observed: str = "2024-05-01T12:00:00Z") -> dict[str, Any]:
        out: dict[str, Any] = {"id": f"urn:ngsi-ld:Bin:{name}", "type": "WasteContainer",
                               "fillingLevel": {"type": "Property", "value": 0.4},
                               "dateObserved": {"type": "Property", "value": observed}}
        if location is not None:
            out["location"] = {"type": "GeoProperty", "value": location}
        return out

    point = {"type": "Point", "coordinates": [-73.9, 40.7]}
    server = start(servers, NgsiLdServer([
        entity("good", point),
        entity("nowhere", None),
        entity("area", {"type": "Polygon", "coordinates": [[[-73.9, 40.7], [-73.8, 40.7],
                                                            [-73.8, 40.8], [-73.9, 40.7]]]}),
        entity("late", point, observed="not a date"),
        entity("swapped", {"type": "Point", "coordinates": [40.7, -273.9]}),
    ]))
    batch = make_adapter(tmp_path, source_table("ngsi-ld", layer="things",
                                                endpoint=server.url)).snapshot()
    assert list(batch.frame["id"]) == ["urn:ngsi-ld:Bin:good"]
    assert batch.rejected == {"missing coordinates": 1, "location not a point": 1,
                              "unparseable time": 1, "coordinates out of range": 1}


# --------------------------------------------------------------- through the app
@pytest.mark.parametrize("kind", KINDS)
def test_outage_keeps_rows_and_recovers(tmp_path: Path, servers: list[ApiServer],
                                        kind: str) -> None:
    """A failing server leaves the layer's rows in place with the error in health; when
    it answers again the next refresh brings the new data."""
    from store.city import CityData

    server, table = _serve(kind, servers)
    config = parse_config({"city": CITY, "cache": {"directory": str(tmp_path)},
                           "sources": [{**table, "timeout": 0.5}]}, tmp_path)
    source = config.sources[0]
    data = CityData.load(config)
    try:
        health = data.health[source.name]
        layer, role = source.layer, source.role
        before = sorted(data.frame(layer, role)["id"])
        assert health.last_error is None and health.rows_loaded == len(before) >= 1

        server.fail("500")
        data.refresh_source(source, incremental=True)
        assert "HTTP 500" in (health.last_error or "")
        assert health.is_stale()
        assert sorted(data.frame(layer, role)["id"]) == before

        server.fail(None)
        added = _add_record(kind, server)
        data.refresh_source(source, incremental=True)
        assert health.last_error is None
        assert sorted(data.frame(layer, role)["id"]) == sorted([*before, added])
    finally:
        data.adapter(source).close()


def _add_record(kind: str, server: Any) -> str:
    if kind == "open311":
        server.records.append(open311_request("r2", _now(), 40.71, -73.91))
        return "r2"
    if kind == "sensorthings":
        server.things.append(sensorthings_thing(
            server.endpoint, 2, "Fridge", location=(-114.05, 51.04),
            datastreams=[{"id": 2, "name": "fridge temperature",
                          "observation": ("2014-12-31T12:00:00+08:00", 4.0)}]))
        return "2/2"
    server.entities.append({**ngsild_spec_example()[0], "id": "urn:ngsi-ld:OffStreetParking:Downtown2"})
    return "urn:ngsi-ld:OffStreetParking:Downtown2"
