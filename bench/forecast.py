"""Forecast skill: MAE per horizon of each model, the baselines, and the model citybrain uses.

At many issue times spread over a series, every model forecasts the next 24 buckets
from the ``history`` before it (the indicator's own setting: a week of hourly buckets),
and its absolute errors against what came next are averaged per horizon:

* ``persistence`` (the last value), ``seasonal naive`` (one day earlier), ``ETS``
  (:func:`ops.signs.forecast.forecast`, always, as before this change);
* ``citybrain``: what the vital signs now show — :func:`ops.signs.backtest.backtest`
  on the indicator's default history (four weeks where the series has them) keeps
  persistence at a step unless a model beats it significantly there, and
  :func:`~ops.signs.backtest.skilful_forecast` issues its forecast;
* ``citybrain before``: the earlier choice, from the same run — the lowest backtest MAE
  at each step, however slim the margin, on a week of history.

Series: the demo city's indicators, replayed from its data (311 requests per hour from
the recorded 2025 requests; mean PM2.5 and devices online from the seeded simulator
run for ``--sim-days``; taxi pickups cover under three hours and are reported as too
short), and a long synthetic seasonal series (``--years`` of hourly values with daily
and weekly cycles, AR(1) noise and level breaks, PM2.5-like).

Run: ``.venv/bin/python bench/forecast.py [--issues 120 --years 4 --sim-days 21]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import load_config  # noqa: E402
from bench._common import print_table  # noqa: E402
from ops.signs.backtest import backtest, skilful_forecast  # noqa: E402
from ops.signs.forecast import forecast  # noqa: E402
from ops.signs.indicator_spec import ForecastSpec  # noqa: E402
from ops.signs.indicators import bucket_values, state_value  # noqa: E402
from ops.signs.settings import SIGNS_SECTION, Indicator  # noqa: E402
from store.city import CityData  # noqa: E402

STEPS = 24
SHOWN = (1, 3, 6, 24)
MODELS = ("persistence", "seasonal naive", "ETS", "citybrain before", "citybrain")
#: The history the earlier choice was backtested on (a week of hourly buckets).
BEFORE_HISTORY = 168


def issue_errors(values: np.ndarray, history: int, season: int, issues: int,
                 ) -> tuple[dict[str, np.ndarray], dict[str, int], float]:
    """Absolute errors (issue × step, plus the 24-step mean as a last column) per model;
    how often citybrain chose each model; seconds per issue."""
    n = len(values)
    last = n - STEPS
    # From a week in: where fewer than ``history`` values precede an issue time, the
    # forecast has what there is (as a city's first weeks do).
    starts = np.unique(np.round(np.linspace(BEFORE_HISTORY, last, issues)).astype(int))
    errors: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    chosen: dict[str, int] = {}
    index = pd.date_range("2000-01-01", periods=n, freq="1h", tz="UTC")
    started = time.perf_counter()
    for start in starts:
        first = max(0, start - history)
        past = pd.Series(values[first:start], index=index[first:start])
        future = values[start:start + STEPS]
        if np.isnan(past.iloc[-1]) or np.isnan(future).any():
            continue
        week = past.iloc[-BEFORE_HISTORY:]
        tested = backtest(past.to_numpy(), STEPS, season)
        picked = skilful_forecast(past, STEPS, season=season, tested=tested)
        for model in picked.models or ("persistence",):
            chosen[model] = chosen.get(model, 0) + 1
        before = skilful_forecast(week, STEPS, season=season,
                                  tested=backtest(week.to_numpy(), STEPS, season, alpha=None))
        lagged = past.to_numpy()
        predictions = {
            "persistence": np.full(STEPS, past.iloc[-1]),
            "seasonal naive": np.array([lagged[len(lagged) + h - season * math.ceil((h + 1) / season)]
                                        for h in range(STEPS)]),
            "ETS": np.array(forecast(week, STEPS, season=season).mean),
            "citybrain before": np.array(before.mean),
            "citybrain": np.array(picked.mean),
        }
        for name, predicted in predictions.items():
            row = np.abs(future - predicted)
            errors[name].append(np.append(row, abs(future.mean() - predicted.mean())))
    seconds = (time.perf_counter() - started) / max(1, len(starts))
    return {m: np.array(rows) for m, rows in errors.items()}, chosen, seconds


def report(title: str, values: np.ndarray, history: int, season: int, issues: int) -> None:
    errors, chosen, seconds = issue_errors(values, history, season, issues)
    count = len(errors["persistence"])
    columns = [f"+{h} h" for h in SHOWN] + ["next 24 h mean"]
    picks = [h - 1 for h in SHOWN] + [STEPS]
    rows: list[list[object]] = []
    for name in MODELS:
        mae = errors[name].mean(axis=0)
        rows.append([f"MAE {name}", *(f"{mae[i]:.3g}" for i in picks)])
    base = errors["persistence"].mean(axis=0)
    for name in MODELS[1:]:
        mae = errors[name].mean(axis=0)
        rows.append([f"{name} / persistence", *(f"{mae[i] / base[i]:.2f}" for i in picks)])
    # Is citybrain's excess over persistence noise? A paired standard error of the ratio.
    diff = errors["citybrain"] - errors["persistence"]
    se = diff.std(axis=0, ddof=1) / math.sqrt(max(1, count)) / base
    rows.append(["  ± 2 s.e. (paired)", *(f"{2 * se[i]:.2f}" for i in picks)])
    print_table(f"{title}: {len(values)} hourly values, {count} issue times, history {history} h "
                f"(before: {BEFORE_HISTORY} h); citybrain's steps by model "
                f"{dict(sorted(chosen.items()))}; {seconds:.2f} s per issue "
                "(two backtests + forecasts)", ["", *columns], rows)


# ------------------------------------------------------------------ series
def synthetic(years: float, seed: int = 13) -> np.ndarray:
    """Hourly, PM2.5-like: level breaks, daily and weekly cycles, AR(1) noise, ≥ 0."""
    rng = np.random.default_rng(seed)
    n = int(years * 365.25 * 24)
    t = np.arange(n)
    level = np.empty(n)
    breaks = np.sort(rng.choice(n, size=int(years * 3), replace=False))
    for lo, hi, value in zip(np.r_[0, breaks], np.r_[breaks, n], rng.uniform(25, 70, len(breaks) + 1),
                             strict=True):
        level[lo:hi] = value
    daily = 12 * np.sin(2 * np.pi * (t % 24 - 14) / 24)
    weekly = -8 * ((t // 24) % 7 >= 5)
    noise = np.empty(n)
    noise[0] = 0.0
    shocks = rng.normal(0, 6, n)
    for i in range(1, n):
        noise[i] = 0.9 * noise[i - 1] + shocks[i]
    return np.maximum(level + daily + weekly + noise, 0.0)


def demo_series(sim_days: int) -> list[tuple[str, np.ndarray, Indicator]]:
    """The demo city's forecast indicators over their replayed history (hourly)."""
    config = load_config()
    settings = config.section(SIGNS_SECTION)
    assert settings is not None
    out: list[tuple[str, np.ndarray, Indicator]] = []
    data = CityData(config)
    for indicator in settings.indicators:
        if indicator.forecast is None:
            continue
        sources = [s for s in config.sources if s.layer == indicator.layer
                   and s.role == indicator.role
                   and (indicator.source is None or s.name == indicator.source)]
        source = sources[0]
        if source.adapter == "replay" and not indicator.bucketed:
            print(f"{indicator.name}: a state of the replayed rows (its past needs the live "
                  "history log); not benchmarked\n")
        elif source.adapter == "replay":
            rows = pd.read_parquet(source.path(), columns=[source.fields["time"]])
            times = pd.to_datetime(rows[source.fields["time"]])
            times = times.dt.tz_localize("UTC") if times.dt.tz is None else times
            start = times.min().ceil("1h")
            ends = pd.date_range(start, times.max().floor("1h"), freq="1h")
            # The recorded samples are months apart: the longest continuous run of days.
            frame = pd.DataFrame({"time": times})
            values = bucket_values(replace(indicator, where=()), frame, list(ends))
            counts = pd.Series(values, index=ends)
            daily = counts.resample("1D").sum()
            run = (daily > 0).astype(int).groupby((daily == 0).cumsum()).cumsum()
            last_day = run.idxmax()
            first_day = last_day - pd.Timedelta(days=int(run.max()) - 1)
            counts = counts.loc[first_day:last_day + pd.Timedelta(hours=23)]
            out.append((f"{indicator.name} (recorded {first_day:%Y-%m-%d}…{last_day:%Y-%m-%d})",
                        counts.to_numpy(), indicator))
        elif source.adapter == "simulator":
            out.append((f"{indicator.name} (simulator, {sim_days} days)",
                        simulated(data, source, indicator, sim_days), indicator))
    return out


def simulated(data: CityData, source: object, indicator: Indicator, days: int) -> np.ndarray:
    """The indicator at each hour's end of a seeded simulator run (state: the latest rows)."""
    adapter = data.adapter(source)  # type: ignore[arg-type]
    adapter._load()  # type: ignore[attr-defined]
    per_hour = int(round(3600 / adapter.period))  # type: ignore[attr-defined]
    step: Callable[[int], pd.DataFrame] = adapter._step  # type: ignore[attr-defined]
    values = []
    for hour in range(days * 24):
        for k in range(per_hour):
            rows = step(hour * per_hour + k)
        values.append(state_value(indicator, rows))
    return np.array(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=120, help="issue times per series")
    parser.add_argument("--years", type=float, default=4.0, help="synthetic series length")
    parser.add_argument("--sim-days", type=int, default=21, help="simulated days of telemetry")
    args = parser.parse_args()
    for title, values, indicator in demo_series(args.sim_days):
        spec = indicator.forecast
        assert spec is not None
        history = int(round(spec.history_span(indicator.bucket) / indicator.bucket))
        season = spec.season_buckets(indicator.bucket) or 24
        if len(values) < BEFORE_HISTORY + STEPS + 1:
            print(f"{title}: {len(values)} hourly values, too short for a week of history "
                  f"and a day ahead; not benchmarked\n")
            continue
        report(title, values, history, season, args.issues)
    hourly = int(round(ForecastSpec().history_span(3600.0) / 3600.0))
    report(f"synthetic seasonal ({args.years:g} years)", synthetic(args.years), hourly, 24,
           args.issues)


if __name__ == "__main__":
    main()
