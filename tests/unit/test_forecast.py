"""Short-term forecasts: statsmodels ETS with a band, and the naive fallback."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from ops.signs.forecast import Forecast, forecast, naive_forecast

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


def hourly(values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=pd.date_range(T0, periods=len(values), freq="1h"))


def daily_cycle(hours: np.ndarray) -> np.ndarray:
    return 50 + 20 * np.sin(2 * np.pi * hours / 24)


def test_ets_on_a_seasonal_series_has_the_true_future_in_its_band() -> None:
    rng = np.random.default_rng(7)
    hours = np.arange(24 * 5 + 6)
    truth = daily_cycle(hours)
    observed = truth + rng.normal(0, 2.0, len(hours))
    history, steps = hourly(observed[:-6]), 6
    result = forecast(history, steps, season=24)
    assert result.method == "ets" and "season 24" in result.model
    assert result.times[0] == history.index[-1] + pd.Timedelta(hours=1)
    assert len(result.mean) == len(result.lower) == len(result.upper) == steps
    lower, upper = np.array(result.lower), np.array(result.upper)
    assert (lower <= np.array(result.mean)).all() and (np.array(result.mean) <= upper).all()
    # The noise-free future lies inside the 80 % band at every step.
    future = truth[-6:]
    assert ((lower <= future) & (future <= upper)).all()
    # The band is a real uncertainty band, narrower than the cycle it follows.
    assert 0 < (upper - lower).mean() < 20


def test_the_band_covers_about_what_it_says_over_many_series() -> None:
    inside_truth, inside_noisy = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        hours = np.arange(24 * 5 + 6)
        truth = daily_cycle(hours)
        observed = truth + rng.normal(0, 2.0, len(hours))
        result = forecast(hourly(observed[:-6]), 6, season=24)
        lower, upper = np.array(result.lower), np.array(result.upper)
        inside_truth.extend((lower <= truth[-6:]) & (truth[-6:] <= upper))
        inside_noisy.extend((lower <= observed[-6:]) & (observed[-6:] <= upper))
    # An 80 % band: a fitted seasonal model is a little over-confident, not wildly so.
    assert np.mean(inside_noisy) >= 0.6
    assert np.mean(inside_truth) >= 0.9


def test_ets_without_a_season_follows_a_trend() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(30)
    values = 100 + 2.0 * t + rng.normal(0, 1.0, len(t))
    result = forecast(hourly(values[:24]), 6)
    assert result.method == "ets" and result.model == "ETS(A,Ad,N)"
    truth = 100 + 2.0 * t[24:]
    assert ((np.array(result.lower) <= truth) & (truth <= np.array(result.upper))).all()
    assert result.mean[0] > values[23] - 3  # carries the rise on, not back to the mean


def test_a_season_needs_two_full_cycles() -> None:
    values = daily_cycle(np.arange(30)) + np.random.default_rng(0).normal(0, 1, 30)
    result = forecast(hourly(values), 3, season=24)
    assert result.method == "ets" and "season" not in result.model


def test_three_points_fall_back_to_naive() -> None:
    series = hourly(np.array([4.0, 7.0, 5.0]))
    result = forecast(series, 4)
    assert result.method == "naive" and "3 points" in result.note
    assert result.mean == (5.0,) * 4
    half = NormalDist().inv_cdf(0.9) * float(np.std([4.0, 7.0, 5.0], ddof=1))
    assert result.upper[0] == pytest.approx(5.0 + half)
    assert result.lower[0] == pytest.approx(max(0.0, 5.0 - half))
    assert result.times == tuple(T0 + pd.Timedelta(hours=h) for h in (3, 4, 5, 6))


def test_constant_and_empty_series_never_crash() -> None:
    flat = forecast(hourly(np.full(48, 12.0)), 3)
    assert flat.method == "naive" and flat.note == "constant series"
    assert flat.mean == flat.lower == flat.upper == (12.0, 12.0, 12.0)
    empty = forecast(hourly(np.full(10, np.nan)), 2)
    assert empty.method == "none" and all(math.isnan(v) for v in empty.mean)
    assert forecast(hourly(np.array([])), 2).method == "none"
    one = naive_forecast(hourly(np.array([3.0])), 2)
    assert one.method == "naive" and one.lower == one.upper == (3.0, 3.0)


def test_gaps_are_bridged_and_counts_stay_non_negative() -> None:
    values = np.array([5, 3, np.nan, 2, 1, 0, 0, 1, 0, 0, np.nan, 0], dtype=float)
    result = forecast(hourly(values), 5)
    assert result.method in ("ets", "naive")
    assert min(result.lower) >= 0 and min(result.mean) >= 0
    assert all(math.isfinite(v) for v in result.upper)


def test_first_crossing_and_json() -> None:
    times = tuple(T0 + pd.Timedelta(hours=h) for h in (1, 2, 3))
    result = Forecast("ets", "test", times, (5.0, 8.0, 12.0), (1.0, 2.0, 3.0),
                      (9.0, 10.0, 20.0))
    assert result.first_crossing(10.0, "above", "mean") == (times[2], 12.0)
    assert result.first_crossing(10.0, "above", "upper") == (times[2], 20.0)
    assert result.first_crossing(10.0, "above", "upper", inclusive=True) == (times[1], 10.0)
    assert result.first_crossing(10.0, "above", "mean", until=times[1]) is None
    assert result.first_crossing(2.0, "below", "lower") == (times[0], 1.0)
    document = result.as_dict()
    assert document["times"][0] == times[0].isoformat() and document["upper"] == [9.0, 10.0, 20.0]
