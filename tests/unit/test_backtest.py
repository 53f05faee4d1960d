"""Forecasts that earn their place: rolling-origin backtests against persistence and
seasonal-naive, reproduced here in plain numpy (and statsmodels called directly for ETS).

The cities are synthetic (a CSV of requests read as a snapshot), not the NYC demo.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from api.signs import create_signs_blueprint
from config.city import ConfigError
from ops.signs.alerts import AlertBook
from ops.signs.backtest import (
    MIN_ORIGINS,
    MODELS,
    backtest,
    fit_positions,
    rolling_origins,
    skilful_forecast,
    superiority_pvalue,
)
from ops.signs.indicators import IndicatorHistory, evaluate
from ops.signs.service import VitalSigns
from ops.signs.settings import parse_indicator, parse_indicators, parse_rules
from tests.unit.test_alerts import requests_at
from tests.unit.test_indicators import T0, requests_city


# ------------------------------------------------------------ plain numpy
def numpy_backtest(y: np.ndarray, horizon: int, season: int, min_train: int,
                   ets_spec: dict[str, object]) -> dict[str, np.ndarray]:
    """MAE per step of persistence, seasonal-naive and ETS at every origin
    ``min_train ≤ t ≤ n − horizon``, written out loop by loop; ETS is re-estimated at
    ``fit_positions`` and run forward with ``smooth`` in between (as documented)."""
    n = len(y)
    origins = list(range(min_train, n - horizon + 1))
    refit = {origins[i] for i in fit_positions(len(origins))}
    errors: dict[str, list[list[float]]] = {"persistence": [], "seasonal_naive": [], "ets": []}
    params = None
    for t in origins:
        actual = y[t:t + horizon]
        errors["persistence"].append([abs(a - y[t - 1]) for a in actual])
        seasonal = []
        for h in range(1, horizon + 1):
            k = math.ceil(h / season)
            seasonal.append(abs(y[t + h - 1] - y[t + h - 1 - k * season]))
        errors["seasonal_naive"].append(seasonal)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ETSModel(pd.Series(y[:t]), error="add", **ets_spec)  # type: ignore[arg-type]
            if t in refit:
                run = model.fit(disp=False)
                params = run.params
            else:
                run = model.smooth(params)
            predicted = np.asarray(run.forecast(horizon))
        errors["ets"].append(list(np.abs(actual - predicted)))
    return {name: np.mean(np.array(rows), axis=0) for name, rows in errors.items()}


def seasonal_series(n: int, seed: int = 3, noise: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 40 + 15 * np.sin(2 * np.pi * t / 24) + rng.normal(0, noise, n)


def random_walk(n: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 200 + np.cumsum(rng.normal(0, 6, n))


def test_rolling_origins_are_the_latest_possible_spread_evenly() -> None:
    assert list(rolling_origins(20, 3, 10)) == list(range(10, 18))
    spread = rolling_origins(1000, 6, 50, max_origins=48)
    assert len(spread) == 48 and spread[0] == 50 and spread[-1] == 994
    assert len(rolling_origins(12, 3, 10)) == 0


def test_backtest_equals_a_plain_numpy_rolling_origin_backtest() -> None:
    y = seasonal_series(80)
    horizon, season = 3, 24
    # alpha=None: the choice by the lowest MAE alone (the significance rule is tested below).
    result = backtest(y, horizon, season, alpha=None)
    assert result is not None
    # Seasonal ETS needs two seasons and two points; every model is judged on the same origins.
    min_train = 2 * season + 2
    assert result.origins == tuple(range(min_train, len(y) - horizon + 1))
    expected = numpy_backtest(y, horizon, season, min_train,
                              {"seasonal": "add", "seasonal_periods": season,
                               "initialization_method": "heuristic"})
    for name, mae in expected.items():
        np.testing.assert_allclose(result.mae[name], mae, rtol=1e-6, err_msg=name)
    # Each step uses the model with the lowest MAE there; ETS is measured against the
    # better naive model, seasonal-naive against persistence.
    chosen = [min(expected, key=lambda name: expected[name][h]) for h in range(horizon)]
    baseline = ["persistence" if c != "ets" else min(
        ("persistence", "seasonal_naive"), key=lambda name: expected[name][h])
        for h, c in enumerate(chosen)]
    assert result.chosen == tuple(chosen) and result.baseline == tuple(baseline)
    skill = [1 - expected[c][h] / expected[b][h]
             for h, (c, b) in enumerate(zip(chosen, baseline, strict=True))]
    np.testing.assert_allclose(result.skill, skill, rtol=1e-6)
    assert result.pairs == (len(result.origins),) * horizon


def test_gaps_are_not_counted_as_errors() -> None:
    y = seasonal_series(60)
    holed = y.copy()
    holed[40] = np.nan
    result = backtest(holed, 2, 24)
    assert result is not None
    origins = np.array(result.origins)
    # The gap's value is interpolated for the models but never scored as an actual.
    targets = origins[:, None] + np.arange(2)[None, :]
    assert result.pairs == tuple(int(c) for c in (targets != 40).sum(axis=0))
    filled = holed.copy()
    filled[40] = (holed[39] + holed[41]) / 2
    persistence = np.abs(filled[targets] - filled[origins - 1][:, None])
    expected = [persistence[:, h][targets[:, h] != 40].mean() for h in range(2)]
    np.testing.assert_allclose(result.mae["persistence"], expected)


def test_on_a_random_walk_persistence_is_chosen_with_no_skill() -> None:
    result = backtest(random_walk(24 * 8), 3, 24)
    assert result is not None and result.chosen == ("persistence",) * 3
    assert result.skill == (0.0, 0.0, 0.0) and not result.skilful and result.only_persistence
    assert all(result.mae["persistence"][h] < result.mae[name][h]
               for name in ("seasonal_naive", "ets") for h in range(3))


def test_on_a_strongly_seasonal_series_a_seasonal_model_wins() -> None:
    result = backtest(seasonal_series(24 * 8, noise=1.0), 3, 24)
    assert result is not None and set(result.chosen) <= {"seasonal_naive", "ets"}
    # Skill against the baseline it replaces (seasonal-naive for ETS, persistence for
    # seasonal-naive) at every step; and both seasonal models beat persistence by far.
    assert result.skilful and min(result.skill) > 0
    for name in ("seasonal_naive", "ets"):
        assert all(m < 0.6 * p for m, p in zip(result.mae[name], result.mae["persistence"],
                                                strict=True))


def test_each_step_uses_the_model_best_there() -> None:
    # Slowly drifting noise on a daily cycle: the last value is best an hour ahead,
    # the cycle half a day ahead (where the last value is at the other end of the cycle).
    rng = np.random.default_rng(9)
    n = 24 * 14
    drift = np.empty(n)
    drift[0] = 0.0
    for i in range(1, n):
        drift[i] = 0.9 * drift[i - 1] + rng.normal(0, 2)
    y = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / 24) + drift
    result = backtest(y, 12, 24, models=(MODELS[0], MODELS[1]))
    assert result is not None
    assert result.chosen[0] == "persistence" and result.chosen[-1] == "seasonal_naive"
    best = [min(mae[h] for mae in result.mae.values()) for h in range(12)]
    series = pd.Series(y, index=pd.date_range(T0, periods=n, freq="1h"))
    made = skilful_forecast(series, 12, season=24, tested=result)
    assert made.method == "blend" and made.mean[0] == y[-1] and made.mean[-1] == y[-13]
    assert all(result.mae[m][h] == best[h] for h, m in enumerate(made.models))
    assert made.skill[0] == 0 and made.skill[-1] > 0.5


# ------------------------------------------------ a clear margin, or persistence
def cycle_on_ar1(amplitude: float, seed: int, n: int = 24 * 40) -> np.ndarray:
    """A daily cycle under AR(1) noise (φ 0.9): persistence and the cycle compete."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0, 2, n)
    drift = np.zeros(n)
    for i in range(1, n):
        drift[i] = 0.9 * drift[i - 1] + shocks[i]
    return 50 + amplitude * np.sin(2 * np.pi * np.arange(n) / 24) + drift


def plain_choice(y: np.ndarray, origins: np.ndarray, horizon: int, season: int,
                 ) -> tuple[list[str], list[float]]:
    """Per step: seasonal-naive when its absolute errors are lower than persistence's by a
    paired one-sided t-test at 5 % (scipy), else persistence; and the p-values."""
    from scipy.stats import ttest_rel

    chosen, p_values = [], []
    for h in range(1, horizon + 1):
        actual = np.array([y[t + h - 1] for t in origins])
        persistence = np.abs(actual - np.array([y[t - 1] for t in origins]))
        seasonal = np.abs(actual - np.array([y[t + h - 1 - season * math.ceil(h / season)]
                                             for t in origins]))
        p = float(ttest_rel(persistence, seasonal, alternative="greater").pvalue)
        p_values.append(p)
        chosen.append("seasonal_naive" if seasonal.mean() < persistence.mean() and p < 0.05
                      else "persistence")
    return chosen, p_values


def test_superiority_pvalue_is_the_paired_t_test_when_forecasts_do_not_overlap() -> None:
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(4)
    kept, challenger = rng.normal(0, 3, 40), rng.normal(0, 2.6, 40)
    expected = ttest_rel(np.abs(kept), np.abs(challenger), alternative="greater").pvalue
    assert superiority_pvalue(kept, challenger) == pytest.approx(expected, rel=1e-9)
    # Errors of overlapping forecasts are correlated: the same margin is less evidence.
    smooth = np.repeat(rng.normal(0.3, 1.0, 10), 4)
    assert superiority_pvalue(np.abs(challenger) + smooth, challenger, overlap=3) > \
        superiority_pvalue(np.abs(challenger) + smooth, challenger)
    assert superiority_pvalue(kept[:4], challenger[:4]) == 1.0  # too few origins


@pytest.mark.parametrize(("amplitude", "seed"), [(2.0, 0), (2.0, 1), (3.0, 0), (3.0, 1)])
def test_persistence_is_kept_unless_a_model_beats_it_significantly(amplitude: float,
                                                                    seed: int) -> None:
    y = cycle_on_ar1(amplitude, seed)
    naive = (MODELS[0], MODELS[1])
    result = backtest(y, 12, 24, models=naive)
    assert result is not None
    origins = np.array(result.origins)
    assert np.diff(origins).min() > 12  # no two forecasts share an actual: no overlap
    chosen, p_values = plain_choice(y, origins, 12, 24)
    assert list(result.chosen) == chosen
    for h, name in enumerate(chosen):
        if name == "seasonal_naive":
            assert result.p_value[h] == pytest.approx(p_values[h], rel=1e-6)
        else:
            assert math.isnan(result.p_value[h]) and result.skill[h] == 0
    # On these series a slimmer margin (the lowest MAE alone) switches at more steps.
    slim = backtest(y, 12, 24, models=naive, alpha=None)
    assert slim is not None
    assert sum(c != "persistence" for c in slim.chosen) > sum(c != "persistence" for c in chosen)


def test_where_the_cycle_clearly_wins_it_is_used() -> None:
    # A strong cycle: from a few hours ahead the day before is far better than the last
    # value (an hour ahead the slow noise still favours the last value).
    y = cycle_on_ar1(15.0, 2)
    result = backtest(y, 12, 24, models=(MODELS[0], MODELS[1]))
    assert result is not None and result.chosen[3:] == ("seasonal_naive",) * 9
    chosen, p_values = plain_choice(y, np.array(result.origins), 12, 24)
    assert chosen == list(result.chosen) and max(result.p_value[3:]) < 1e-4
    np.testing.assert_allclose(result.p_value[3:], p_values[3:], rtol=1e-6)
    assert min(result.skill[3:]) > 0.3


def test_too_short_a_history_is_not_backtested() -> None:
    assert backtest(np.arange(5.0), 3, 24) is None
    short = backtest(np.arange(12.0), 3, None)
    assert short is not None and "ets" in short.skipped and short.only_persistence
    assert len(short.origins) >= MIN_ORIGINS


# ------------------------------------------------------ through the signs
def hourly_requests(counts: np.ndarray) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Requests spread evenly within each hour, ``counts[k]`` in hour ``k``; and the end."""
    now = T0 + pd.Timedelta(hours=len(counts))
    points = []
    for k, count in enumerate(counts):
        end = T0 + pd.Timedelta(hours=k + 1)
        points += [(end - pd.Timedelta(seconds=1 + 3500 * i / max(1, count)), 40.75, -73.99)
                   for i in range(int(count))]
    return requests_at(points), now


def test_a_forecast_rule_does_not_fire_on_a_forecast_without_skill(tmp_path: Path) -> None:
    counts = np.clip(np.round(random_walk(24 * 5, seed=11) / 4), 0, None)
    raw, now = hourly_requests(counts)
    data = requests_city(tmp_path, raw)
    indicators = parse_indicators([{"name": "rph", "layer": "government", "kind": "rate",
                                    "window": "12h", "unit_en": "requests/h",
                                    "forecast": {"horizon": "3h", "history": "5d"}}])
    reading = evaluate(data, indicators[0], now)
    predicted = reading.forecast
    assert predicted is not None and predicted.backtest is not None
    assert predicted.backtest.only_persistence and predicted.method == "naive"
    assert predicted.mean == (counts[-1],) * 3 and predicted.skill == (0.0, 0.0, 0.0)
    assert predicted.baseline == predicted.models == ("persistence",) * 3
    # The band (from the backtest's own errors) crosses a limit just above the last value.
    limit = counts[-1] + 0.5
    assert max(predicted.upper) > limit
    rules = parse_rules([{"name": "rising", "kind": "forecast", "indicator": "rph",
                          "above": float(limit), "within": "3h", "band": "upper"}], indicators)
    changes = AlertBook(rules, indicators).evaluate(data, now, {"rph": reading})
    assert changes.raised == []
    assert "no skill" in changes.errors["rising"] and "persistence" in changes.errors["rising"]
    # The same forecast claiming skill would have fired: the skill is what stops it.
    skilful = dataclasses.replace(reading, forecast=dataclasses.replace(
        predicted, skill=(0.2, 0.2, 0.2)))
    fired = AlertBook(rules, indicators).evaluate(data, now, {"rph": skilful})
    assert [a.rule for a in fired.raised] == ["rising"]


def test_on_a_seasonal_city_the_seasonal_forecast_is_used_and_shown(tmp_path: Path) -> None:
    counts = np.clip(np.round(seasonal_series(24 * 6, seed=2, noise=1.0)), 0, None)
    raw, now = hourly_requests(counts)
    data = requests_city(tmp_path, raw)
    indicator = parse_indicators([{"name": "rph", "layer": "government", "kind": "rate",
                                   "window": "24h", "forecast": {"horizon": "3h"}}])[0]
    history = IndicatorHistory()
    reading = evaluate(data, indicator, now, history)
    predicted = reading.forecast
    assert predicted is not None and predicted.backtest is not None
    assert set(predicted.models) <= {"seasonal_naive", "ets"} and min(predicted.skill) > 0
    if "ets" in predicted.models:
        assert "season 24" in predicted.model
    # The forecast follows the cycle: the next hours are one day earlier's, roughly.
    truth = 40 + 15 * np.sin(2 * np.pi * np.arange(len(counts), len(counts) + 3) / 24)
    assert np.abs(np.array(predicted.mean) - truth).max() < 4
    document = reading.as_dict()["forecast"]
    assert document["baseline"] == list(predicted.baseline)
    assert document["models"] == list(predicted.models)
    assert document["skill"] == [round(s, 6) for s in predicted.skill]
    assert set(document["backtest"]["mae"]) == {"persistence", "seasonal_naive", "ets"}
    # Cached: the same backtest until six new buckets have arrived, then a new one.
    # (Past the data's end no bucket is new: the reading stays at the watermark.)
    idle = evaluate(data, indicator, now + pd.Timedelta(hours=8), history)
    assert idle.forecast is not None and idle.forecast.backtest is predicted.backtest
    history = IndicatorHistory()
    earlier = evaluate(data, indicator, now - pd.Timedelta(hours=7), history).forecast
    later = evaluate(data, indicator, now - pd.Timedelta(hours=2), history).forecast
    assert earlier is not None and later is not None and later.backtest is earlier.backtest
    retested = evaluate(data, indicator, now, history).forecast
    assert retested is not None and retested.backtest is not earlier.backtest
    assert retested.backtest == predicted.backtest  # the same history, the same result


def test_the_api_shows_skill_baseline_and_why_a_rule_cannot_judge(tmp_path: Path) -> None:
    counts = np.clip(np.round(random_walk(24 * 5, seed=11) / 4), 0, None)
    raw, now = hourly_requests(counts)
    data = requests_city(tmp_path, raw)
    signs = VitalSigns.from_config(data, {
        "indicators": [{"name": "rph", "layer": "government", "kind": "rate",
                        "forecast": {"horizon": "2h", "history": "5d"}}],
        "rules": [{"name": "rising", "kind": "forecast", "indicator": "rph", "above": 1000,
                   "within": "2h"}]}, max_age=60)
    app = Flask(__name__)
    app.register_blueprint(create_signs_blueprint(signs))
    client = app.test_client()
    predicted = client.get("/api/signs").get_json()["indicators"][0]["forecast"]
    reading = signs.current()[0][0]
    assert reading.forecast is not None and reading.forecast.backtest is not None
    tested = reading.forecast.backtest
    assert predicted["skill"] == [0.0, 0.0] and predicted["baseline"] == ["persistence"] * 2
    assert predicted["backtest"]["chosen"] == ["persistence"] * 2
    assert predicted["backtest"]["mae"]["persistence"] == [round(v, 6) for v in
                                                           tested.mae["persistence"]]
    assert predicted["backtest"]["origins"] == len(tested.origins) >= MIN_ORIGINS
    errors = client.get("/api/alerts").get_json()["errors"]
    assert "no skill" in errors["rising"]


def test_forecast_settings_are_checked() -> None:
    base = {"name": "rph", "layer": "government", "kind": "rate"}
    spec = parse_indicator({**base, "forecast": {"season": False, "retest": "2h"}}).forecast
    assert spec is not None and spec.season is None and spec.retest == 7200
    default = parse_indicator(base).forecast
    assert default is not None and default.season_buckets(3600) == 24
    assert default.history_span(3600) == 28 * 86400 and default.retest_after(3600) == 6 * 3600
    assert default.history_span(60) == 2016 * 60  # bounded
    with pytest.raises(ConfigError, match=r"forecast.history: .* at most 2016 are backtested"):
        parse_indicator({**base, "bucket": "5m", "forecast": {"history": "30d"}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_indicator({**base, "forecast": {"models": ["ets"]}})


# ------------------------------------------------------ in the background
def test_backtests_run_in_the_background_and_a_refresh_never_waits(tmp_path: Path) -> None:
    from callbacks.signs import skill_text

    counts = np.clip(np.round(seasonal_series(24 * 6, seed=2, noise=1.0)), 0, None)
    raw, now = hourly_requests(counts)
    data = requests_city(tmp_path, raw)
    config = {"indicators": [{"name": "rph", "layer": "government", "kind": "rate",
                              "window": "24h", "forecast": {"horizon": "3h"}}],
              "rules": [{"name": "rising", "kind": "forecast", "indicator": "rph",
                         "above": 1000, "within": "2h"}]}
    signs = VitalSigns.from_config(data, config, max_age=0, background_backtests=True)
    worker = signs.history.backtests
    assert worker is not None
    # The worker is busy with something else: a refresh that waited for the backtest
    # would block here until the hold is released.
    release = threading.Event()
    assert worker.submit("hold", lambda: release.wait(60) and None)
    started = time.perf_counter()
    readings, changes = signs.refresh(now)
    assert time.perf_counter() - started < 30
    predicted = readings[0].forecast
    assert predicted is not None and predicted.pending and predicted.backtest is None
    assert predicted.models == ("persistence",) * 3 and predicted.mean == (counts[-1],) * 3
    assert all(math.isnan(s) for s in predicted.skill) and predicted.note == "backtest pending"
    assert predicted.as_dict()["pending"] is True
    assert skill_text(predicted, "en")[0] == "backtest pending"
    assert "backtest pending" in changes.errors["rising"]
    assert worker.pending("rph") and not worker.submit("rph", lambda: None)  # queued once
    release.set()
    assert worker.wait(timeout=120)
    readings, changes = signs.refresh(now)
    predicted = readings[0].forecast
    assert predicted is not None and not predicted.pending
    # What landed is the backtest an in-place evaluation runs on the same history.
    in_place = evaluate(data, signs.indicators[0], now).forecast
    assert in_place is not None and predicted.backtest == in_place.backtest
    assert predicted.models == in_place.models and predicted.mean == in_place.mean
    assert set(predicted.models) <= {"seasonal_naive", "ets"} and min(predicted.skill) > 0
    assert "rising" not in changes.errors
