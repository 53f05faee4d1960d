"""normalise(): rows in, the one normalised frame out, bad rows counted by reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from app import parse_config
from data import AdapterContext, SourceError, normalise
from geo.crs import bd09_to_gcj02, gcj02_to_bd09, gcj02_to_wgs84, wgs84_to_gcj02
from layers import LAYERS

CITY = {"name": "T", "center": {"lat": 40.7, "lon": -74.0}, "timezone": "America/New_York"}
CONTEXT = AdapterContext(base_res=10, timezone="America/New_York")


def _source(tmp_path: Path, **fields: object):
    table = {"name": "s", "layer": "government", "adapter": "csv", "path": "x.csv",
             "lat": "lat", "lon": "lon", "time": "t", "id": "id", "category": "kind", **fields}
    return parse_config({"city": CITY, "sources": [table]}, tmp_path).sources[0]


def _run(tmp_path: Path, raw: pd.DataFrame, **fields: object):
    source = _source(tmp_path, **fields)
    return normalise(raw, source, LAYERS["government"].roles["requests"], CONTEXT)


def test_bad_rows_are_rejected_with_reasons(tmp_path: Path) -> None:
    raw = pd.DataFrame({
        "id": ["1", "2", "3", "4", "5", "6", "7", "8", "8"],
        "t": ["2024-01-01 10:00", "2024-01-01 10:00", "yesterday-ish", "2024-01-01 10:00",
              "2024-01-01 10:00", "", "2024-01-01 10:00", "2024-01-01 10:00", "2024-01-02 10:00"],
        "lat": ["40.7", "", "40.7", "95", "0", "40.7", "abc", "40.71", "40.72"],
        "lon": ["-74.0", "-74.0", "-74.0", "-74.0", "0", "-74.0", "-74", "-74.01", "-74.02"],
        "kind": ["Noise", "Noise", "Noise", "Noise", "Noise", "Noise", "Noise", "Heat", "Heat"],
    })
    batch = _run(tmp_path, raw)
    assert dict(batch.rejected) == {
        "missing coordinates": 1, "unparseable time": 1, "coordinates out of range": 1,
        "coordinates at (0, 0)": 1, "missing time": 1, "unparseable coordinates": 1,
        "duplicate id": 1,
    }
    frame = batch.frame
    assert frame["id"].tolist() == ["1", "8"]
    assert frame.loc[frame["id"] == "8", "lat"].item() == pytest.approx(40.72)  # last wins
    # naive local times are read in the city's zone and stored in UTC
    assert frame["time"].iloc[0] == pd.Timestamp("2024-01-01 15:00", tz="UTC")
    assert frame["is_open"].all()


def test_missing_mapped_column_is_a_source_error(tmp_path: Path) -> None:
    raw = pd.DataFrame({"id": ["1"], "t": ["2024-01-01"], "latitude": [40.7], "lon": [-74.0]})
    with pytest.raises(SourceError, match="missing column\\(s\\) 'lat'"):
        _run(tmp_path, raw)


def test_projected_crs_is_converted(tmp_path: Path) -> None:
    to_2263 = Transformer.from_crs("EPSG:4326", "EPSG:2263", always_xy=True)
    x, y = to_2263.transform(-73.9855, 40.7580)
    raw = pd.DataFrame({"id": ["1"], "t": ["2024-01-01"], "lat": [y], "lon": [x], "kind": ["a"]})
    frame = _run(tmp_path, raw, crs="EPSG:2263").frame
    assert frame["lat"].item() == pytest.approx(40.7580, abs=1e-7)
    assert frame["lon"].item() == pytest.approx(-73.9855, abs=1e-7)


def test_china_datums_round_trip() -> None:
    # Tiananmen, WGS84
    lon, lat = np.array([116.391275]), np.array([39.907380])
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    assert abs(g_lon[0] - lon[0]) > 1e-4  # GCJ-02 really shifts in China
    back_lon, back_lat = gcj02_to_wgs84(g_lon, g_lat)
    assert back_lon[0] == pytest.approx(lon[0], abs=1e-7)
    assert back_lat[0] == pytest.approx(lat[0], abs=1e-7)
    b_lon, b_lat = gcj02_to_bd09(g_lon, g_lat)
    r_lon, r_lat = bd09_to_gcj02(b_lon, b_lat)
    assert r_lon[0] == pytest.approx(g_lon[0], abs=1e-6)
    assert r_lat[0] == pytest.approx(g_lat[0], abs=1e-6)
    # outside China nothing moves
    ny_lon, ny_lat = wgs84_to_gcj02(np.array([-74.0]), np.array([40.7]))
    assert (ny_lon[0], ny_lat[0]) == (-74.0, 40.7)


def test_gcj02_source_is_converted_to_wgs84(tmp_path: Path) -> None:
    lon, lat = wgs84_to_gcj02(np.array([121.4737]), np.array([31.2304]))
    raw = pd.DataFrame({"id": ["1"], "t": ["2024-01-01"], "lat": [lat[0]], "lon": [lon[0]],
                        "kind": ["a"]})
    frame = _run(tmp_path, raw, crs="GCJ-02").frame
    assert frame["lon"].item() == pytest.approx(121.4737, abs=1e-7)
    assert frame["lat"].item() == pytest.approx(31.2304, abs=1e-7)


def test_where_filter_keeps_matching_rows_only(tmp_path: Path) -> None:
    raw = pd.DataFrame({"id": ["1", "2"], "t": ["2024-01-01"] * 2, "lat": [40.7] * 2,
                        "lon": [-74.0] * 2, "kind": ["keep", "drop"]})
    batch = _run(tmp_path, raw, where={"kind": ["keep"]})
    assert batch.frame["id"].tolist() == ["1"]
    assert not batch.rejected  # filtered out is not rejected


def test_request_state_columns(tmp_path: Path) -> None:
    raw = pd.DataFrame({"id": ["1", "2", "3"], "t": ["2024-01-01 10:00"] * 3, "lat": [40.7] * 3,
                        "lon": [-74.0] * 3, "kind": ["a"] * 3,
                        "done": ["2024-01-01 12:30", "", ""], "st": ["Closed", "Closed", "Open"]})
    frame = _run(tmp_path, raw, closed_time="done", status="st").frame
    assert frame["is_open"].tolist() == [False, False, True]
    assert frame["hours_to_close"].iloc[0] == pytest.approx(2.5)
    assert np.isnan(frame["hours_to_close"].iloc[1])


def test_mixed_offsets_in_one_time_column(tmp_path: Path) -> None:
    raw = pd.DataFrame({"id": ["1", "2", "3"],
                        "t": ["2024-01-01T10:00:00Z", "2024-01-01T18:00:00+08:00",
                              "2024-07-01 06:00"],  # naive: the city's zone (EDT here)
                        "lat": [40.7] * 3, "lon": [-74.0] * 3, "kind": ["a"] * 3})
    frame = _run(tmp_path, raw).frame
    assert frame["time"].tolist() == [pd.Timestamp("2024-01-01 10:00", tz="UTC")] * 2 + [
        pd.Timestamp("2024-07-01 10:00", tz="UTC")]


def test_ambiguous_dst_hour_and_epoch_text_are_times(tmp_path: Path) -> None:
    raw = pd.DataFrame({"id": ["1", "2"], "t": ["11/03/2024 01:30:00 AM", "11/03/2024 03:00"],
                        "lat": [40.7] * 2, "lon": [-74.0] * 2, "kind": ["a"] * 2})
    frame = _run(tmp_path, raw).frame
    assert frame["time"].iloc[0] == pd.Timestamp("2024-11-03 05:30", tz="UTC")  # EDT reading
    epoch = pd.DataFrame({"id": ["1"], "t": ["1714742100"], "lat": [40.7], "lon": [-74.0],
                          "kind": ["a"]})
    assert _run(tmp_path, epoch).frame["time"].item() == pd.Timestamp(1714742100, unit="s",
                                                                      tz="UTC")


def test_bd09_inverse_is_exact() -> None:
    from geo.crs import bd09_to_gcj02_exact

    lon, lat = np.array([116.404, 121.4737]), np.array([39.915, 31.2304])
    b_lon, b_lat = gcj02_to_bd09(lon, lat)
    back_lon, back_lat = bd09_to_gcj02_exact(b_lon, b_lat)
    assert np.abs(back_lon - lon).max() < 1e-9 and np.abs(back_lat - lat).max() < 1e-9
