"""Rolling-origin backtests: a forecast is used only where it beats doing nothing.

Every indicator's forecast models are tested on the indicator's own history. At
each **origin** ``t`` a model sees the values before ``t`` and forecasts the next
``horizon`` buckets; its error at step ``h`` is ``actual[t + h − 1] − forecast``.
The mean absolute error per step, over the origins, says how good the model is:

* ``persistence``: the last value carried forward (what "no forecast" means);
* ``seasonal_naive``: the value one season earlier (two seasons for steps beyond
  one season), with a ``season``;
* ``ets``: :func:`ops.signs.forecast.forecast`'s exponential smoothing, refitted on
  the values before the origin (so no origin sees its future) at up to
  :data:`MAX_FITS` origins spread evenly; at the origins between, the latest
  parameters are run forward (``smooth``) over the longer history.

At each step persistence is kept unless a model **clearly** beats it there: the models
are tried simplest first (seasonal-naive, then ETS) and one replaces the model kept so
far only when its absolute errors are lower by a **significant** margin, a one-sided
Diebold–Mariano test on the paired absolute errors at the same origins (a long-run
variance over the origins whose forecasts overlap, the Harvey–Leybourne–Newbold
small-sample correction, Student's t; :data:`ALPHA`). A lower MAE on a few dozen
origins is often luck: chosen on the lowest MAE alone, a forecast lost to persistence
out of sample (1.04 × its MAE at +3 h on four years of hourly PM2.5-like values,
``bench/forecast.py``). So a forecast may carry the last value one hour ahead and the
daily cycle a day ahead. The **skill** per step is
``1 − MAE(chosen) / MAE(baseline)``; the baseline is persistence where the
seasonal-naive forecast is chosen, and the better of the two naive forecasts where
ETS is — so a positive skill means the forecast beats every simpler forecast it
replaces. Where persistence is chosen there is no skill (0).

Inner gaps are interpolated for the models, as for the fit; errors are counted
only where the actual value was observed. Origins are the latest possible ones
(each with the full horizon observed), at most ``max_origins``, spread evenly.

Example::

    result = backtest(values, horizon=3, season=24)   # values: a 1-D array, NaN = unknown
    result.chosen, result.baseline, result.skill       # ("persistence", "ets", "ets"), …
    result.mae["persistence"]                          # MAE at +1, +2, +3 buckets
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ops.signs.forecast import Forecast, Method, ets_spec, forecast, future_times, naive_forecast, prepare

log = logging.getLogger(__name__)

#: Fewest origins a model is judged on; with fewer it is not a candidate.
MIN_ORIGINS = 5
#: Most origins per backtest (the cost of an ETS backtest grows with them).
MAX_ORIGINS = 48
#: Most ETS re-estimations per backtest (a damped-trend fit costs 0.1–0.4 s).
MAX_FITS = 6
#: Fewest errors per step before the band is drawn from the backtest's own errors.
MIN_BAND_ERRORS = 10
#: Naive models, the baselines a forecast must beat.
NAIVE = ("persistence", "seasonal_naive")
#: One-sided significance level at which a model replaces a simpler one at a step.
ALPHA = 0.05


# ------------------------------------------------------------------ models
class Model:
    """A forecast model as the backtest sees it: forecasts from many origins at once."""

    name: ClassVar[str]
    title_en: ClassVar[str]
    title_zh: ClassVar[str]

    def min_train(self, points: int, season: int | None) -> int | None:
        """Fewest values before an origin (None: the model does not apply)."""
        raise NotImplementedError

    def predict(self, values: np.ndarray, origins: np.ndarray, horizon: int,
                season: int | None) -> np.ndarray:
        """Forecasts, shape ``(len(origins), horizon)``, each from ``values[:origin]``."""
        raise NotImplementedError


class Persistence(Model):
    name = "persistence"
    title_en = "persistence (last value)"
    title_zh = "持续（上一值）"

    def min_train(self, points: int, season: int | None) -> int | None:
        return 1

    def predict(self, values: np.ndarray, origins: np.ndarray, horizon: int,
                season: int | None) -> np.ndarray:
        return np.repeat(values[origins - 1][:, None], horizon, axis=1)


class SeasonalNaive(Model):
    name = "seasonal_naive"
    title_en = "seasonal naive (one season ago)"
    title_zh = "季节朴素（上一周期同刻）"

    def min_train(self, points: int, season: int | None) -> int | None:
        return None if season is None or season < 2 else season

    def predict(self, values: np.ndarray, origins: np.ndarray, horizon: int,
                season: int | None) -> np.ndarray:
        assert season is not None
        steps = np.arange(1, horizon + 1)
        back = season * np.ceil(steps / season).astype(int)  # the latest season already seen
        return values[origins[:, None] + steps[None, :] - 1 - back[None, :]]


class Ets(Model):
    name = "ets"
    title_en = "exponential smoothing (ETS)"
    title_zh = "指数平滑（ETS）"

    def min_train(self, points: int, season: int | None) -> int | None:
        # The model the full series is fitted with, given enough values to fit it.
        _, _, fewest = ets_spec(points, season)
        return max(fewest, 2 * MIN_ORIGINS)

    def predict(self, values: np.ndarray, origins: np.ndarray, horizon: int,
                season: int | None) -> np.ndarray:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        spec, _, _ = ets_spec(len(values), season)
        out = np.full((len(origins), horizon), math.nan)
        refit = set(origins[fit_positions(len(origins))].tolist())
        params = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; a bad fit shows in the MAE
            for i, origin in enumerate(origins):
                model = ETSModel(pd.Series(values[:origin]), error="add", **spec)
                if origin in refit:
                    # A cold start each time: warm starts from the last origin's optimum
                    # stick to it (e.g. a deterministic trend after a turn).
                    run = model.fit(disp=False)
                    params = run.params
                else:
                    run = model.smooth(params)
                out[i] = np.asarray(run.forecast(horizon), dtype=float)
        return out


def fit_positions(origins: int, most: int | None = None) -> np.ndarray:
    """Which origins (positions) ETS is re-estimated at: at most ``most`` (default
    :data:`MAX_FITS`), spread evenly, the first always; between them the last
    parameters are run forward (``smooth``) over the longer history."""
    most = MAX_FITS if most is None else most
    return np.unique(np.round(np.linspace(0, origins - 1, min(most, origins))).astype(int))


#: The candidates, simplest first (ties go to the earlier one).
MODELS: tuple[Model, ...] = (Persistence(), SeasonalNaive(), Ets())
MODEL_BY_NAME: Mapping[str, Model] = {m.name: m for m in MODELS}


# ---------------------------------------------------------------- backtest
@dataclass(frozen=True)
class Backtest:
    """What a rolling-origin backtest found (see module docs)."""

    horizon: int
    season: int | None
    #: Values the backtest ran on, and its origins (indices into them).
    points: int
    origins: tuple[int, ...]
    #: MAE per step of every model tested, in :data:`MODELS` order.
    mae: Mapping[str, tuple[float, ...]]
    #: Errors counted per step (actuals observed).
    pairs: tuple[int, ...]
    #: The model used at each step (the lowest MAE there).
    chosen: tuple[str, ...]
    #: What each step's skill is measured against.
    baseline: tuple[str, ...]
    #: ``1 − MAE(chosen) / MAE(baseline)`` per step.
    skill: tuple[float, ...]
    #: Per step, the one-sided p-value with which the chosen model beat the simpler one it
    #: replaced (NaN where persistence is kept, or where the choice was by MAE alone).
    p_value: tuple[float, ...] = ()
    #: Per model, quantiles of its errors per step (lower, upper) for its band; models
    #: with too few errors are absent.
    bands: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    #: Models that could not be tested, and why.
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def skilful(self) -> bool:
        """True when the forecast beats its baseline at some step."""
        return any(s > 0 for s in self.skill if math.isfinite(s))

    @property
    def only_persistence(self) -> bool:
        """True when persistence won at every step (no forecast beats doing nothing)."""
        return set(self.chosen) == {"persistence"}

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/api/signs``' ``forecast.backtest``."""
        def num(v: float) -> float | None:
            return round(float(v), 6) if math.isfinite(v) else None
        return {"chosen": list(self.chosen), "baseline": list(self.baseline),
                "origins": len(self.origins), "points": self.points, "season": self.season,
                "skill": [num(v) for v in self.skill],
                "mae": {name: [num(v) for v in values] for name, values in self.mae.items()},
                "p_value": [num(v) for v in self.p_value],
                "pairs": list(self.pairs), "skipped": dict(self.skipped)}


def rolling_origins(points: int, horizon: int, min_train: int,
                    max_origins: int = MAX_ORIGINS) -> np.ndarray:
    """Origins ``t`` with ``min_train ≤ t ≤ points − horizon``: the latest ``max_origins``
    of them spread evenly over that range (the last one always included)."""
    low, high = min_train, points - horizon
    if high < low:
        return np.empty(0, dtype=int)
    if high - low + 1 <= max_origins:
        return np.arange(low, high + 1)
    return np.unique(np.round(np.linspace(low, high, max_origins)).astype(int))


def _filled(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leading/trailing NaN dropped, inner gaps interpolated; and where values were observed."""
    values = np.asarray(values, dtype=float)
    values = np.where(np.isfinite(values), values, np.nan)
    seen = np.flatnonzero(~np.isnan(values))
    if len(seen) == 0:
        return np.empty(0), np.empty(0, dtype=bool)
    values = values[seen[0]: seen[-1] + 1]
    observed = ~np.isnan(values)
    if not observed.all():
        positions = np.arange(len(values))
        values = np.interp(positions, positions[observed], values[observed])
    return values, observed


def superiority_pvalue(kept: np.ndarray, challenger: np.ndarray, overlap: int = 0) -> float:
    """One-sided p-value that ``challenger``'s absolute errors are lower than ``kept``'s.

    A Diebold–Mariano test on the paired loss differences ``|kept| − |challenger|`` (one
    per origin): their mean over its standard error, with a Bartlett long-run variance
    over ``overlap`` lags (forecasts from origins closer than the step share actuals),
    the Harvey–Leybourne–Newbold small-sample factor and Student's t with n − 1 degrees
    of freedom. 1.0 when there are fewer than :data:`MIN_ORIGINS` pairs.

    >>> round(superiority_pvalue(np.array([2.0, 3, 2, 3, 2, 3]), np.array([1.0, 1, 1, 2, 1, 1])), 4)
    0.0007
    """
    from scipy.stats import t as student_t

    diff = np.abs(np.asarray(kept, dtype=float)) - np.abs(np.asarray(challenger, dtype=float))
    diff = diff[np.isfinite(diff)]
    n = len(diff)
    if n < MIN_ORIGINS:
        return 1.0
    mean = float(diff.mean())
    centred = diff - mean
    lags = max(0, min(int(overlap), n - 1))
    variance = float(centred @ centred) / n
    for k in range(1, lags + 1):
        variance += 2 * (1 - k / (lags + 1)) * float(centred[k:] @ centred[:-k]) / n
    if variance <= 1e-12 * max(1.0, mean * mean):
        return 0.0 if mean > 0 else 1.0
    h = lags + 1
    correction = math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 1.0) / n)
    statistic = correction * mean / math.sqrt(variance / n)
    return float(student_t.sf(statistic, n - 1))


def backtest(values: Sequence[float] | np.ndarray, horizon: int, season: int | None = None,
             max_origins: int = MAX_ORIGINS, level: float = 0.8,
             models: Sequence[Model] = MODELS, alpha: float | None = ALPHA,
             ) -> Backtest | None:
    """Backtest ``models`` on ``values`` (regular buckets, oldest first; NaN unknown).

    ``alpha``: the significance a model needs to replace a simpler one at a step (see
    module docs); None chooses the lowest MAE at each step, however slim the margin.
    None when not even persistence can be tested on :data:`MIN_ORIGINS` origins.
    """
    filled, observed = _filled(np.asarray(values, dtype=float))
    n = len(filled)
    if horizon <= 0 or n == 0:
        return None
    skipped: dict[str, str] = {}
    candidates: list[tuple[Model, int]] = []
    for model in models:
        least = model.min_train(n, season)
        if least is None:
            skipped[model.name] = "no season"
        elif len(rolling_origins(n, horizon, least, max_origins)) < MIN_ORIGINS:
            skipped[model.name] = f"{n} values: too few for {MIN_ORIGINS} origins"
        else:
            candidates.append((model, least))
    if not candidates or candidates[0][0].name != "persistence":
        return None
    origins = rolling_origins(n, horizon, max(least for _, least in candidates), max_origins)
    targets = origins[:, None] + np.arange(horizon)[None, :]
    actual, counted = filled[targets], observed[targets]
    pairs = tuple(int(c) for c in counted.sum(axis=0))
    mae: dict[str, tuple[float, ...]] = {}
    errors: dict[str, np.ndarray] = {}
    for model, _ in candidates:
        try:
            predicted = model.predict(filled, origins, horizon, season)
        except Exception as exc:  # statsmodels raises many kinds on degenerate input
            log.info("backtest of %s failed: %s", model.name, exc)
            skipped[model.name] = f"failed: {type(exc).__name__}"
            continue
        error = actual - predicted
        if not np.isfinite(error[counted]).all():
            skipped[model.name] = "no finite forecast"
            continue
        errors[model.name] = error
        mae[model.name] = tuple(
            float(np.abs(error[:, h][counted[:, h]]).mean()) if pairs[h] else math.nan
            for h in range(horizon))
    if "persistence" not in mae:
        return None
    chosen: list[str] = []
    baseline: list[str] = []
    p_value: list[float] = []
    gap = float(np.median(np.diff(origins))) if len(origins) > 1 else 1.0
    for h in range(horizon):
        best, p_best = "persistence", math.nan
        overlap = max(0, math.ceil((h + 1) / gap) - 1)
        for name in mae:  # MODELS order: a later model must be (clearly) better
            if name == best or not mae[name][h] < mae[best][h] - 1e-12 * max(1.0, abs(mae[best][h])):
                continue
            if alpha is None:
                best = name
                continue
            seen = counted[:, h]
            p = superiority_pvalue(errors[best][:, h][seen], errors[name][:, h][seen], overlap)
            if p < alpha:
                best, p_best = name, p
        chosen.append(best)
        p_value.append(p_best)
        # A naive forecast is measured against persistence (persistence against itself:
        # no skill), ETS against the better naive forecast at that step.
        baseline.append("persistence" if best in NAIVE else min(
            (name for name in NAIVE if name in mae), key=lambda name: mae[name][h]))
    skill = tuple(_skill(mae[c][h], mae[b][h])
                  for h, (c, b) in enumerate(zip(chosen, baseline, strict=True)))
    bands: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    if min(pairs) >= MIN_BAND_ERRORS:
        for name, error in errors.items():
            bands[name] = tuple(  # type: ignore[assignment]
                tuple(float(np.quantile(error[:, h][counted[:, h]], q)) for h in range(horizon))
                for q in ((1 - level) / 2, (1 + level) / 2))
    return Backtest(horizon=horizon, season=season, points=n,
                    origins=tuple(int(o) for o in origins), mae=mae, pairs=pairs,
                    chosen=tuple(chosen), baseline=tuple(baseline), skill=skill,
                    p_value=tuple(p_value), bands=bands, skipped=skipped)


def _skill(model_mae: float, baseline_mae: float) -> float:
    if not (math.isfinite(model_mae) and math.isfinite(baseline_mae)):
        return math.nan
    if baseline_mae <= 0:
        return 0.0 if model_mae <= 0 else -math.inf
    return 1.0 - model_mae / baseline_mae


# ------------------------------------------------------------ the forecast
def skilful_forecast(series: pd.Series, steps: int, *, season: int | None = None,
                     level: float = 0.8, step: pd.Timedelta | None = None,
                     tested: Backtest | None = None, pending: bool = False) -> Forecast:
    """Each step forecast by the model ``tested`` chose for it (persistence when untested),
    with its skill and baseline.

    ``pending``: untested because the first backtest is still running (the forecast
    says ``backtest pending`` and claims no skill).

    ``tested`` is :func:`backtest` of the same series (it may be a little older: backtests
    are cached). Naive forecasts get a band from their backtest errors when there are
    enough of them, ETS its own prediction interval.
    """
    values = prepare(series)
    if tested is None or tested.horizon != steps:
        result = naive_forecast(series, steps, level, step=step)
        if result.method == "none":
            return result
        untested = "backtest pending" if pending else f"not backtested: {len(values)} values"
        return replace(result, skill=(math.nan,) * steps, baseline=("persistence",) * steps,
                       models=("persistence",) * steps, pending=pending,
                       note=f"{result.note}; {untested}" if result.note else untested)
    if values.empty:
        return naive_forecast(series, steps, level, step=step)
    chosen, skill, note = list(tested.chosen), list(tested.skill), ""
    made: dict[str, Forecast] = {}
    if "ets" in chosen:
        fitted = forecast(series, steps, season=season, level=level, step=step)
        if fitted.method == "ets":
            made["ets"] = fitted
        else:  # the fit failed now: the best naive model at those steps, claiming no skill
            note = f"ETS chosen by the backtest, but {fitted.note}"
            for h, name in enumerate(chosen):
                if name == "ets":
                    chosen[h] = min((m for m in NAIVE if m in tested.mae),
                                    key=lambda m: tested.mae[m][h])
                    skill[h] = 0.0
    for name in set(chosen) - set(made):
        made[name] = _naive(values, series, steps, level, step, season, tested, name)
    pick = [made[name] for name in chosen]
    mean = tuple(f.mean[h] for h, f in enumerate(pick))
    lower = tuple(f.lower[h] for h, f in enumerate(pick))
    upper = tuple(f.upper[h] for h, f in enumerate(pick))
    methods = {f.method for f in pick}
    method: Method = pick[0].method if len(methods) == 1 else "blend"
    return Forecast(method, _describe(chosen, made), pick[0].times, mean, lower, upper, level,
                    note=note, skill=tuple(skill), baseline=tested.baseline,
                    models=tuple(chosen), backtest=tested)


def _describe(chosen: Sequence[str], made: Mapping[str, Forecast]) -> str:
    """``ETS(A,N,A) season 24`` or ``persistence (last value) +1–2, ETS(…) +3–6`` (steps)."""
    runs: list[tuple[str, int, int]] = []
    for h, name in enumerate(chosen, start=1):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], h)
        else:
            runs.append((name, h, h))
    if len(runs) == 1:
        return made[runs[0][0]].model
    return ", ".join(f"{made[name].model} +{a}" + (f"–{b}" if b > a else "")
                     for name, a, b in runs)


def _naive(values: pd.Series, series: pd.Series, steps: int, level: float,
           step: pd.Timedelta | None, season: int | None, tested: Backtest, chosen: str,
           ) -> Forecast:
    filled = values.to_numpy(dtype=float)
    model = MODEL_BY_NAME[chosen]
    mean = model.predict(filled, np.array([len(filled)]), steps,
                         season if chosen == "seasonal_naive" else None)[0]
    if chosen in tested.bands:
        low, high = tested.bands[chosen]
        lower, upper = mean + np.array(low), mean + np.array(high)
    else:
        band = naive_forecast(series, steps, level, step=step)
        lower = mean - (band.mean[0] - np.array(band.lower))
        upper = mean + (np.array(band.upper) - band.mean[0])
    if (values >= 0).all():
        mean, lower, upper = np.maximum(mean, 0.0), np.maximum(lower, 0.0), np.maximum(upper, 0.0)
    method: Method = "seasonal_naive" if chosen == "seasonal_naive" else "naive"
    title = f"seasonal naive (season {season})" if chosen == "seasonal_naive" else model.title_en
    return Forecast(method, title, future_times(series, steps, step),
                    tuple(map(float, mean)), tuple(map(float, lower)), tuple(map(float, upper)),
                    level)


__all__ = ["ALPHA", "MAX_ORIGINS", "MIN_ORIGINS", "MODELS", "Backtest", "Model", "backtest",
           "rolling_origins", "skilful_forecast", "superiority_pvalue"]
