"""Indicators at the data's watermark: bucketed means recomputed in pandas.

Two streaming sources of hourly station readings feed one role through the real
normalisation and live windows on a hand-driven clock; one of them delivers each
hour's readings three hours late. The module must evaluate the role's bucketed
indicators up to the lagging source's newest reading (its watermark), and every
bucket must equal a plain pandas mean over the readings whose time lies in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.city import ConfigError
from data.base import normalise
from layers import LAYERS
from ops.signs.indicators import evaluate, evaluation_time, series
from ops.signs.settings import parse_indicator
from store.city import CityData

CITY = {"name": "Lagburg", "center": {"lat": 31.2, "lon": 121.5}, "timezone": "Asia/Shanghai"}
T0 = pd.Timestamp("2024-05-01 00:00", tz="UTC")
LAG = 3  # hours the second source's readings arrive late


class ManualClock:
    """A city clock that moves only when the test says so."""

    speed = 1.0
    accelerated = False

    def __init__(self, start: pd.Timestamp) -> None:
        self.origin = self.moment = start

    def now(self) -> pd.Timestamp:
        return self.moment

    def elapsed(self) -> float:
        return (self.moment - self.origin).total_seconds()


def two_source_city(tmp_path: Path, clock: ManualClock, watermark: str = "newest") -> CityData:
    sources = [{"name": name, "layer": "things", "role": "devices", "adapter": "replay",
                "path": str(tmp_path / "unused.csv"), "id": "id", "time": "t", "lat": "lat",
                "lon": "lon", "reading": "pm", "watermark": watermark}
               for name in ("north", "south")]
    config = parse_config({"city": CITY, "cache": {"directory": str(tmp_path / "cache")},
                           "live": {"window": "1h", "history": "4d"}, "sources": sources},
                          tmp_path)
    data = CityData(config)
    data.clock = clock  # type: ignore[assignment]
    for source in config.sources:
        data.adapter(source)  # opens the live window; the replay file is never read
    return data


def readings(prefix: str, hour: int, rng: np.random.Generator) -> pd.DataFrame:
    """One reading per station of a source for hour ``hour`` (stamped at minute 0)."""
    moment = T0 + pd.Timedelta(hours=hour)
    stations = [f"{prefix}{i}" for i in range(3)]
    return pd.DataFrame({"id": [f"{s}@{hour}" for s in stations], "t": moment,
                         "lat": 31.2 + 0.01 * np.arange(3), "lon": 121.5 if prefix == "n" else 121.6,
                         "pm": rng.gamma(4.0, 10.0, 3).round(1)})


def feed(data: CityData, name: str, raw: pd.DataFrame) -> None:
    source = next(s for s in data.config.sources if s.name == name)
    batch = normalise(raw, source, LAYERS["things"].roles["devices"], data.context,
                      versions_supersede=True)
    batch.replace = False
    data.apply_batch(source, batch)


def run(data: CityData, clock: ManualClock, hours: int) -> pd.DataFrame:
    """Feed ``hours`` hours; returns every reading fed (with its time) for pandas."""
    rng = np.random.default_rng(5)
    fed = []
    for hour in range(hours + 1):
        clock.moment = T0 + pd.Timedelta(hours=hour, minutes=20)
        north = readings("n", hour, rng)
        feed(data, "north", north)
        fed.append(north)
        if hour >= LAG:  # the south source delivers hour h − LAG now
            south = readings("s", hour - LAG, rng)
            feed(data, "south", south)
            fed.append(south)
        data.expire()
    frame = pd.concat(fed, ignore_index=True)
    return frame.assign(t=pd.to_datetime(frame["t"], utc=True))


def pandas_mean(fed: pd.DataFrame, end: pd.Timestamp, span: pd.Timedelta) -> float:
    inside = fed.loc[(fed["t"] > end - span) & (fed["t"] <= end), "pm"]
    return float(inside.mean()) if len(inside) else float("nan")


@pytest.fixture
def city(tmp_path: Path) -> tuple[CityData, ManualClock, pd.DataFrame]:
    clock = ManualClock(T0)
    data = two_source_city(tmp_path, clock)
    fed = run(data, clock, hours=40)
    return data, clock, fed


def test_hourly_mean_stops_at_the_lagging_sources_watermark(city) -> None:
    data, clock, fed = city
    hourly = parse_indicator({"name": "pm", "layer": "things", "kind": "mean", "over": "buckets",
                              "column": "reading", "bucket": "1h", "window": "24h"})
    now = clock.now()  # 40 h 20 min after T0
    south_newest = fed.loc[fed["id"].str.startswith("s"), "t"].max()
    assert data.watermark("north") == T0 + pd.Timedelta(hours=40)
    assert data.watermark("south") == south_newest == T0 + pd.Timedelta(hours=40 - LAG)
    at, mark = evaluation_time(data, hourly, now)
    assert at == mark == south_newest
    reading = evaluate(data, hourly, now, with_forecast=False)
    assert reading.time == south_newest and reading.watermark == south_newest
    assert reading.as_dict()["watermark"] == south_newest.isoformat()
    expected = [pandas_mean(fed, end, pd.Timedelta(hours=1)) for end in reading.series_times]
    assert len(expected) == 24 and reading.series_times[-1] == south_newest
    np.testing.assert_allclose(reading.series_values, expected)
    # Every hour of the window holds both sources' stations (6 readings), and none is
    # evaluated for the hours only the north source has reached.
    assert np.isfinite(reading.series_values).all()
    assert max(reading.series_times) <= south_newest
    # At the clock's now (the old behaviour) the last hour would be the north stations
    # alone, and the hours before it would miss the south's readings still to come.
    last = fed.loc[(fed["t"] > now - pd.Timedelta(hours=1)) & (fed["t"] <= now)]
    assert set(last["id"].str[0]) == {"n"}
    assert series(data, hourly, now).iloc[-1] == pytest.approx(last["pm"].mean())


def test_day_mean_covers_24_hours_of_both_sources(city) -> None:
    data, clock, fed = city
    daily = parse_indicator({"name": "pm24", "layer": "things", "kind": "mean",
                             "over": "buckets", "column": "reading", "bucket": "24h",
                             "window": "24h"})
    reading = evaluate(data, daily, clock.now(), with_forecast=False)
    end = reading.time
    inside = fed.loc[(fed["t"] > end - pd.Timedelta(hours=24)) & (fed["t"] <= end)]
    assert inside["t"].nunique() == 24 and len(inside) == 24 * 6
    assert reading.value == pytest.approx(inside["pm"].mean())


def test_one_source_indicator_has_its_own_watermark(city) -> None:
    data, clock, fed = city
    north = parse_indicator({"name": "n", "layer": "things", "kind": "rate", "bucket": "1h",
                             "window": "6h", "source": "north"},
                            sources=data.config.sources)
    reading = evaluate(data, north, clock.now(), with_forecast=False)
    assert reading.time == T0 + pd.Timedelta(hours=40)
    assert reading.series_values == (3.0,) * 6


def test_state_indicators_stay_at_now(city) -> None:
    data, clock, _ = city
    count = parse_indicator({"name": "c", "layer": "things", "kind": "count"})
    reading = evaluate(data, count, clock.now(), with_forecast=False)
    assert reading.time == clock.now()
    assert reading.watermark == T0 + pd.Timedelta(hours=40 - LAG)


def test_a_clock_watermark_keeps_the_old_behaviour(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data = two_source_city(tmp_path, clock, watermark="clock")
    run(data, clock, hours=6)
    rate = parse_indicator({"name": "r", "layer": "things", "kind": "rate", "bucket": "1h"})
    assert evaluate(data, rate, clock.now(), with_forecast=False).time == clock.now()


def test_a_city_without_data_evaluates_at_now(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data = two_source_city(tmp_path, clock)
    rate = parse_indicator({"name": "r", "layer": "things", "kind": "rate", "bucket": "1h"})
    reading = evaluate(data, rate, clock.now(), with_forecast=False)
    assert reading.time == clock.now() and reading.watermark is None


def test_watermark_key_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"watermark.*newest, clock"):
        parse_config({"city": CITY, "sources": [
            {"name": "x", "layer": "things", "adapter": "csv", "path": "x.csv",
             "watermark": "soon"}]}, tmp_path)


def test_card_and_panel_show_how_far_the_data_reach(city) -> None:
    from zoneinfo import ZoneInfo

    from callbacks.signs import signs_panel

    data, clock, _ = city
    hourly = parse_indicator({"name": "pm", "layer": "things", "kind": "mean", "over": "buckets",
                              "column": "reading", "bucket": "1h"})
    count = parse_indicator({"name": "c", "layer": "things", "kind": "count"})
    readings = [evaluate(data, i, clock.now(), with_forecast=False) for i in (hourly, count)]
    panel = str(signs_panel(readings, "en", "dark", ZoneInfo("Asia/Shanghai")))
    # Now is 16:20 UTC (00:20 the next day in the city); the hourly mean's data reach
    # 13:00 UTC (21:00 in the city); the count is the state now.
    assert "as of 2024-05-03 00:20" in panel
    assert panel.count("data to") == 1 and "data to 2024-05-02 21:00" in panel
