"""Vital signs: each indicator kind against an independent pandas computation.

Cities here are real :class:`CityData` built from tiny configs: a CSV of requests
read as a snapshot, and a streaming source fed through the real normalisation and
live window on a hand-driven clock.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.city import ConfigError
from data.base import normalise
from layers import LAYERS
from ops.signs.indicators import (
    IndicatorHistory,
    baseline,
    current,
    evaluate,
    evaluate_all,
    reference_time,
    series,
    values_at,
)
from ops.signs.settings import (
    SIGNS_SECTION,
    Thresholds,
    parse_indicator,
    parse_indicators,
    parse_ops_settings,
)
from store.city import CityData

REPO = Path(__file__).resolve().parents[2]
CITY = {"name": "Test City", "center": {"lat": 40.7, "lon": -74.0}, "timezone": "UTC"}
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


class ManualClock:
    """A city clock that moves only when a test says so."""

    speed = 1.0
    accelerated = False

    def __init__(self, start: pd.Timestamp) -> None:
        self.origin = start
        self.moment = start

    def now(self) -> pd.Timestamp:
        return self.moment

    def elapsed(self) -> float:
        return (self.moment - self.origin).total_seconds()

    def advance(self, **delta: float) -> pd.Timestamp:
        self.moment = self.moment + pd.Timedelta(**delta)
        return self.moment


def synthetic_requests(n: int = 3000, days: int = 9, seed: int = 1) -> pd.DataFrame:
    """Requests with a daily cycle, some closed later, some open, across a few cells."""
    rng = np.random.default_rng(seed)
    hours = rng.uniform(0, days * 24, n)
    keep = rng.random(n) < 0.5 + 0.4 * np.sin(hours / 24 * 2 * np.pi)  # a daily cycle
    hours = np.sort(hours[keep])
    created = T0 + pd.to_timedelta(hours, unit="h")
    closed_after = rng.exponential(10, len(hours))
    closed = created + pd.to_timedelta(closed_after, unit="h")
    is_closed = rng.random(len(hours)) < 0.7
    return pd.DataFrame({
        "key": [f"r{i}" for i in range(len(hours))],
        "created": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "closed": np.where(is_closed, closed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), ""),
        "status": np.where(is_closed, "Closed", rng.choice(["Open", "In Progress"], len(hours))),
        "kind": rng.choice(["Noise", "Heat", "Parking"], len(hours)),
        "lat": rng.uniform(40.70, 40.78, len(hours)),
        "lon": rng.uniform(-74.01, -73.93, len(hours)),
    })


REQUEST_FIELDS = {"id": "key", "time": "created", "closed_time": "closed", "status": "status",
                  "category": "kind", "lat": "lat", "lon": "lon"}


def requests_city(tmp_path: Path, raw: pd.DataFrame) -> CityData:
    path = tmp_path / "requests.csv"
    raw.to_csv(path, index=False)
    config = parse_config({"city": CITY, "cache": {"directory": str(tmp_path / "cache")},
                           "sources": [{"name": "req", "layer": "government", "role": "requests",
                                        "adapter": "csv", "path": str(path),
                                        **REQUEST_FIELDS}]}, tmp_path)
    return CityData.load(config)


def live_city(tmp_path: Path, clock: ManualClock, window: str = "1h",
              history: str = "1d") -> tuple[CityData, object]:
    """A city with one streaming device source, fed by hand (see :func:`feed`)."""
    config = parse_config({
        "city": CITY, "cache": {"directory": str(tmp_path / "cache")},
        "live": {"window": window, "history": history},
        "sources": [{"name": "sensors", "layer": "things", "role": "devices", "adapter": "replay",
                     "path": str(tmp_path / "unused.csv"), "id": "id", "time": "t", "lat": "lat",
                     "lon": "lon", "status": "status", "reading": "pm", "label": "label"}],
    }, tmp_path)
    data = CityData(config)
    data.clock = clock  # type: ignore[assignment]
    source = config.sources[0]
    data.adapter(source)  # sets up the live window; the replay file is never read
    return data, source


def feed(data: CityData, source: object, raw: pd.DataFrame) -> None:
    """Push raw rows through the real normalisation into the live window, at the clock's now."""
    role = LAYERS["things"].roles["devices"]
    batch = normalise(raw, source, role, data.context, versions_supersede=True)  # type: ignore[arg-type]
    batch.replace = False
    data.apply_batch(source, batch)  # type: ignore[arg-type]


def device_reports(moment: pd.Timestamp, online: list[bool], readings: list[float],
                   ids: list[str] | None = None) -> pd.DataFrame:
    ids = ids or [f"d{i}" for i in range(len(online))]
    lat = 40.70 + 0.01 * np.arange(len(ids))
    return pd.DataFrame({"id": ids, "t": [moment] * len(ids), "lat": lat, "lon": -73.99,
                         "status": ["online" if o else "offline" for o in online],
                         "pm": [r if o else np.nan for r, o in zip(readings, online, strict=True)],
                         "label": [f"Device {i}" for i in ids]})


def indicator(**table: object):
    """An indicator on government requests; a key given as None is left out."""
    base: dict[str, object] = {"name": "x", "layer": "government", "role": "requests"}
    return parse_indicator({k: v for k, v in {**base, **table}.items() if v is not None})


def utc(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, utc=True, format="ISO8601")


# ------------------------------------------------------------------ bucketed
@pytest.mark.parametrize("offset", [pd.Timedelta(0), pd.Timedelta(minutes=37)])
def test_rate_series_equals_a_pandas_resample(tmp_path: Path, offset: pd.Timedelta) -> None:
    raw = synthetic_requests()
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=5, hours=13) + offset
    rate = indicator(kind="rate", bucket="1h", window="24h")
    got = series(data, rate, now)
    created = utc(raw["created"])
    counts = pd.Series(1, index=created).sort_index().resample(
        "1h", closed="right", label="right", origin=now).sum()
    expected = counts.reindex(got.index, fill_value=0).astype(float)
    assert len(got) == 24 and got.index[-1] == now
    pd.testing.assert_series_equal(got, expected, check_names=False, check_freq=False)
    # The current value is the last bucket: rows in (now − 1 h, now].
    in_last_hour = ((created > now - pd.Timedelta(hours=1)) & (created <= now)).sum()
    assert current(data, rate, now) == in_last_hour


def test_rate_with_filter_and_column_sum(tmp_path: Path) -> None:
    raw = synthetic_requests()
    raw["weight"] = np.arange(len(raw)) % 7
    path = tmp_path / "requests.csv"
    raw.to_csv(path, index=False)
    config = parse_config({"city": CITY, "cache": {"directory": str(tmp_path / "cache")},
                           "sources": [{"name": "trips", "layer": "people", "role": "mobility",
                                        "adapter": "csv", "path": str(path), "id": "key",
                                        "time": "created", "lat": "lat", "lon": "lon",
                                        "category": "kind", "passengers": "weight"}]}, tmp_path)
    data = CityData.load(config)
    now = T0 + pd.Timedelta(days=3, hours=5)
    rate = parse_indicator({"name": "p", "layer": "people", "role": "mobility", "kind": "rate",
                            "column": "passengers", "where": {"category": "Noise"},
                            "bucket": "2h", "window": "12h"})
    got = series(data, rate, now)
    created = utc(raw["created"])
    noise = raw["kind"].eq("Noise").to_numpy()
    expected = pd.Series(raw["weight"].to_numpy()[noise], index=created[noise]).sort_index() \
        .resample("2h", closed="right", label="right", origin=now).sum()
    expected = expected.reindex(got.index, fill_value=0).astype(float)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy())


def test_bucketed_median_of_time_to_close_by_closing_time(tmp_path: Path) -> None:
    raw = synthetic_requests()
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=4)
    ind = indicator(kind="median", column="hours_to_close", over="buckets",
                    time_column="closed_time", bucket="6h", window="2d")
    got = series(data, ind, now)
    closed = raw.loc[raw["closed"].ne("")]
    closed_at = utc(closed["closed"])
    hours = (closed_at - utc(closed["created"])).dt.total_seconds() / 3600
    expected = pd.Series(hours.to_numpy(), index=pd.DatetimeIndex(closed_at)).sort_index().resample(
        "6h", closed="right", label="right", origin=now).median()
    expected = expected.reindex(got.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), equal_nan=True)


# --------------------------------------------------------------------- state
def test_state_kinds_against_pandas(tmp_path: Path) -> None:
    raw = synthetic_requests()
    data = requests_city(tmp_path, raw)
    now = reference_time(data)
    assert now == utc(raw["created"]).max()  # a snapshot city is seen as of its newest row
    closed = raw["closed"].ne("")
    open_ = ~closed & ~raw["status"].eq("Closed")
    hours = (utc(raw["closed"].where(closed)) - utc(raw["created"])).dt.total_seconds() / 3600
    noise = raw["kind"].eq("Noise")
    cases = {
        "count": (indicator(kind="count"), len(raw)),
        "count_where": (indicator(kind="count", where={"is_open": [True]}), int(open_.sum())),
        "share": (indicator(kind="share", where={"category": ["Noise", "Heat"]}),
                  100 * raw["kind"].isin(["Noise", "Heat"]).mean()),
        "mean": (indicator(kind="mean", column="hours_to_close"), hours.mean()),
        "median": (indicator(kind="median", column="hours_to_close",
                             where={"category": "Noise"}), hours[noise].median()),
        "sum": (indicator(kind="sum", column="hours_to_close"), hours.sum()),
        "metric": (indicator(kind="metric", metric="open", role=None), int(open_.sum())),
    }
    for name, (ind, expected) in cases.items():
        assert current(data, ind, now) == pytest.approx(expected), name
    # Snapshot rows have no history of their own: the series is the value throughout.
    flat = series(data, cases["count"][0], now)
    assert (flat == len(raw)).all()


def test_metric_kind_is_the_layer_total(tmp_path: Path) -> None:
    raw = synthetic_requests()
    data = requests_city(tmp_path, raw)
    ind = parse_indicator({"name": "m", "layer": "government", "kind": "metric",
                           "metric": "requests"})
    assert current(data, ind, reference_time(data)) == len(raw)


def test_live_state_series_from_history_and_samples(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    online_by_step = [[True, True, True, True], [True, False, True, True],
                      [False, False, True, True], [False, False, False, True]]
    readings = [10.0, 20.0, 30.0, 40.0]
    for step, online in enumerate(online_by_step):
        if step:
            clock.advance(minutes=30)
        feed(data, source, device_reports(clock.now(), online, readings))
    now = clock.now()  # T0 + 90 min
    share = parse_indicator({"name": "online", "layer": "things", "kind": "share",
                             "where": {"status": "online"}, "bucket": "30m", "window": "3h"})
    mean = parse_indicator({"name": "pm", "layer": "things", "kind": "mean", "column": "reading",
                            "bucket": "30m", "window": "3h"})
    history = IndicatorHistory()
    got = series(data, share, now, history)
    expected_share = [100 * sum(o) / 4 for o in online_by_step]
    # Before the log begins the state is unknown, not zero.
    assert got.iloc[:2].isna().all()
    np.testing.assert_allclose(got.iloc[2:].to_numpy(), expected_share)
    got_mean = series(data, mean, now)
    expected_mean = [np.mean([r for r, o in zip(readings, on, strict=True) if o])
                     for on in online_by_step]
    np.testing.assert_allclose(got_mean.iloc[2:].to_numpy(), expected_mean)
    # Values computed from the log were kept as samples; later ticks read them back.
    samples = history.samples("online")
    assert len(samples) == 3 and samples.index.max() < now
    assert history.value_at("online", now - pd.Timedelta(minutes=29), 1800) == 50.0
    # Looking at a past moment (a time slider) reads the state as it was then.
    assert current(data, share, T0 + pd.Timedelta(minutes=30)) == 75.0
    # A reading records the current value as a sample too.
    reading = evaluate(data, share, now, history, with_forecast=False)
    assert reading.value == 25.0 and history.samples("online").index.max() == now


def test_history_ring_is_bounded_and_spaced() -> None:
    history = IndicatorHistory(max_samples=5)
    for minute in range(0, 60):
        history.record("x", T0 + pd.Timedelta(minutes=minute), float(minute), spacing=600)
    samples = history.samples("x")
    assert len(samples) <= 5 and samples.iloc[-1] == 59.0
    assert (np.diff(samples.index.asi8[:-1]) >= 600e9).all()
    assert history.value_at("x", T0 + pd.Timedelta(hours=5), 3600) is None


def test_live_rate_reaches_past_the_window_but_not_before_the_log(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock, window="30m", history="1d")
    for step in range(6):  # one report per device every hour; the window keeps 30 minutes
        if step:
            clock.advance(hours=1)
        feed(data, source, device_reports(clock.now(), [True] * 3, [1.0] * 3,
                                          ids=[f"d{i}-{step}" for i in range(3)]))
        data.expire()
    now = clock.now()
    rate = parse_indicator({"name": "reports", "layer": "things", "kind": "rate",
                            "bucket": "1h", "window": "8h"})
    got = series(data, rate, now)
    assert len(data.frame("things", "devices")) == 3  # only the last report is in the window
    assert list(got.iloc[-6:]) == [3.0] * 6  # … but the rate comes from the history log
    assert got.iloc[:2].isna().all()  # before the first row the count is unknown


# ------------------------------------------------------------ baselines etc.
def test_baselines(tmp_path: Path) -> None:
    raw = synthetic_requests(days=9)
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=8, hours=15)
    created = utc(raw["created"])

    def count(end: pd.Timestamp) -> int:
        return int(((created > end - pd.Timedelta(hours=1)) & (created <= end)).sum())

    rolling = indicator(kind="rate", window="24h", baseline="rolling_mean")
    earlier = [count(now - pd.Timedelta(hours=k)) for k in range(1, 24)]
    assert baseline(data, rolling, now) == pytest.approx(np.mean(earlier))
    yesterday = indicator(kind="rate", baseline="same_hour_yesterday")
    assert baseline(data, yesterday, now) == count(now - pd.Timedelta(days=1))
    last_week = indicator(kind="rate", baseline="same_hour_last_week")
    assert baseline(data, last_week, now) == count(now - pd.Timedelta(days=7))
    assert math.isnan(baseline(data, indicator(kind="rate", baseline="none"), now))
    reading = evaluate(data, yesterday, now, with_forecast=False)
    assert reading.change == pytest.approx(count(now) - count(now - pd.Timedelta(days=1)))
    assert reading.change_pct == pytest.approx(100 * reading.change / reading.baseline)


def test_threshold_status() -> None:
    above = Thresholds(warn=10, alarm=20)
    assert [above.status(v) for v in (9.9, 10, 19.9, 20, 50)] == \
        ["ok", "warn", "warn", "alarm", "alarm"]
    below = Thresholds(warn=95, alarm=90, direction="below")
    assert [below.status(v) for v in (99, 95, 91, 90)] == ["ok", "warn", "warn", "alarm"]
    assert above.status(math.nan) == "unknown" and above.status(None) == "unknown"
    assert Thresholds(alarm=5).status(6) == "alarm" and Thresholds(alarm=5).status(4) == "ok"


def test_reading_is_json_and_has_status_and_forecast(tmp_path: Path) -> None:
    raw = synthetic_requests()
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=6, hours=18)
    ind = indicator(kind="rate", thresholds={"warn": 1, "alarm": 1000}, forecast={"horizon": "3h"})
    reading = evaluate_all(data, [ind], now)[0]
    assert reading.status == ("warn" if reading.value >= 1 else "ok")
    document = json.loads(json.dumps(reading.as_dict(), allow_nan=False))
    assert document["series"]["values"][-1] == reading.value
    assert len(document["series"]["times"]) == 24
    # The model per step is the backtest's (ETS only where it clearly beats the simpler ones).
    assert document["forecast"]["method"] in ("ets", "blend", "seasonal_naive", "naive")
    assert len(document["forecast"]["mean"]) == 3 and len(document["forecast"]["models"]) == 3
    assert document["baseline"]["kind"] == "rolling_mean"


def test_values_at_moments_without_data_are_nan_for_live_and_counts_for_snapshots(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    count = parse_indicator({"name": "n", "layer": "things", "kind": "count"})
    assert values_at(data, count, [T0])[0] == 0  # nothing received yet: an empty state now
    feed(data, source, device_reports(T0, [True], [1.0]))
    clock.advance(minutes=10)
    values = values_at(data, count, [T0 - pd.Timedelta(minutes=5), clock.now()])
    assert math.isnan(values[0]) and values[1] == 1


# -------------------------------------------------------------------- config
def test_parse_indicators_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ConfigError, match="unknown key.*'colour'.*valid keys are: .*baseline"):
        indicator(kind="count", colour="red")
    with pytest.raises(ConfigError, match="unknown kind 'avg'; valid kinds are: count, rate"):
        indicator(kind="avg")
    with pytest.raises(ConfigError, match="missing|non-empty"):
        indicator(kind="mean")
    with pytest.raises(ConfigError, match="unknown column 'nope'.*hours_to_close"):
        indicator(kind="mean", column="nope")
    with pytest.raises(ConfigError, match="share.*needs where"):
        indicator(kind="share")
    with pytest.raises(ConfigError, match="unknown baseline"):
        indicator(kind="count", baseline="last_year")
    with pytest.raises(ConfigError, match="hours_to_close.*median.*no city total"):
        indicator(kind="metric", metric="hours_to_close", role=None)
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        indicator(kind="metric", metric="nope", role=None)
    with pytest.raises(ConfigError, match="unknown role"):
        indicator(kind="count", role="complaints")
    with pytest.raises(ConfigError, match="alarm .* must be beyond warn"):
        indicator(kind="count", thresholds={"warn": 10, "alarm": 5})
    with pytest.raises(ConfigError, match="not a time column"):
        indicator(kind="rate", time_column="status")
    with pytest.raises(ConfigError, match="duplicate indicator"):
        parse_indicators([{"name": "a", "layer": "things", "kind": "count"}] * 2)


def test_demo_config_declares_indicators_and_rules(live_config) -> None:
    settings = live_config.section(SIGNS_SECTION)  # the demo's indicators and rules, parsed with the city
    names = {i.name for i in settings.indicators}
    assert {"residents", "trips_per_hour", "enterprises", "devices_online", "pm25_mean",
            "requests_per_hour", "open_requests", "median_hours_to_close"} <= names
    assert {i.layer for i in settings.indicators} == {"people", "enterprises", "things",
                                                       "government"}
    assert {r.kind for r in settings.rules} == {"threshold", "cell_count", "reading", "silent",
                                                "anomaly", "forecast"}


# ------------------------------------------------------------------ demo data
def test_requests_per_hour_on_the_demo_city_equals_the_311_file(demo_data) -> None:
    raw = pd.read_parquet(REPO / "cities/nyc/data/service_requests_311.parquet")
    raw = raw.loc[raw["latitude"].notna() & raw["longitude"].notna()]  # rejected by the pipeline
    created = pd.to_datetime(raw["created_date"]).dt.tz_localize(
        "America/New_York", ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
    busiest = created.dt.floor("1D").value_counts().idxmax()
    now = busiest + pd.Timedelta(days=1)
    settings = parse_ops_settings(tomllib.loads(
        (REPO / "cities/nyc/city.toml").read_text(encoding="utf-8")), demo_data.sources())
    rate = next(i for i in settings.indicators if i.name == "requests_per_hour")
    got = series(demo_data, rate, now)
    expected = pd.Series(1, index=pd.DatetimeIndex(created.sort_values())).resample(
        "1h", closed="right", label="right").sum().reindex(got.index, fill_value=0)
    assert got.sum() > 100  # the window holds the busiest recorded day
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy(dtype=float))
