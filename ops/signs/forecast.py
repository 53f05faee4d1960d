"""Short-term forecasts of indicator series, with an uncertainty band (statsmodels ETS).

An indicator's recent buckets are fitted with an exponential-smoothing state-space
model (:class:`statsmodels.tsa.exponential_smoothing.ets.ETSModel`, additive errors)
and forecast a few buckets ahead; the band is the model's prediction interval
(``get_prediction(...).summary_frame(alpha)``, 80 % by default). The model is
chosen by how much history there is:

* two full seasons or more (with a ``season``): ETS(A, N, A), level + season;
* ten points or more: ETS(A, Ad, N), level + damped trend;
* five points or more: ETS(A, N, N), simple exponential smoothing;
* fewer, a constant series, or a fit that fails: the **naive** forecast — the last
  value, with a band of ± z·σ of the series — and ``method = "naive"`` says so.

Whether ETS is *used* is not decided here: :mod:`ops.signs.backtest` tests it, persistence
and the seasonal-naive forecast on the indicator's own history and keeps the best.

Nothing here raises on odd input: a forecast is an aid, and a bad fit must never
take the vital signs down with it.

Example::

    fc = forecast(series, steps=3)          # series: values at regular times
    fc.method, fc.mean, fc.upper            # "ets", (…), (…)
    fc.first_crossing(90.0, "above")        # Timestamp of the first step ≥ 90, or None
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Container
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: ``naive``: the last value carried forward (persistence); ``seasonal_naive``: the value
#: one season earlier; ``ets``: the fitted model; ``none``: no data.
#: ``blend``: different models at different steps (see ``models``).
Method = Literal["ets", "naive", "seasonal_naive", "blend", "none"]

#: Shortest series fitted with a model at all, and with a damped trend.
MIN_POINTS_SES = 5
MIN_POINTS_TREND = 10


@dataclass(frozen=True)
class Forecast:
    """Forecast values at future ``times``, with a central ``level`` band."""

    method: Method
    model: str
    times: tuple[pd.Timestamp, ...]
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    level: float = 0.8
    #: Why the naive fallback was used, if it was.
    note: str = ""
    #: Skill per step, ``1 − MAE(model) / MAE(baseline)`` on the rolling-origin backtest of
    #: the indicator's own history (NaN: not backtested). Empty: never backtested.
    skill: tuple[float, ...] = ()
    #: Per step, the baseline the skill is measured against (``persistence`` /
    #: ``seasonal_naive``), and the model used (``persistence``, ``seasonal_naive``, ``ets``).
    baseline: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    #: The backtest behind ``skill`` (an :class:`ops.signs.backtest.Backtest`), if any.
    backtest: Any = None
    #: The first backtest is still running (in the background): persistence meanwhile.
    pending: bool = False

    def skill_at(self, when: pd.Timestamp) -> float:
        """The skill at forecast time ``when`` (NaN when unknown)."""
        for at, skill in zip(self.times, self.skill, strict=False):
            if at == when:
                return skill
        return math.nan

    def band(self, which: Literal["upper", "lower", "mean"]) -> tuple[float, ...]:
        return {"upper": self.upper, "lower": self.lower, "mean": self.mean}[which]

    def first_crossing(self, limit: float, direction: Literal["above", "below"] = "above",
                       band: Literal["upper", "lower", "mean"] = "mean",
                       until: pd.Timestamp | None = None, inclusive: bool = False,
                       steps: Container[pd.Timestamp] | None = None,
                       ) -> tuple[pd.Timestamp, float] | None:
        """The first forecast time (up to ``until``) whose ``band`` value is beyond ``limit``.

        ``above`` means > limit (≥ with ``inclusive``), ``below`` < limit (≤); with
        ``steps``, only those forecast times count (the forecast rule passes the steps
        with skill). Returns (time, value) or None.
        """
        for when, value in zip(self.times, self.band(band), strict=True):
            if until is not None and when > until:
                break
            if steps is not None and when not in steps:
                continue
            if direction == "above":
                beyond = value >= limit if inclusive else value > limit
            else:
                beyond = value <= limit if inclusive else value < limit
            if beyond:
                return when, value
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "model": self.model, "level": self.level, "note": self.note,
            "times": [t.isoformat() for t in self.times],
            "mean": [_json_number(v) for v in self.mean],
            "lower": [_json_number(v) for v in self.lower],
            "upper": [_json_number(v) for v in self.upper],
            "skill": [_json_number(v) for v in self.skill], "baseline": list(self.baseline),
            "models": list(self.models), "pending": self.pending,
            "backtest": None if self.backtest is None else self.backtest.as_dict(),
        }


def _json_number(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def future_times(series: pd.Series, steps: int, step: pd.Timedelta | None) -> tuple[pd.Timestamp, ...]:
    """The ``steps`` times after the series' last one, ``step`` apart (default: its last step)."""
    if not isinstance(series.index, pd.DatetimeIndex) or len(series.index) == 0:
        return tuple(pd.Timestamp(i) for i in range(steps))  # type: ignore[arg-type]
    if step is None:
        step = series.index[-1] - series.index[-2] if len(series.index) > 1 else pd.Timedelta(hours=1)
    last = series.index[-1]
    return tuple(last + step * (k + 1) for k in range(steps))


def prepare(series: pd.Series) -> pd.Series:
    """Leading/trailing gaps dropped, inner gaps interpolated (ETS takes no NaN)."""
    values = pd.to_numeric(series, errors="coerce").astype(float)
    values = values.replace([np.inf, -np.inf], np.nan)
    valid = values.notna().to_numpy()
    if not valid.any():
        return values.iloc[0:0]
    first, last = int(np.argmax(valid)), len(valid) - int(np.argmax(valid[::-1]))
    values = values.iloc[first:last]
    if values.isna().any():
        values = values.interpolate(limit_direction="both")
    return values


def naive_forecast(series: pd.Series, steps: int, level: float = 0.8, note: str = "",
                   step: pd.Timedelta | None = None) -> Forecast:
    """The last value carried forward, with a band of ± z·σ of the series (σ = 0 below 2 points)."""
    values = prepare(series)
    times = future_times(series, steps, step)
    if values.empty:
        nan = (math.nan,) * steps
        return Forecast("none", "no data", times, nan, nan, nan, level, note or "no data")
    last = float(values.iloc[-1])
    sigma = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    half = NormalDist().inv_cdf(0.5 + level / 2) * (sigma if math.isfinite(sigma) else 0.0)
    lower, upper = last - half, last + half
    if (values >= 0).all():
        lower = max(lower, 0.0)
    return Forecast("naive", "last value ± z·σ", times, (last,) * steps, (lower,) * steps,
                    (upper,) * steps, level, note)


def ets_spec(points: int, season: int | None) -> tuple[dict[str, Any], str, int]:
    """The ETS model fitted to ``points`` values: (ETSModel keywords, name, fewest points).

    Seasonal once two full seasons (and two points) are there, damped trend from
    :data:`MIN_POINTS_TREND` points, simple exponential smoothing below.
    """
    if season is not None and season >= 2 and points >= 2 * season + 2:
        return ({"trend": None, "seasonal": "add", "seasonal_periods": season,
                 "initialization_method": "heuristic"}, f"ETS(A,N,A) season {season}",
                2 * season + 2)
    if points >= MIN_POINTS_TREND:
        return {"trend": "add", "damped_trend": True}, "ETS(A,Ad,N)", MIN_POINTS_TREND
    return {"trend": None}, "ETS(A,N,N)", MIN_POINTS_SES


def forecast(series: pd.Series, steps: int, *, season: int | None = None, level: float = 0.8,
             step: pd.Timedelta | None = None) -> Forecast:
    """Forecast ``steps`` values after the end of ``series`` (a regular series).

    ``season`` is the seasonal period in steps (e.g. 24 for a daily cycle of hourly
    buckets); it is used only when the series holds two full seasons and more.
    Counts (a series never negative) get bands clipped at zero.
    """
    values = prepare(series)
    if steps <= 0:
        return Forecast("none", "no horizon", (), (), (), (), level)
    if len(values) < MIN_POINTS_SES:
        return naive_forecast(series, steps, level, f"{len(values)} points: too few to fit", step)
    if float(values.max() - values.min()) <= 1e-12 * max(1.0, abs(float(values.iloc[-1]))):
        return naive_forecast(series, steps, level, "constant series", step)
    spec, model_name, _ = ets_spec(len(values), season)
    # Imported outside the try: a missing statsmodels is an install error to see,
    # not a reason to quietly answer with a naive forecast.
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    try:
        endog = pd.Series(values.to_numpy(), index=pd.RangeIndex(len(values)))
        with warnings.catch_warnings():
            # Convergence chatter on short or flat series; a bad fit is caught below.
            warnings.simplefilter("ignore")
            fitted = ETSModel(endog, error="add", **spec).fit(disp=False)
            frame = fitted.get_prediction(start=len(values), end=len(values) + steps - 1) \
                .summary_frame(alpha=1 - level)
        mean = frame["mean"].to_numpy(dtype=float)
        lower = frame["pi_lower"].to_numpy(dtype=float)
        upper = frame["pi_upper"].to_numpy(dtype=float)
    except Exception as exc:  # statsmodels raises many kinds on degenerate input
        log.info("ETS fit failed (%s); naive forecast instead", exc)
        return naive_forecast(series, steps, level, f"fit failed: {type(exc).__name__}", step)
    if not (np.isfinite(mean).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
        return naive_forecast(series, steps, level, "fit gave no finite forecast", step)
    if (values >= 0).all():
        mean, lower, upper = np.maximum(mean, 0.0), np.maximum(lower, 0.0), np.maximum(upper, 0.0)
    return Forecast("ets", model_name, future_times(series, steps, step),
                    tuple(map(float, mean)), tuple(map(float, lower)), tuple(map(float, upper)),
                    level)


__all__ = ["Forecast", "ets_spec", "forecast", "naive_forecast", "prepare", "future_times"]
