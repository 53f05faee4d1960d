"""Entities and their observations: stations apart from their hourly readings.

A synthetic city (on Chengdu's coordinates, UTC+8) has three air-quality stations in
one file and 48 hours of their readings in another, without coordinates. The
readings name the stations' source in config; they must take their station's
location, keep every (station, hour) observation, and a reading rule must raise one
alert per station *episode* (computed here independently with pandas), not one per
reading.
"""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.city import ConfigError
from data.base import normalise
from layers import LAYERS
from ops.signs.alerts import AlertBook
from ops.signs.indicators import evaluate
from ops.signs.rules import parse_rules
from ops.signs.settings import parse_indicator
from store.city import CityData

CITY = {"name": "Station City", "center": {"lat": 30.66, "lon": 104.06},
        "timezone": "Asia/Shanghai"}
T0 = pd.Timestamp("2024-01-10 00:00", tz="Asia/Shanghai")
HOURS = 48
LIMIT = 75.0
STATIONS = pd.DataFrame({"code": ["1431A", "1432A", "1433A"],
                         "site": ["金泉两河", "十里店", "三瓦窑"],
                         "lat": [30.7155, 30.6872, 30.5790],
                         "lon": [103.9734, 104.1262, 104.0672],
                         "district": ["金牛区", "成华区", "武侯区"]})


def synthetic_readings(seed: int = 3) -> pd.DataFrame:
    """Hourly PM2.5 per station: a random walk around the limit, so episodes come and go."""
    rng = np.random.default_rng(seed)
    frames = []
    for code in STATIONS["code"]:
        walk = 70 + np.cumsum(rng.normal(0, 9, HOURS))
        frames.append(pd.DataFrame({
            "station": code,
            "hour": [(T0 + pd.Timedelta(hours=h)).strftime("%Y-%m-%d %H:%M") for h in range(HOURS)],
            "pm25": np.clip(walk, 1, None).round(1)}))
    return pd.concat(frames, ignore_index=True)


def episodes(readings: pd.DataFrame, until: pd.Timestamp) -> tuple[int, int]:
    """(episodes begun, episodes ended) by ``until``, per station from its readings alone."""
    begun = ended = 0
    times = pd.to_datetime(readings["hour"]).dt.tz_localize("Asia/Shanghai")
    for _, group in readings.assign(t=times).loc[times <= until].groupby("station"):
        breach = (group.sort_values("t")["pm25"] > LIMIT).to_numpy()
        before = np.concatenate([[False], breach[:-1]])
        begun += int((breach & ~before).sum())
        ended += int((~breach & before).sum())
    return begun, ended


def write_city(tmp_path: Path, readings: pd.DataFrame, streaming: bool = False,
               window: str = "6h") -> CityData:
    STATIONS.to_csv(tmp_path / "stations.csv", index=False)
    readings.to_csv(tmp_path / "readings.csv", index=False)
    config = parse_config({
        "city": CITY, "cache": {"directory": str(tmp_path / "cache")},
        "live": {"window": window, "history": "3d"},
        "sources": [
            {"name": "pm25", "layer": "things", "role": "readings",
             "adapter": "replay" if streaming else "csv", "path": "readings.csv",
             "entity_source": "stations", "entity": "station", "time": "hour",
             "reading": "pm25"},
            {"name": "stations", "layer": "things", "role": "devices", "adapter": "csv",
             "path": "stations.csv", "id": "code", "label": "site", "category": "district"},
        ]}, tmp_path)
    if not streaming:
        return CityData.load(config)
    data = CityData(config)
    data.refresh_source(config.sources[1])
    data.adapter(config.sources[0])  # its live window; fed by hand below
    return data


def reading_rule(data: CityData) -> AlertBook:
    rules = parse_rules([{"name": "pm25-high", "kind": "reading", "layer": "things",
                          "role": "readings", "column": "reading", "above": LIMIT}], [],
                        sources=data.config.sources)
    return AlertBook(rules)


def test_readings_take_their_stations_location_and_keep_every_hour(tmp_path: Path) -> None:
    raw = synthetic_readings()
    unknown = pd.DataFrame({"station": ["9999A", "9999A"], "hour": raw["hour"].iloc[:2],
                            "pm25": [50.0, 60.0]})
    data = write_city(tmp_path, pd.concat([raw, unknown], ignore_index=True))
    rows = data.frame("things", "readings")
    assert len(rows) == len(raw) == 3 * HOURS  # every (station, hour): nothing collapsed
    assert rows["id"].is_unique
    expected = raw.merge(STATIONS, left_on="station", right_on="code")
    got = rows.assign(hour=rows["time"].dt.tz_convert("Asia/Shanghai").dt.strftime(
        "%Y-%m-%d %H:%M")).merge(expected, left_on=["entity", "hour"],
                                 right_on=["station", "hour"], suffixes=("", "_truth"))
    assert len(got) == len(raw)
    np.testing.assert_allclose(got["lat"], got["lat_truth"])
    np.testing.assert_allclose(got["lon"], got["lon_truth"])
    np.testing.assert_allclose(got["reading"], got["pm25"])
    truth_cells = [int(h3.latlng_to_cell(la, lo, 10), 16)
                   for la, lo in zip(got["lat_truth"], got["lon_truth"], strict=True)]
    assert got["cell"].tolist() == truth_cells
    for res in (7, 8, 9):  # the station's exact cell at every served resolution
        assert got[f"cell_{res}"].tolist() == [
            int(h3.latlng_to_cell(la, lo, res), 16)
            for la, lo in zip(got["lat_truth"], got["lon_truth"], strict=True)]
    assert (got["name"] == got["site"]).all() and (got["category"] == got["district"]).all()
    assert dict(data.health["pm25"].rejected) == {"unknown entity": 2}


@pytest.mark.parametrize("step_minutes", [60, 20])
def test_a_reading_rule_raises_one_alert_per_station_episode(tmp_path: Path,
                                                             step_minutes: int) -> None:
    raw = synthetic_readings()
    data = write_city(tmp_path, raw)
    book = reading_rule(data)
    raised = cleared = 0
    moment = T0
    end = T0 + pd.Timedelta(hours=HOURS - 1)
    while moment <= end:
        changes = book.evaluate(data, moment.tz_convert("UTC"))
        assert not changes.errors
        raised += len(changes.raised)
        cleared += len(changes.cleared)
        moment += pd.Timedelta(minutes=step_minutes)
    begun, ended = episodes(raw, end)
    breaching = int((raw["pm25"] > LIMIT).sum())
    assert begun >= 4 and breaching > 2 * begun  # the data do have episodes of several hours
    assert (raised, cleared) == (begun, ended)
    assert {a.key for a in book.active()} <= set(STATIONS["code"])
    latest = raw.groupby("station").last()
    assert {a.key for a in book.active()} == set(latest.index[latest["pm25"] > LIMIT])


@pytest.mark.parametrize("window", ["6h", "30m"])
def test_streamed_readings_raise_one_alert_per_episode_and_per_reading_means(
        tmp_path: Path, window: str) -> None:
    """Each hour's readings arrive 10 minutes after it; rules are checked then and 30
    minutes later, when with a 30-minute window a station's latest reading has left the
    window (it has not recovered for that: no alert may clear and be raised again)."""
    raw = synthetic_readings(seed=11)
    data = write_city(tmp_path, raw.iloc[0:0], streaming=True, window=window)
    source = data.config.sources[0]
    role = LAYERS["things"].roles["readings"]
    clock_now = {"t": T0.tz_convert("UTC")}
    data.clock.now = lambda: clock_now["t"]  # type: ignore[method-assign]
    book = reading_rule(data)
    raised = 0
    hours = pd.to_datetime(raw["hour"]).dt.tz_localize("Asia/Shanghai")
    for h in range(HOURS):
        moment = T0 + pd.Timedelta(hours=h)
        clock_now["t"] = (moment + pd.Timedelta(minutes=10)).tz_convert("UTC")
        batch = normalise(raw.loc[hours == moment], source, role, data.context,
                          versions_supersede=True)
        batch.replace = False
        data.apply_batch(source, batch)
        data.expire()
        raised += len(book.evaluate(data, clock_now["t"]).raised)
        if h < HOURS - 1:
            clock_now["t"] += pd.Timedelta(minutes=30)
            data.expire()
            raised += len(book.evaluate(data, clock_now["t"]).raised)
            clock_now["t"] -= pd.Timedelta(minutes=30)
    end = T0 + pd.Timedelta(hours=HOURS - 1)
    assert raised == episodes(raw, end)[0]
    # Per reading: the bucketed hourly mean is the mean of that hour's three readings.
    hourly = parse_indicator({"name": "pm", "layer": "things", "role": "readings",
                              "kind": "mean", "over": "buckets", "column": "reading",
                              "bucket": "1h", "window": "12h"})
    reading = evaluate(data, hourly, clock_now["t"], with_forecast=False)
    assert reading.time == end  # the watermark: the newest reading, not now
    by_hour = raw.assign(t=hours).groupby("t")["pm25"].mean()
    np.testing.assert_allclose(reading.series_values,
                               by_hour.loc[[t.tz_convert("Asia/Shanghai")
                                            for t in reading.series_times]].to_numpy())
    # Per entity: a state mean is over each station's latest reading.
    state = parse_indicator({"name": "now", "layer": "things", "role": "readings",
                             "kind": "mean", "column": "reading"})
    count = parse_indicator({"name": "n", "layer": "things", "role": "readings",
                             "kind": "count"})
    latest = raw.groupby("station")["pm25"].last()
    assert evaluate(data, state, clock_now["t"], with_forecast=False).value == \
        pytest.approx(latest.mean())
    assert evaluate(data, count, clock_now["t"], with_forecast=False).value == 3


@pytest.mark.parametrize(("change", "message"), [
    ({"entity": None}, r"'pm25': missing required key 'entity'"),
    ({"entity_source": "nowhere"}, r"entity_source: unknown source 'nowhere'; valid sources "
                                   r"are: stations"),
    ({"entity_source": "pm25"}, r"entity_source: unknown source 'pm25'"),
])
def test_entity_config_mistakes_name_the_key(tmp_path: Path, change: dict[str, object],
                                             message: str) -> None:
    readings = {"name": "pm25", "layer": "things", "role": "readings", "adapter": "csv",
                "path": "r.csv", "entity_source": "stations", "entity": "station",
                "time": "hour", "reading": "pm25"}
    readings = {k: v for k, v in {**readings, **change}.items() if v is not None}
    stations = {"name": "stations", "layer": "things", "adapter": "csv", "path": "s.csv"}
    with pytest.raises(ConfigError, match=message):
        parse_config({"city": CITY, "sources": [readings, stations]}, tmp_path)


def test_entity_source_is_only_for_observations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"entity_source: only for observations.*"
                                          r"things/readings"):
        parse_config({"city": CITY, "sources": [
            {"name": "a", "layer": "things", "adapter": "csv", "path": "a.csv",
             "entity_source": "b"},
            {"name": "b", "layer": "things", "adapter": "csv", "path": "b.csv"}]}, tmp_path)
