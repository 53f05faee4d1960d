"""City vital signs (城市体征): indicators declared in config, computed from the city's rows.

Each :class:`~ops.signs.settings.Indicator` is one number about the city with a
recent history (the sparkline), a baseline, a status against its thresholds and
a short forecast. Values come from :class:`~store.city.CityData`:

* **bucketed** indicators (``kind = "rate"``, or ``over = "buckets"``) are computed
  from the rows' own timestamps: the value at ``t`` aggregates the rows whose
  ``time_column`` lies in ``(t − bucket, t]``. For a live source the rows are its
  history log (latest version of each id), so a series reaches back past the
  live window, as far as the history goes; buckets before that are NaN (unknown),
  never a false zero.
* **state** indicators (count, share, mean, median, sum, metric) are properties of
  the rows present at a moment. The current value comes from the live state; past
  values from an :class:`IndicatorHistory` — a bounded ring of samples recorded
  each tick — or, where it has none, from the live history
  (:meth:`~store.live.LiveStore.state_at`). Sources read once (snapshots) have no
  past: their value is taken as it is now.

Buckets end at the evaluation moment ``t`` (``t − k·bucket``), so the last point
of a series *is* the current value ("requests in the last hour"), and
``same_hour_yesterday`` is the point one day earlier. A bucketed indicator's ``t``
is ``min(now, watermark)``, the **watermark** being how far its sources' data
reach (the newest event time ingested, see :func:`evaluation_time`): a source that
lags by two hours gives a series that ends two hours ago, not two empty buckets.
Everything is a pure function of ``(data, indicator, now)`` except what an
``IndicatorHistory`` remembers.

Example::

    history = IndicatorHistory()
    readings = evaluate_all(data, indicators, reference_time(data), history)
    readings[0].as_dict()   # {"name": …, "value": …, "series": {…}, "forecast": {…}, …}
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from config.i18n import pick
from ops.signs.background import BackgroundBacktests
from ops.signs.backtest import Backtest, backtest, skilful_forecast
from ops.signs.forecast import Forecast
from ops.signs.rows import (
    event_rows,
    filter_where,
    has_live_source,
    reference_time,
    role_sources,
    state_rows,
    time_ns,
    watermark,
)
from ops.signs.settings import Indicator, Status, Thresholds

if TYPE_CHECKING:
    from store.city import CityData

log = logging.getLogger(__name__)

DAY = 86400.0
WEEK = 7 * DAY


# ------------------------------------------------------------------- values
def state_value(indicator: Indicator, rows: pd.DataFrame) -> float:
    """An indicator of kind count/share/mean/median/sum over a set of rows."""
    if indicator.source is not None and "source" in rows:
        rows = rows.loc[(rows["source"] == indicator.source).to_numpy()]
    matching = filter_where(rows, indicator.where)
    if indicator.kind == "count":
        return float(len(matching))
    if indicator.kind == "share":
        return math.nan if len(rows) == 0 else 100.0 * len(matching) / len(rows)
    assert indicator.column is not None  # the parser requires it for these kinds
    values = pd.to_numeric(matching[indicator.column], errors="coerce").astype(float).dropna()
    if indicator.kind == "sum":
        return float(values.sum())
    if values.empty:
        return math.nan
    return float(values.mean() if indicator.kind == "mean" else values.median())


def _metric_value(data: CityData, indicator: Indicator, moment: pd.Timestamp | None) -> float:
    metric = data.metric(indicator.layer, indicator.metric)
    # Additive metrics (the parser allows no others) total the same at any resolution:
    # the coarsest one in use has the fewest groups.
    res = min(r for _, r in data.config.map.res_by_zoom)
    if moment is not None and has_live_source(data, indicator.layer, metric.role, metric.source):
        for spec in role_sources(data, indicator.layer, metric.role, metric.source):
            live = data.live_window(spec.name)
            span = None if live is None else live.history_span()
            if span is not None and moment < span[0]:
                return math.nan
            if span is not None and moment < span[1]:
                return float(data.cells_at(indicator.layer, metric, res, moment).sum())
    return float(data.cells(indicator.layer, metric, res).sum())


def _value_now_or_at(data: CityData, indicator: Indicator, moment: pd.Timestamp | None) -> float:
    if indicator.kind == "metric":
        return _metric_value(data, indicator, moment)
    rows = state_rows(data, indicator.layer, indicator.role, indicator.source, moment)
    return math.nan if rows is None else state_value(indicator, rows)


def bucket_values(indicator: Indicator, rows: pd.DataFrame, ends: Sequence[pd.Timestamp],
                  coverage_start: pd.Timestamp | None = None) -> np.ndarray:
    """The indicator aggregated over the rows whose time lies in ``(end − bucket, end]``.

    ``rate`` counts rows (or sums ``column``); mean/median/sum aggregate ``column``.
    Ends before ``coverage_start`` are NaN: those rows may be gone.
    """
    out = np.full(len(ends), math.nan)
    if indicator.source is not None and "source" in rows:
        rows = rows.loc[(rows["source"] == indicator.source).to_numpy()]
    rows = filter_where(rows, indicator.where)
    column = indicator.time_column
    rows = rows.loc[rows[column].notna().to_numpy()] if column in rows else rows.iloc[0:0]
    times = time_ns(rows[column]) if len(rows) else np.empty(0, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    times = times[order]
    values = None
    if indicator.column is not None and len(rows):
        values = pd.to_numeric(rows[indicator.column], errors="coerce").to_numpy(dtype=float)[order]
    bucket_ns = int(round(indicator.bucket * 1e9))
    ends_ns = np.array([pd.Timestamp(e).as_unit("ns").value for e in ends], dtype=np.int64)
    lo = np.searchsorted(times, ends_ns - bucket_ns, side="right")
    hi = np.searchsorted(times, ends_ns, side="right")
    for i in range(len(ends_ns)):
        if indicator.kind == "rate" and values is None:
            out[i] = hi[i] - lo[i]
        elif values is None:  # a column kind over no rows at all
            out[i] = 0.0 if indicator.kind in ("rate", "sum") else math.nan
        else:
            chunk = values[lo[i]:hi[i]]
            chunk = chunk[~np.isnan(chunk)]
            if indicator.kind in ("rate", "sum"):
                out[i] = float(chunk.sum())
            elif len(chunk):
                out[i] = float(chunk.mean() if indicator.kind == "mean" else np.median(chunk))
    if coverage_start is not None:
        cutoff = pd.Timestamp(coverage_start).as_unit("ns").value
        out[ends_ns < cutoff] = math.nan
    return out


def bucket_ends(now: pd.Timestamp, bucket: float, span: float) -> pd.DatetimeIndex:
    """``now − k·bucket`` for the buckets covering ``span`` seconds, oldest first."""
    periods = max(1, int(math.ceil(span / bucket - 1e-9)))
    return pd.date_range(end=now, periods=periods, freq=pd.Timedelta(seconds=bucket))


def indicator_watermark(data: CityData, indicator: Indicator) -> pd.Timestamp | None:
    """How far the indicator's sources have reached (see :func:`ops.signs.rows.watermark`)."""
    role, source = indicator.role, indicator.source
    if indicator.kind == "metric":
        metric = data.metric(indicator.layer, indicator.metric)
        role, source = metric.role, metric.source
    return watermark(data, indicator.layer, role, source)


def evaluation_time(data: CityData, indicator: Indicator, now: pd.Timestamp,
                    ) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """When the indicator is evaluated, and its sources' watermark.

    A bucketed indicator is evaluated at ``min(now, watermark)``: its last bucket
    ends where the data end, so no bucket is computed for hours the data have not
    reached (an hourly mean is not empty because the readings lag by an hour, a
    24-hour mean covers 24 hours). A state indicator is the state ingested now.
    """
    now = pd.Timestamp(now)
    mark = indicator_watermark(data, indicator)
    if indicator.bucketed and mark is not None and mark < now:
        return mark, mark
    return now, mark


# ------------------------------------------------------------------ history
class IndicatorHistory:
    """Bounded, in-memory samples of indicator values, and the latest forecasts.

    State indicators are sampled each tick (:func:`evaluate` records the current
    value); their sparkline reads the samples back. Samples are kept at least
    ``bucket / 12`` apart (the newest one moves forward meanwhile) and at most
    ``max_samples`` per indicator, oldest dropped first. One per process: each
    worker samples for itself.
    """

    def __init__(self, max_samples: int = 4096, refit_every: float | None = None,
                 background: bool = False) -> None:
        self.max_samples = max_samples
        #: City seconds a forecast is reused for (None: a sixth of the indicator's bucket).
        self.refit_every = refit_every
        #: Backtests run on a worker thread (:mod:`ops.signs.background`) instead of
        #: in the evaluation that needs them; None: run in place.
        self.backtests = BackgroundBacktests() if background else None
        self._times: dict[str, list[int]] = {}
        self._values: dict[str, list[float]] = {}
        self._forecasts: dict[str, tuple[pd.Timestamp, tuple[float, ...], Forecast]] = {}
        self._backtests: dict[str, tuple[pd.Timestamp, Backtest | None]] = {}
        self._lock = threading.Lock()

    def record(self, name: str, moment: pd.Timestamp, value: float, spacing: float = 0.0) -> None:
        """Keep ``value`` as the indicator's value at ``moment`` (city time)."""
        when = pd.Timestamp(moment).as_unit("ns").value
        with self._lock:
            times = self._times.setdefault(name, [])
            values = self._values.setdefault(name, [])
            at = bisect.bisect_left(times, when)
            if at < len(times) and times[at] == when:
                values[at] = value
                return
            newest = at == len(times)
            if newest and len(times) >= 2 and times[-1] - times[-2] < spacing * 1e9:
                times[-1], values[-1] = when, value
                return
            times.insert(at, when)
            values.insert(at, value)
            if len(times) > self.max_samples:
                del times[: len(times) - self.max_samples]
                del values[: len(values) - self.max_samples]

    def value_at(self, name: str, moment: pd.Timestamp, tolerance: float) -> float | None:
        """The latest sample at or before ``moment``, if it is within ``tolerance`` seconds."""
        when = pd.Timestamp(moment).as_unit("ns").value
        with self._lock:
            times = self._times.get(name, [])
            at = bisect.bisect_right(times, when) - 1
            if at < 0 or when - times[at] >= tolerance * 1e9:
                return None
            return self._values[name][at]

    def samples(self, name: str) -> pd.Series:
        """All samples of an indicator (UTC times → values)."""
        with self._lock:
            times = list(self._times.get(name, []))
            values = list(self._values.get(name, []))
        return pd.Series(values, index=pd.to_datetime(times, unit="ns", utc=True), dtype=float)

    def cached_forecast(self, name: str, now: pd.Timestamp, inputs: tuple[float, ...],
                        refit_every: float) -> Forecast | None:
        with self._lock:
            cached = self._forecasts.get(name)
        if cached is None:
            return None
        fitted_at, fitted_on, result = cached
        age = (now - fitted_at).total_seconds()
        if fitted_on == inputs or 0 <= age < refit_every:
            return result
        return None

    def store_forecast(self, name: str, now: pd.Timestamp, inputs: tuple[float, ...],
                       result: Forecast) -> None:
        with self._lock:
            self._forecasts[name] = (now, inputs, result)

    def cached_backtest(self, name: str, now: pd.Timestamp, retest: float,
                        ) -> tuple[bool, Backtest | None]:
        """(found, backtest): the indicator's backtest if run less than ``retest`` s before ``now``."""
        with self._lock:
            cached = self._backtests.get(name)
        if cached is None:
            return False, None
        tested_at, result = cached
        age = (now - tested_at).total_seconds()
        return (True, result) if 0 <= age < retest else (False, None)

    def store_backtest(self, name: str, now: pd.Timestamp, result: Backtest | None) -> None:
        with self._lock:
            self._backtests[name] = (now, result)

    def latest_backtest(self, name: str) -> tuple[bool, Backtest | None]:
        """(found, backtest): the indicator's latest backtest, however old."""
        with self._lock:
            cached = self._backtests.get(name)
        return (False, None) if cached is None else (True, cached[1])

    def backtest_later(self, name: str, now: pd.Timestamp, values: np.ndarray, horizon: int,
                       season: int | None) -> None:
        """Queue a backtest of ``values`` on the worker; it is stored as run at ``now``."""
        assert self.backtests is not None
        values = np.array(values, dtype=float)  # the job's own copy

        def job() -> None:
            try:
                result = backtest(values, horizon, season)
            except Exception:
                log.exception("backtest of %s failed", name)
                result = None  # stored: no retry before the next retest
            self.store_backtest(name, now, result)

        self.backtests.submit(name, job)

    def clear(self) -> None:
        with self._lock:
            self._times.clear()
            self._values.clear()
            self._forecasts.clear()
            self._backtests.clear()


# ------------------------------------------------------------ pure surface
def values_at(data: CityData, indicator: Indicator, moments: Sequence[pd.Timestamp],
              history: IndicatorHistory | None = None, now: pd.Timestamp | None = None,
              ) -> np.ndarray:
    """The indicator's value at each of ``moments`` (NaN where unknown).

    ``now`` (default: the last moment) is when the data are looked at; for a state
    indicator a moment at or after ``now`` is the state at ``now`` (the live state,
    or the live history's when ``now`` is in the past, e.g. on a time slider).
    """
    moments = [pd.Timestamp(m) for m in moments]
    if not moments:
        return np.empty(0)
    now = pd.Timestamp(now) if now is not None else max(moments)
    if indicator.bucketed:
        rows, coverage = event_rows(data, indicator.layer, indicator.role, indicator.source, now)
        return bucket_values(indicator, rows, moments, coverage)
    role = indicator.role
    source = indicator.source
    if indicator.kind == "metric":
        metric = data.metric(indicator.layer, indicator.metric)
        role, source = metric.role, metric.source
    out = np.full(len(moments), math.nan)
    if not has_live_source(data, indicator.layer, role, source):
        # Snapshot rows have no past of their own: they hold now as they were read.
        out[:] = _value_now_or_at(data, indicator, None)
        return out
    current = None
    for i, moment in enumerate(moments):
        if moment >= now:
            # The state at ``now``: the live state, or the history's when ``now`` is past.
            if current is None:
                current = _value_now_or_at(data, indicator, now)
            out[i] = current
            continue
        if history is not None:
            known = history.value_at(indicator.name, moment, indicator.bucket)
            if known is not None:
                out[i] = known
                continue
        out[i] = _value_now_or_at(data, indicator, moment)
        if history is not None and math.isfinite(out[i]):
            history.record(indicator.name, moment, float(out[i]))
    return out


def series(data: CityData, indicator: Indicator, now: pd.Timestamp,
           history: IndicatorHistory | None = None, span: float | None = None) -> pd.Series:
    """The indicator at ``now − k·bucket`` over its window (or ``span`` seconds), oldest first.

    The last value is the current one. NaN marks moments with no data to say.
    """
    ends = bucket_ends(pd.Timestamp(now), indicator.bucket, span or indicator.window)
    values = values_at(data, indicator, list(ends), history, now)
    return pd.Series(values, index=ends, name=indicator.name, dtype=float)


def current(data: CityData, indicator: Indicator, now: pd.Timestamp) -> float:
    """The indicator's value at ``now``: the state now, or the last bucket ending at ``now``."""
    return float(values_at(data, indicator, [pd.Timestamp(now)], None, now)[0])


def baseline(data: CityData, indicator: Indicator, now: pd.Timestamp,
             values: pd.Series | None = None, history: IndicatorHistory | None = None) -> float:
    """What the current value is compared with (NaN when unknown).

    ``rolling_mean``: the mean of the window's earlier points; ``same_hour_yesterday``
    / ``same_hour_last_week``: the value one day / one week before ``now``.
    """
    now = pd.Timestamp(now)
    if indicator.baseline == "none":
        return math.nan
    if indicator.baseline == "rolling_mean":
        values = series(data, indicator, now, history) if values is None else values
        earlier = values.iloc[:-1].dropna()
        return float(earlier.mean()) if len(earlier) else math.nan
    back = DAY if indicator.baseline == "same_hour_yesterday" else WEEK
    moment = now - pd.Timedelta(seconds=back)
    if values is not None and moment in values.index:
        return float(values.loc[moment])
    return float(values_at(data, indicator, [moment], history, now)[0])


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class IndicatorReading:
    """One indicator at one moment, ready for a panel or ``/api/signs`` (see :meth:`as_dict`)."""

    name: str
    title_zh: str
    title_en: str
    layer: str
    kind: str
    unit_zh: str
    unit_en: str
    decimals: int
    time: pd.Timestamp
    value: float
    series_times: tuple[pd.Timestamp, ...]
    series_values: tuple[float, ...]
    baseline_kind: str
    baseline: float
    change: float
    change_pct: float
    status: Status
    thresholds: Thresholds | None
    forecast: Forecast | None
    #: Any of its sources is simulated (the UI must say so).
    simulated: bool = False
    #: Any of its sources is stale (no fresh data).
    stale: bool = False
    error: str | None = None
    #: The newest event time its sources have delivered (None: no timed row yet).
    watermark: pd.Timestamp | None = None

    def series(self) -> pd.Series:
        return pd.Series(self.series_values, index=pd.DatetimeIndex(self.series_times),
                         name=self.name, dtype=float)

    def title(self, language: str) -> str:
        return pick(language, self.title_zh, self.title_en)

    def unit(self, language: str) -> str:
        return pick(language, self.unit_zh, self.unit_en)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title_zh": self.title_zh, "title_en": self.title_en,
            "layer": self.layer, "kind": self.kind, "unit_zh": self.unit_zh,
            "unit_en": self.unit_en, "decimals": self.decimals, "time": self.time.isoformat(),
            "value": _number(self.value),
            "series": {"times": [t.isoformat() for t in self.series_times],
                       "values": [_number(v) for v in self.series_values]},
            "baseline": {"kind": self.baseline_kind, "value": _number(self.baseline),
                         "change": _number(self.change), "change_pct": _number(self.change_pct)},
            "status": self.status,
            "thresholds": None if self.thresholds is None else self.thresholds.as_dict(),
            "forecast": None if self.forecast is None else self.forecast.as_dict(),
            "simulated": self.simulated, "stale": self.stale, "error": self.error,
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
        }


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _forecast(indicator: Indicator, values: pd.Series, now: pd.Timestamp,
              history: IndicatorHistory | None) -> Forecast | None:
    spec = indicator.forecast
    if spec is None:
        return None
    steps = max(1, int(math.ceil(spec.horizon / indicator.bucket - 1e-9)))
    season = spec.season_buckets(indicator.bucket)
    if indicator.bucketed:
        values = _from_first_data(values)
    found, tested = (False, None) if history is None else history.cached_backtest(
        indicator.name, now, spec.retest_after(indicator.bucket))
    pending = False
    if not found and history is not None and history.backtests is not None:
        # Off the refresh path: the last backtest (if any) serves until the new one lands.
        history.backtest_later(indicator.name, now, values.to_numpy(), steps, season)
        found, tested = history.latest_backtest(indicator.name)
        pending = not found
    elif not found:
        tested = backtest(values.to_numpy(), steps, season)
        if history is not None:
            history.store_backtest(indicator.name, now, tested)
    inputs = tuple(float(v) for v in values.to_numpy())
    refit = history.refit_every if history is not None and history.refit_every is not None \
        else indicator.bucket / 6
    if history is not None:
        cached = history.cached_forecast(indicator.name, now, inputs, refit)
        if cached is not None and cached.backtest is tested and cached.pending == pending:
            return cached
    result = skilful_forecast(values, steps, season=season, tested=tested, pending=pending,
                              step=pd.Timedelta(seconds=indicator.bucket))
    if history is not None:
        history.store_forecast(indicator.name, now, inputs, result)
    return result


def _from_first_data(values: pd.Series) -> pd.Series:
    """The series from its first bucket with a non-zero value on.

    A snapshot's rows say nothing of the time before the first of them, yet its buckets
    there count zero: weeks of such zeros in a four-week history would be backtested as
    if they were data (every model exact there, so nothing could ever beat persistence).
    """
    data = values.to_numpy(dtype=float)
    nonzero = np.flatnonzero(np.isfinite(data) & (data != 0))
    if len(nonzero) == 0 or nonzero[0] == 0:
        return values
    return values.iloc[int(nonzero[0]):]


def evaluate(data: CityData, indicator: Indicator, now: pd.Timestamp,
             history: IndicatorHistory | None = None, with_forecast: bool = True,
             ) -> IndicatorReading:
    """Everything about one indicator at ``now``; records the current value in ``history``.

    A bucketed indicator is evaluated at its sources' watermark when that is
    earlier than ``now`` (:func:`evaluation_time`); the reading's ``time`` says
    when, and ``watermark`` how far the data reach.
    """
    now, mark = evaluation_time(data, indicator, now)
    span = indicator.window
    if with_forecast and indicator.forecast is not None:
        span = max(span, indicator.forecast.history_span(indicator.bucket))
    values = series(data, indicator, now, history, span)
    value = float(values.iloc[-1])
    if history is not None and math.isfinite(value) and not indicator.bucketed:
        history.record(indicator.name, now, value, spacing=indicator.bucket / 12)
    shown = values.loc[values.index > now - pd.Timedelta(seconds=indicator.window)]
    base = baseline(data, indicator, now, shown, history)
    change = value - base if math.isfinite(base) else math.nan
    change_pct = 100.0 * change / abs(base) if math.isfinite(change) and base != 0 else math.nan
    status: Status = "unknown" if not math.isfinite(value) else "ok"
    if indicator.thresholds is not None:
        status = indicator.thresholds.status(value)
    predicted = _forecast(indicator, values, now, history) if with_forecast else None
    sources = role_sources(data, indicator.layer, indicator.role, indicator.source)
    return IndicatorReading(
        name=indicator.name, title_zh=indicator.title_zh, title_en=indicator.title_en,
        layer=indicator.layer, kind=indicator.kind, unit_zh=indicator.unit_zh,
        unit_en=indicator.unit_en, decimals=indicator.decimals, time=now, value=value,
        series_times=tuple(shown.index), series_values=tuple(float(v) for v in shown.to_numpy()),
        baseline_kind=indicator.baseline, baseline=base, change=change, change_pct=change_pct,
        status=status, thresholds=indicator.thresholds, forecast=predicted,
        simulated=any(s.simulated for s in sources),
        stale=any(data.health[s.name].is_stale() for s in sources if s.name in data.health),
        watermark=mark,
    )


def failed_reading(indicator: Indicator, now: pd.Timestamp, error: str) -> IndicatorReading:
    """A reading that says the indicator could not be computed, and why."""
    nan = math.nan
    return IndicatorReading(
        name=indicator.name, title_zh=indicator.title_zh, title_en=indicator.title_en,
        layer=indicator.layer, kind=indicator.kind, unit_zh=indicator.unit_zh,
        unit_en=indicator.unit_en, decimals=indicator.decimals, time=pd.Timestamp(now),
        value=nan, series_times=(), series_values=(), baseline_kind=indicator.baseline,
        baseline=nan, change=nan, change_pct=nan, status="unknown",
        thresholds=indicator.thresholds, forecast=None, error=error)


def evaluate_all(data: CityData, indicators: Sequence[Indicator], now: pd.Timestamp | None = None,
                 history: IndicatorHistory | None = None, with_forecast: bool = True,
                 ) -> list[IndicatorReading]:
    """Every indicator at ``now`` (default :func:`reference_time`); one failing never stops the rest."""
    now = reference_time(data) if now is None else pd.Timestamp(now)
    readings = []
    for indicator in indicators:
        try:
            readings.append(evaluate(data, indicator, now, history, with_forecast))
        except Exception as exc:  # a bad indicator shows as failed, the others carry on
            log.exception("indicator %s failed", indicator.name)
            readings.append(failed_reading(indicator, now, f"{type(exc).__name__}: {exc}"))
    return readings


__all__ = [
    "IndicatorHistory", "IndicatorReading", "baseline", "bucket_ends", "bucket_values",
    "current", "evaluate", "evaluate_all", "evaluation_time", "event_rows", "failed_reading",
    "filter_where", "indicator_watermark",
    "reference_time", "series", "state_rows", "state_value", "values_at",
]
