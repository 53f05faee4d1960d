"""Vital signs as declared in ``[[indicators]]``: :class:`Indicator` and its parser.

See :mod:`ops.signs.settings` for the table's keys; the values are computed by
:mod:`ops.signs.indicators`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from config.i18n import pick
from config.kit import ConfigError
from ops.signs import kit
from ops.signs.kit import Direction

IndicatorKind = Literal["count", "rate", "share", "mean", "median", "sum", "metric"]
Over = Literal["state", "buckets"]
BaselineKind = Literal["rolling_mean", "same_hour_yesterday", "same_hour_last_week", "none"]
Status = Literal["ok", "warn", "alarm", "unknown"]

INDICATOR_KINDS: tuple[IndicatorKind, ...] = (
    "count", "rate", "share", "mean", "median", "sum", "metric")
#: Kinds whose value is a property of the state (rows present now).
STATE_KINDS: tuple[IndicatorKind, ...] = ("count", "share", "mean", "median", "sum", "metric")
#: Kinds that need a ``column``.
COLUMN_KINDS: tuple[IndicatorKind, ...] = ("mean", "median", "sum")
OVERS: tuple[Over, ...] = ("state", "buckets")
BASELINES: tuple[BaselineKind, ...] = (
    "rolling_mean", "same_hour_yesterday", "same_hour_last_week", "none")

_INDICATOR_KEYS = frozenset({
    "name", "title_zh", "title_en", "layer", "role", "kind", "over", "column", "where",
    "source", "metric", "time_column", "bucket", "window", "baseline", "unit_zh", "unit_en",
    "decimals", "thresholds", "forecast",
})
_THRESHOLD_KEYS = frozenset({"warn", "alarm", "direction"})
_FORECAST_KEYS = frozenset({"horizon", "history", "season", "retest"})
#: Most buckets of history a forecast is backtested and fitted on (bounds the cost).
MAX_HISTORY_BUCKETS = 2016
#: History backtested by default: four weeks, or :data:`MAX_HISTORY_BUCKETS` if fewer
#: (where the data are shorter, what there is). More origins further apart make the
#: significance test of the model choice sharper than a week's did.
DEFAULT_HISTORY = 28 * 86400.0
#: Backtests are rerun once this many new buckets have arrived (by default).
DEFAULT_RETEST_BUCKETS = 6

_RULE_COMMON = frozenset({"name", "kind", "severity", "title_zh", "title_en", "message_zh",
                          "message_en", "enabled"})
_ROWS = frozenset({"layer", "role", "where", "source"})
_RULE_KEYS: dict[str, frozenset[str]] = {
    "threshold": _RULE_COMMON | {"indicator", "above", "below"},
    "forecast": _RULE_COMMON | {"indicator", "above", "below", "within", "band"},
    "cell_count": _RULE_COMMON | _ROWS | {"time_column", "res", "window", "above", "max_alerts"},
    "reading": _RULE_COMMON | _ROWS | {"column", "above", "below", "max_alerts"},
    "silent": _RULE_COMMON | _ROWS | {"after", "max_alerts"},
    "anomaly": _RULE_COMMON | _ROWS | {"indicator", "time_column", "res", "bucket",
                                       "baseline_buckets", "z", "min_count", "min_std",
                                       "max_alerts"},
}
#: Placeholders a rule's ``message_zh`` / ``message_en`` may use, by kind.
_COMMON_FIELDS = frozenset({"title", "rule", "key", "value", "limit", "unit", "severity"})
MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "threshold": _COMMON_FIELDS | {"indicator"},
    "forecast": _COMMON_FIELDS | {"indicator", "within", "at"},
    "cell_count": _COMMON_FIELDS | {"cell", "window"},
    "reading": _COMMON_FIELDS | {"cell", "name", "column"},
    "silent": _COMMON_FIELDS | {"cell", "name", "after", "minutes"},
    "anomaly": _COMMON_FIELDS | {"cell", "indicator", "where", "bucket", "mean", "std", "z", "k"},
}


@dataclass(frozen=True)
class Thresholds:
    """Warn and alarm levels of an indicator; either may be absent."""

    warn: float | None = None
    alarm: float | None = None
    direction: Direction = "above"

    def status(self, value: float | None) -> Status:
        """``alarm``, ``warn`` or ``ok`` for ``value``; ``unknown`` when there is none.

        >>> Thresholds(warn=10, alarm=20).status(15.0)
        'warn'
        """
        if value is None or value != value:  # NaN
            return "unknown"
        if self.alarm is not None and self.reached(value, self.alarm):
            return "alarm"
        if self.warn is not None and self.reached(value, self.warn):
            return "warn"
        return "ok"

    def reached(self, value: float, level: float) -> bool:
        return value >= level if self.direction == "above" else value <= level

    def as_dict(self) -> dict[str, Any]:
        return {"warn": self.warn, "alarm": self.alarm, "direction": self.direction}


@dataclass(frozen=True)
class ForecastSpec:
    """How far ahead an indicator is forecast, from how much history, with what season."""

    horizon: float = 3 * 3600.0
    #: How much of the indicator's own history the models are backtested and fitted on
    #: (None: four weeks, at most :data:`MAX_HISTORY_BUCKETS` buckets).
    history: float | None = None
    #: Seasonal period (default one day; None: no season): the seasonal-naive baseline's
    #: lag, and ETS's season once the history holds two full seasons.
    season: float | None = 86400.0
    #: City seconds a backtest is reused for (None: :data:`DEFAULT_RETEST_BUCKETS` buckets).
    retest: float | None = None

    def history_span(self, bucket: float) -> float:
        """Seconds of history the forecast is backtested and fitted on."""
        return self.history if self.history is not None else min(
            DEFAULT_HISTORY, MAX_HISTORY_BUCKETS * bucket)

    def season_buckets(self, bucket: float) -> int | None:
        """The season in buckets (None: no season, or one shorter than two buckets)."""
        if self.season is None:
            return None
        buckets = int(round(self.season / bucket))
        return buckets if buckets >= 2 else None

    def retest_after(self, bucket: float) -> float:
        """City seconds a backtest is reused for."""
        return self.retest if self.retest is not None else DEFAULT_RETEST_BUCKETS * bucket


@dataclass(frozen=True)
class Indicator:
    """One vital sign, as declared in ``[[indicators]]`` (see module docs)."""

    name: str
    title_zh: str
    title_en: str
    layer: str
    role: str
    kind: IndicatorKind
    over: Over = "state"
    column: str | None = None
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    source: str | None = None
    metric: str | None = None
    time_column: str = "time"
    bucket: float = 3600.0
    window: float = 24 * 3600.0
    baseline: BaselineKind = "rolling_mean"
    unit_zh: str = ""
    unit_en: str = ""
    decimals: int = 0
    thresholds: Thresholds | None = None
    #: None: no forecast.
    forecast: ForecastSpec | None = ForecastSpec()

    @property
    def bucketed(self) -> bool:
        """True when values come from the rows' timestamps (not from the state)."""
        return self.over == "buckets"

    def title(self, language: str) -> str:
        return pick(language, self.title_zh, self.title_en)

    def unit(self, language: str) -> str:
        return pick(language, self.unit_zh, self.unit_en)


# --------------------------------------------------------------- indicators
def _thresholds(where: str, value: Any) -> Thresholds:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected {{ warn = …, alarm = …, direction = … }}")
    kit.check_keys(where, value, _THRESHOLD_KEYS)
    direction = kit.choice(f"{where}.direction", value.get("direction", "above"), kit.DIRECTIONS,
                        "direction")
    warn = kit.optional_number(where, value, "warn")
    alarm = kit.optional_number(where, value, "alarm")
    if warn is None and alarm is None:
        raise ConfigError(f"{where}: give warn, alarm or both")
    if warn is not None and alarm is not None and (
            (direction == "above" and alarm < warn) or (direction == "below" and alarm > warn)):
        raise ConfigError(f"{where}: alarm ({alarm:g}) must be beyond warn ({warn:g}) "
                          f"in the direction {direction!r}")
    return Thresholds(warn=warn, alarm=alarm, direction=direction)  # type: ignore[arg-type]


def _forecast_spec(where: str, value: Any, bucket: float) -> ForecastSpec | None:
    if value is False:
        return None
    if value is True:
        return ForecastSpec()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected false or {{ horizon = …, history = …, season = …, "
                          "retest = … }}")
    kit.check_keys(where, value, _FORECAST_KEYS)
    history = None if "history" not in value \
        else kit.positive_duration(f"{where}.history", value["history"])
    if history is not None and history / bucket > MAX_HISTORY_BUCKETS:
        raise ConfigError(f"{where}.history: {history:g} s is {history / bucket:g} buckets; at most "
                          f"{MAX_HISTORY_BUCKETS} are backtested: shorten it or widen the bucket")
    season = value.get("season", "1d")
    return ForecastSpec(
        horizon=kit.positive_duration(f"{where}.horizon", value.get("horizon", "3h")),
        history=history,
        season=None if season is False else kit.positive_duration(f"{where}.season", season),
        retest=None if "retest" not in value
        else kit.positive_duration(f"{where}.retest", value["retest"]),
    )


def parse_indicator(table: Mapping[str, Any], where: str = "[[indicators]]",
                    sources: Sequence[Any] = ()) -> Indicator:
    """Validate one ``[[indicators]]`` table (see module docs)."""
    from layers import LAYERS
    from layers.aggregations import AGGREGATIONS

    kit.check_keys(where, table, _INDICATOR_KEYS)
    name = kit.entry_name(f"{where}.name", table.get("name"))
    where = f"[[indicators]] {name!r}"
    kind = kit.choice(f"{where}.kind", table.get("kind"), INDICATOR_KINDS, "kind")
    metric_name: str | None = None
    if kind == "metric":
        for key in ("column", "where", "over", "time_column", "role"):
            if key in table:
                raise ConfigError(f"{where}: {key!r} does not apply to kind 'metric' (the "
                                  "metric's own role and filters apply)")
        layer, _ = kit.layer_role(where, table)
        metric_name = kit.text(f"{where}.metric", table.get("metric"))
        try:
            metric = LAYERS[layer].metric(metric_name, sources)
        except KeyError as exc:
            raise ConfigError(f"{where}.metric: {exc.args[0]}") from None
        if not metric.aggregation.city_total:
            totals = " or ".join(n for n, a in AGGREGATIONS.items() if a.city_total)
            raise ConfigError(f"{where}.metric: {metric_name!r} aggregates by {metric.agg!r}, "
                              f"which has no city total; metrics with agg {totals} can be "
                              f"used, or kind = '{metric.agg}' with column = {metric.column!r}")
        role = metric.role
    else:
        if "metric" in table:
            raise ConfigError(f"{where}.metric: only for kind = 'metric'")
        layer, role = kit.layer_role(where, table)
    columns = kit.role_columns(layer, role)
    column = None
    if kind in COLUMN_KINDS:
        column = kit.role_column(f"{where}.column", table.get("column"), columns)
    elif "column" in table:
        if kind != "rate":
            raise ConfigError(f"{where}.column: only for kinds mean, median, sum and rate "
                              "(rate sums it per bucket)")
        column = kit.role_column(f"{where}.column", table["column"], columns)
    default_over = "buckets" if kind == "rate" else "state"
    over = kit.choice(f"{where}.over", table.get("over", default_over), OVERS, "over")
    if kind == "rate" and over != "buckets":
        raise ConfigError(f"{where}.over: a rate is always taken over buckets")
    if kind in ("count", "share", "metric") and over != "state":
        raise ConfigError(f"{where}.over: kind {kind!r} is a state; for rows per bucket use "
                          "kind = 'rate'")
    where_filter = kit.where_filter(f"{where}.where", table.get("where", {}), columns)
    if kind == "share" and not where_filter:
        raise ConfigError(f"{where}: kind 'share' needs where = {{ column = [values] }}, the rows "
                          "it counts as a share of all rows")
    time_column = "time"
    if over == "buckets" or "time_column" in table:
        if over != "buckets":
            raise ConfigError(f"{where}.time_column: only for indicators over buckets")
        time_column = kit.role_column(f"{where}.time_column", table.get("time_column", "time"), columns)
        if not kit.is_time_column(layer, role, time_column):
            raise ConfigError(f"{where}.time_column: {time_column!r} is not a time column")
    bucket = kit.positive_duration(f"{where}.bucket", table.get("bucket", "1h"))
    window = kit.positive_duration(f"{where}.window", table.get("window", "24h"))
    if window < bucket:
        raise ConfigError(f"{where}.window: must be at least one bucket ({bucket:g} s)")
    thresholds = None if "thresholds" not in table else _thresholds(
        f"{where}.thresholds", table["thresholds"])
    forecast = _forecast_spec(f"{where}.forecast", table.get("forecast", True), bucket)
    decimals = int(kit.number(f"{where}.decimals", table.get("decimals", 0), 0, 6))
    return Indicator(
        name=name,
        title_zh=str(table.get("title_zh", table.get("title_en", name))),
        title_en=str(table.get("title_en", name)),
        layer=layer,
        role=role,
        kind=kind,  # type: ignore[arg-type]
        over=over,  # type: ignore[arg-type]
        column=column,
        where=where_filter,
        source=None if kind == "metric" else kit.source_name(where, table, layer, role, sources),
        metric=metric_name,
        time_column=time_column,
        bucket=bucket,
        window=window,
        baseline=kit.choice(f"{where}.baseline", table.get("baseline", "rolling_mean"), BASELINES,
                         "baseline"),  # type: ignore[arg-type]
        unit_zh=str(table.get("unit_zh", table.get("unit_en", ""))),
        unit_en=str(table.get("unit_en", "")),
        decimals=decimals,
        thresholds=thresholds,
        forecast=forecast,
    )


def parse_indicators(entries: Sequence[Mapping[str, Any]], where: str = "[[indicators]]",
                     sources: Sequence[Any] = ()) -> tuple[Indicator, ...]:
    """Validate ``[[indicators]]``; names must be unique.

    ``sources`` (the city's :class:`~config.city.Source` list) lets per-source metrics
    and ``source = …`` be checked; without it those are taken on trust.
    """
    indicators = tuple(parse_indicator(entry, f"{where} #{i + 1}", sources)
                       for i, entry in enumerate(kit.table_entries(where, entries)))
    names = [i.name for i in indicators]
    kit.unique_names(where, names, "indicator")
    return indicators


__all__ = [
    "BASELINES", "INDICATOR_KINDS", "ForecastSpec", "Indicator", "Status", "Thresholds",
    "parse_indicator", "parse_indicators",
]
