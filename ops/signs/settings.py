"""The ``[[indicators]]`` and ``[[rules]]`` tables of a city config: vital signs and warnings.

Checked the way :mod:`config.city` checks the rest of the file: an unknown key, kind,
layer, role, column or indicator is a :class:`~config.city.ConfigError` naming the
valid choices, so a typo fails at start-up, not as a blank sparkline later.

An indicator (城市体征) is one number about the city over time::

    [[indicators]]
    name = "requests_per_hour"
    title_zh = "每小时诉求"
    title_en = "Requests per hour"
    layer = "government"
    role = "requests"
    kind = "rate"                 # rows whose `time` falls in each bucket
    bucket = "1h"
    window = "24h"                # the sparkline
    baseline = "same_hour_yesterday"
    unit_zh = "件/小时"
    unit_en = "requests/h"
    thresholds = { warn = 60, alarm = 90, direction = "above" }
    forecast = { horizon = "3h" }

Kinds: ``count`` (rows, optionally ``where``-filtered), ``rate`` (rows per bucket, or
the sum of ``column`` per bucket), ``share`` (percentage of rows matching ``where``),
``mean`` / ``median`` / ``sum`` of a ``column``, ``metric`` (a layer metric's city total).
State kinds are taken over the live state (``over = "state"``, their default);
``mean``/``median``/``sum`` may instead aggregate the rows whose ``time_column`` falls
in each bucket (``over = "buckets"``), e.g. the median hours to close of the
requests closed in each hour.

A rule (预测预警) turns indicators or rows into alerts::

    [[rules]]
    name = "requests-hotspot"
    kind = "cell_count"           # rows per H3 cell within a window
    layer = "government"
    role = "requests"
    res = 8
    window = "1h"
    above = 8
    severity = "warn"

Rule kinds: ``threshold`` and ``forecast`` (on an indicator), ``cell_count``,
``reading`` (a row's ``column`` beyond a limit), ``silent`` (an id not heard from for
``after``) and ``anomaly`` (a z-score of a cell's — or an indicator's — latest bucket
against its previous ``baseline_buckets``). Limits: ``above = N`` fires when the value
is > N, ``below = N`` when it is < N; an indicator's ``thresholds`` are reached at
equality (≥ warn / ≥ alarm, or ≤ for ``direction = "below"``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from config.city import ConfigError, _check_keys, _choice, _number, parse_duration

IndicatorKind = Literal["count", "rate", "share", "mean", "median", "sum", "metric"]
Over = Literal["state", "buckets"]
BaselineKind = Literal["rolling_mean", "same_hour_yesterday", "same_hour_last_week", "none"]
Direction = Literal["above", "below"]
Status = Literal["ok", "warn", "alarm", "unknown"]
Severity = Literal["info", "warn", "alarm"]
RuleKind = Literal["threshold", "forecast", "cell_count", "reading", "silent", "anomaly"]
Band = Literal["upper", "lower", "mean"]

INDICATOR_KINDS: tuple[IndicatorKind, ...] = (
    "count", "rate", "share", "mean", "median", "sum", "metric")
#: Kinds whose value is a property of the state (rows present now).
STATE_KINDS: tuple[IndicatorKind, ...] = ("count", "share", "mean", "median", "sum", "metric")
#: Kinds that need a ``column``.
COLUMN_KINDS: tuple[IndicatorKind, ...] = ("mean", "median", "sum")
OVERS: tuple[Over, ...] = ("state", "buckets")
BASELINES: tuple[BaselineKind, ...] = (
    "rolling_mean", "same_hour_yesterday", "same_hour_last_week", "none")
DIRECTIONS: tuple[Direction, ...] = ("above", "below")
SEVERITIES: tuple[Severity, ...] = ("info", "warn", "alarm")
RULE_KINDS: tuple[RuleKind, ...] = (
    "threshold", "forecast", "cell_count", "reading", "silent", "anomaly")
BANDS: tuple[Band, ...] = ("upper", "lower", "mean")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

_INDICATOR_KEYS = frozenset({
    "name", "title_zh", "title_en", "layer", "role", "kind", "over", "column", "where",
    "source", "metric", "time_column", "bucket", "window", "baseline", "unit_zh", "unit_en",
    "decimals", "thresholds", "forecast",
})
_THRESHOLD_KEYS = frozenset({"warn", "alarm", "direction"})
_FORECAST_KEYS = frozenset({"horizon", "history", "season"})

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
    #: Length of the series the model is fitted on (None: the indicator's window).
    history: float | None = None
    #: Seasonal period (e.g. one day); used once the history holds two full seasons.
    season: float | None = None


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
        return self.title_zh if language.startswith("zh") else self.title_en

    def unit(self, language: str) -> str:
        return self.unit_zh if language.startswith("zh") else self.unit_en


@dataclass(frozen=True)
class Rule:
    """One early-warning rule, as declared in ``[[rules]]`` (see module docs).

    Only the fields of its ``kind`` are meaningful; the parser refuses the others.
    ``severity`` None means "the level the indicator's thresholds reached".
    """

    name: str
    kind: RuleKind
    title_zh: str
    title_en: str
    severity: Severity | None = "warn"
    message_zh: str | None = None
    message_en: str | None = None
    enabled: bool = True
    indicator: str | None = None
    above: float | None = None
    below: float | None = None
    layer: str | None = None
    role: str | None = None
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    source: str | None = None
    column: str = "reading"
    time_column: str = "time"
    res: int = 8
    window: float = 3600.0
    after: float = 1800.0
    within: float = 2 * 3600.0
    band: Band = "upper"
    bucket: float = 3600.0
    baseline_buckets: int = 24
    z: float = 3.0
    min_count: float = 5.0
    min_std: float = 1.0
    max_alerts: int = 100

    @property
    def limit(self) -> float | None:
        return self.above if self.above is not None else self.below

    @property
    def direction(self) -> Direction:
        return "below" if self.below is not None else "above"

    def title(self, language: str) -> str:
        return self.title_zh if language.startswith("zh") else self.title_en


@dataclass(frozen=True)
class OpsSettings:
    indicators: tuple[Indicator, ...] = ()
    rules: tuple[Rule, ...] = ()


# ------------------------------------------------------------------ helpers
def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _name(where: str, value: Any) -> str:
    text = _text(where, value)
    if not _NAME.match(text):
        raise ConfigError(f"{where}: {text!r} must be letters, digits, '_', '-', '.' or ':' "
                          "(at most 64, starting with a letter or digit)")
    return text


def _entries(where: str, entries: Any) -> Sequence[Mapping[str, Any]]:
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError(f"{where}: expected an array of tables")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} #{index + 1}: expected a table")
    return entries


def _positive_duration(where: str, value: Any) -> float:
    seconds = parse_duration(where, value)
    if seconds <= 0:
        raise ConfigError(f"{where}: must be positive, got {value!r}")
    return seconds


def _optional_number(where: str, table: Mapping[str, Any], key: str) -> float | None:
    return None if key not in table else _number(f"{where}.{key}", table[key])


def _where(where: str, value: Any, columns: Sequence[str]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of column = [values]")
    out = []
    for column, values in value.items():
        _choice(f"{where}", column, list(columns), "column")
        out.append((str(column), tuple(values if isinstance(values, list) else [values])))
    return tuple(out)


def role_columns(layer: str, role: str) -> tuple[str, ...]:
    """The columns a layer role's normalised rows have (derived ones included)."""
    from layers import LAYERS
    from store.city import empty_role_frame  # the store's own definition of a role frame

    columns = list(empty_role_frame(layer, role).columns)
    if LAYERS[layer].roles[role].geometry == "point" and "name" not in columns:
        columns.append("name")  # normalise() adds the label as `name`
    return tuple(c for c in columns if c != "geometry")


def _layer_role(where: str, table: Mapping[str, Any], default_role: str | None = None,
                ) -> tuple[str, str]:
    from layers import LAYERS

    if "layer" not in table:
        raise ConfigError(f"{where}: missing required key 'layer'")
    layer = _choice(f"{where}.layer", table["layer"], list(LAYERS), "layer")
    roles = LAYERS[layer].roles
    role = str(table.get("role", default_role or LAYERS[layer].default_role))
    if role not in roles:
        raise ConfigError(f"{where}.role: unknown role {role!r} for layer {layer!r}; "
                          f"valid roles are: {', '.join(roles)}")
    return layer, role


def _source(where: str, table: Mapping[str, Any], layer: str, role: str,
            sources: Sequence[Any]) -> str | None:
    if "source" not in table:
        return None
    name = _text(f"{where}.source", table["source"])
    if sources:
        valid = [s.name for s in sources if s.layer == layer and s.role == role]
        _choice(f"{where}.source", name, valid, f"{layer}/{role} source")
    return name


def _column(where: str, value: Any, columns: Sequence[str]) -> str:
    return _choice(where, _text(where, value), list(columns), "column")


def _is_time_column(layer: str, role: str, column: str) -> bool:
    from layers import LAYERS

    if column == "time":
        return True
    spec = LAYERS[layer].roles[role].field(column)
    return spec is not None and spec.kind == "time"


# --------------------------------------------------------------- indicators
def _thresholds(where: str, value: Any) -> Thresholds:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected {{ warn = …, alarm = …, direction = … }}")
    _check_keys(where, value, _THRESHOLD_KEYS)
    direction = _choice(f"{where}.direction", value.get("direction", "above"), DIRECTIONS,
                        "direction")
    warn = _optional_number(where, value, "warn")
    alarm = _optional_number(where, value, "alarm")
    if warn is None and alarm is None:
        raise ConfigError(f"{where}: give warn, alarm or both")
    if warn is not None and alarm is not None and (
            (direction == "above" and alarm < warn) or (direction == "below" and alarm > warn)):
        raise ConfigError(f"{where}: alarm ({alarm:g}) must be beyond warn ({warn:g}) "
                          f"in the direction {direction!r}")
    return Thresholds(warn=warn, alarm=alarm, direction=direction)  # type: ignore[arg-type]


def _forecast_spec(where: str, value: Any) -> ForecastSpec | None:
    if value is False:
        return None
    if value is True:
        return ForecastSpec()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected false or {{ horizon = …, history = …, season = … }}")
    _check_keys(where, value, _FORECAST_KEYS)
    return ForecastSpec(
        horizon=_positive_duration(f"{where}.horizon", value.get("horizon", "3h")),
        history=None if "history" not in value
        else _positive_duration(f"{where}.history", value["history"]),
        season=None if "season" not in value
        else _positive_duration(f"{where}.season", value["season"]),
    )


def parse_indicator(table: Mapping[str, Any], where: str = "[[indicators]]",
                    sources: Sequence[Any] = ()) -> Indicator:
    """Validate one ``[[indicators]]`` table (see module docs)."""
    from layers import LAYERS

    _check_keys(where, table, _INDICATOR_KEYS)
    name = _name(f"{where}.name", table.get("name"))
    where = f"[[indicators]] {name!r}"
    kind = _choice(f"{where}.kind", table.get("kind"), INDICATOR_KINDS, "kind")
    metric_name: str | None = None
    if kind == "metric":
        for key in ("column", "where", "over", "time_column", "role"):
            if key in table:
                raise ConfigError(f"{where}: {key!r} does not apply to kind 'metric' (the "
                                  "metric's own role and filters apply)")
        layer, _ = _layer_role(where, table)
        metric_name = _text(f"{where}.metric", table.get("metric"))
        try:
            metric = LAYERS[layer].metric(metric_name, sources)
        except KeyError as exc:
            raise ConfigError(f"{where}.metric: {exc.args[0]}") from None
        if metric.agg not in ("count", "sum"):
            raise ConfigError(f"{where}.metric: {metric_name!r} aggregates by {metric.agg!r}, "
                              "which has no city total; metrics with agg count or sum can be "
                              f"used, or kind = '{metric.agg}' with column = {metric.column!r}")
        role = metric.role
    else:
        if "metric" in table:
            raise ConfigError(f"{where}.metric: only for kind = 'metric'")
        layer, role = _layer_role(where, table)
    columns = role_columns(layer, role)
    column = None
    if kind in COLUMN_KINDS:
        column = _column(f"{where}.column", table.get("column"), columns)
    elif "column" in table:
        if kind != "rate":
            raise ConfigError(f"{where}.column: only for kinds mean, median, sum and rate "
                              "(rate sums it per bucket)")
        column = _column(f"{where}.column", table["column"], columns)
    default_over = "buckets" if kind == "rate" else "state"
    over = _choice(f"{where}.over", table.get("over", default_over), OVERS, "over")
    if kind == "rate" and over != "buckets":
        raise ConfigError(f"{where}.over: a rate is always taken over buckets")
    if kind in ("count", "share", "metric") and over != "state":
        raise ConfigError(f"{where}.over: kind {kind!r} is a state; for rows per bucket use "
                          "kind = 'rate'")
    where_filter = _where(f"{where}.where", table.get("where", {}), columns)
    if kind == "share" and not where_filter:
        raise ConfigError(f"{where}: kind 'share' needs where = {{ column = [values] }}, the rows "
                          "it counts as a share of all rows")
    time_column = "time"
    if over == "buckets" or "time_column" in table:
        if over != "buckets":
            raise ConfigError(f"{where}.time_column: only for indicators over buckets")
        time_column = _column(f"{where}.time_column", table.get("time_column", "time"), columns)
        if not _is_time_column(layer, role, time_column):
            raise ConfigError(f"{where}.time_column: {time_column!r} is not a time column")
    bucket = _positive_duration(f"{where}.bucket", table.get("bucket", "1h"))
    window = _positive_duration(f"{where}.window", table.get("window", "24h"))
    if window < bucket:
        raise ConfigError(f"{where}.window: must be at least one bucket ({bucket:g} s)")
    thresholds = None if "thresholds" not in table else _thresholds(
        f"{where}.thresholds", table["thresholds"])
    forecast = _forecast_spec(f"{where}.forecast", table.get("forecast", True))
    decimals = int(_number(f"{where}.decimals", table.get("decimals", 0), 0, 6))
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
        source=None if kind == "metric" else _source(where, table, layer, role, sources),
        metric=metric_name,
        time_column=time_column,
        bucket=bucket,
        window=window,
        baseline=_choice(f"{where}.baseline", table.get("baseline", "rolling_mean"), BASELINES,
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
                       for i, entry in enumerate(_entries(where, entries)))
    names = [i.name for i in indicators]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: duplicate indicator name(s): {', '.join(duplicates)}")
    return indicators


# --------------------------------------------------------------------- rules
def _message(where: str, kind: str, value: Any) -> str | None:
    if value is None:
        return None
    text = _text(where, value)
    valid = MESSAGE_FIELDS[kind]
    try:
        parts = [(f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(text)
                 if f is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid message template: {exc}") from None
    if any(spec or conversion for _, spec, conversion in parts):
        raise ConfigError(f"{where}: placeholders take no format spec or conversion (values "
                          "arrive formatted), e.g. {value}, not {value:.1f}")
    fields = {f for f, _, _ in parts}
    unknown = sorted(f for f in fields if f.split(".")[0].split("[")[0] not in valid)
    if unknown:
        raise ConfigError(f"{where}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                          f"valid placeholders are: {', '.join(sorted(valid))}")
    return text


def _indicator_ref(where: str, table: Mapping[str, Any],
                   indicators: Mapping[str, Indicator]) -> Indicator:
    if "indicator" not in table:
        raise ConfigError(f"{where}: missing required key 'indicator'")
    name = table["indicator"]
    if name not in indicators:
        raise ConfigError(f"{where}.indicator: unknown indicator {name!r}; valid indicators "
                          f"are: {', '.join(indicators) or '(none declared)'}")
    return indicators[name]


def _limit(where: str, table: Mapping[str, Any], allowed: tuple[str, ...] = ("above", "below"),
           required: bool = True) -> tuple[float | None, float | None]:
    given = [k for k in allowed if k in table]
    if len(given) > 1:
        raise ConfigError(f"{where}: give either above or below, not both")
    if not given:
        if required:
            raise ConfigError(f"{where}: needs {' or '.join(allowed)} = <limit>")
        return None, None
    value = _number(f"{where}.{given[0]}", table[given[0]])
    return (value, None) if given[0] == "above" else (None, value)


def parse_rule(table: Mapping[str, Any], indicators: Sequence[Indicator] | Mapping[str, Indicator],
               where: str = "[[rules]]", sources: Sequence[Any] = ()) -> Rule:
    """Validate one ``[[rules]]`` table against the declared indicators."""
    by_name = indicators if isinstance(indicators, Mapping) else {i.name: i for i in indicators}
    name = _name(f"{where}.name", table.get("name"))
    where = f"[[rules]] {name!r}"
    kind = _choice(f"{where}.kind", table.get("kind"), RULE_KINDS, "kind")
    _check_keys(f"{where} (kind {kind!r})", table, _RULE_KEYS[kind])
    severity: Severity | None = _choice(  # type: ignore[assignment]
        f"{where}.severity", table.get("severity", "warn"), SEVERITIES, "severity")
    fields: dict[str, Any] = {}
    indicator: Indicator | None = None
    if kind in ("threshold", "forecast"):
        indicator = _indicator_ref(where, table, by_name)
        above, below = _limit(where, table, required=False)
        if above is None and below is None:
            if indicator.thresholds is None:
                raise ConfigError(f"{where}: give above or below, or declare thresholds on "
                                  f"indicator {indicator.name!r}")
            if "severity" in table:
                raise ConfigError(f"{where}.severity: without above/below the level reached on "
                                  f"{indicator.name!r}'s thresholds is the severity")
            severity = None
        fields.update(above=above, below=below)
        if kind == "forecast":
            if indicator.forecast is None:
                raise ConfigError(f"{where}: indicator {indicator.name!r} has forecast = false")
            within = _positive_duration(f"{where}.within", table.get("within", "2h"))
            if within > indicator.forecast.horizon:
                raise ConfigError(f"{where}.within: {within:g} s is beyond indicator "
                                  f"{indicator.name!r}'s forecast horizon "
                                  f"({indicator.forecast.horizon:g} s)")
            falling = below is not None or (above is None and indicator.thresholds is not None
                                            and indicator.thresholds.direction == "below")
            fields.update(within=within, band=_choice(
                f"{where}.band", table.get("band", "lower" if falling else "upper"), BANDS, "band"))
    elif kind == "anomaly" and "indicator" in table:
        indicator = _indicator_ref(where, table, by_name)
        for key in _ROWS | {"time_column", "res", "bucket", "max_alerts"}:
            if key in table:
                raise ConfigError(f"{where}.{key}: an anomaly on an indicator uses the "
                                  "indicator's own rows and buckets")
    else:
        layer, role = _layer_role(where, table)
        columns = role_columns(layer, role)
        fields.update(layer=layer, role=role, where=_where(f"{where}.where",
                                                            table.get("where", {}), columns),
                      source=_source(where, table, layer, role, sources))
        if kind in ("cell_count", "anomaly"):
            time_column = _column(f"{where}.time_column", table.get("time_column", "time"), columns)
            if not _is_time_column(layer, role, time_column):
                raise ConfigError(f"{where}.time_column: {time_column!r} is not a time column")
            fields.update(time_column=time_column,
                          res=int(_number(f"{where}.res", table.get("res", 8), 0, 15)))
        if kind == "cell_count":
            fields.update(window=_positive_duration(f"{where}.window", table.get("window", "1h")),
                          above=_limit(where, table, ("above",))[0])
        elif kind == "reading":
            fields["column"] = _column(f"{where}.column", table.get("column", "reading"), columns)
            above, below = _limit(where, table)
            fields.update(above=above, below=below)
        elif kind == "silent":
            fields["after"] = _positive_duration(f"{where}.after", table.get("after", "30m"))
        if "max_alerts" in table:
            fields["max_alerts"] = int(_number(f"{where}.max_alerts", table["max_alerts"], 1))
    if kind == "anomaly":
        fields.update(
            bucket=indicator.bucket if indicator is not None
            else _positive_duration(f"{where}.bucket", table.get("bucket", "1h")),
            baseline_buckets=int(_number(f"{where}.baseline_buckets",
                                         table.get("baseline_buckets", 24), 2, 10_000)),
            z=_number(f"{where}.z", table.get("z", 3.0), 0),
            min_count=_number(f"{where}.min_count", table.get("min_count", 5), 0),
            min_std=_number(f"{where}.min_std", table.get("min_std", 1.0), 1e-9),
        )
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: expected true or false")
    title_en = str(table.get("title_en", indicator.title_en if indicator else name))
    return Rule(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        title_zh=str(table.get("title_zh", indicator.title_zh if indicator else title_en)),
        title_en=title_en,
        severity=severity,
        message_zh=_message(f"{where}.message_zh", kind, table.get("message_zh")),
        message_en=_message(f"{where}.message_en", kind, table.get("message_en")),
        enabled=enabled,
        indicator=None if indicator is None else indicator.name,
        **fields,
    )


def parse_rules(entries: Sequence[Mapping[str, Any]],
                indicators: Sequence[Indicator] | Mapping[str, Indicator],
                where: str = "[[rules]]", sources: Sequence[Any] = ()) -> tuple[Rule, ...]:
    """Validate ``[[rules]]``; names must be unique, indicators must be declared."""
    rules = tuple(parse_rule(entry, indicators, f"{where} #{i + 1}", sources)
                  for i, entry in enumerate(_entries(where, entries)))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: duplicate rule name(s): {', '.join(duplicates)}")
    return rules


def parse_ops_settings(raw: Mapping[str, Any], sources: Sequence[Any] = ()) -> OpsSettings:
    """The ``indicators`` and ``rules`` of a parsed TOML document (other keys are ignored)."""
    indicators = parse_indicators(raw.get("indicators", []), sources=sources)
    return OpsSettings(indicators=indicators,
                       rules=parse_rules(raw.get("rules", []), indicators, sources=sources))


__all__ = [
    "BASELINES", "INDICATOR_KINDS", "RULE_KINDS", "SEVERITIES", "ForecastSpec", "Indicator",
    "OpsSettings", "Rule", "Thresholds", "parse_indicator", "parse_indicators",
    "parse_ops_settings", "parse_rule", "parse_rules", "role_columns",
]
