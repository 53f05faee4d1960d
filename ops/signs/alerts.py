"""Early warning (预测预警): rules from config evaluated into de-duplicated alerts.

Each :class:`~ops.signs.settings.Rule` is checked against the city at a moment and
yields *findings* — one per key (an indicator, an H3 cell, a device id) whose
condition holds. An :class:`AlertBook` turns findings into alerts:

* a new (rule, key) raises an **alert** (id, severity, cells, first/last seen,
  value, message in zh and en);
* the same (rule, key) found again **updates** that alert (``last_seen``,
  ``count``, value, and severity if it changed) instead of raising another;
* an active alert whose condition no longer holds **clears** itself
  (``state = "cleared"``, ``cleared_at``); if the condition returns later, that is
  a new alert;
* an operator may **acknowledge** an alert (who, when); acknowledging does not
  silence the condition.

A rule that cannot be evaluated now (its indicator has no value, not enough
history yet) is reported in :attr:`AlertChanges.errors` and its alerts are left as
they were — not knowing is not the same as the condition having ended.

Alerts live in memory, per process (nothing is persisted): a restart starts a new
book, and with several web workers each keeps its own.

Rule kinds (see :mod:`ops.signs.settings` for the keys):

``threshold``   an indicator's value beyond ``above``/``below`` (or its thresholds)
``forecast``    an indicator's forecast band crossing a limit ``within`` a horizon
``cell_count``  rows per H3 cell (at ``res``) whose time is in the last ``window``
``reading``     a row's ``column`` (e.g. a sensor reading) beyond a limit, per id
``silent``      an id whose latest ``time`` is older than ``after``
``anomaly``     a cell's count in the latest bucket (or an indicator's latest value)
                against its previous ``baseline_buckets``: z = (x − mean) / max(sd, min_std)
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from geo.hexes import parents, to_hex
from ops.signs.indicators import (
    IndicatorHistory,
    IndicatorReading,
    evaluate,
    event_rows,
    failed_reading,
    filter_where,
    reference_time,
    state_rows,
    time_ns,
)
from ops.signs.settings import Indicator, Rule, Severity

if TYPE_CHECKING:
    from store.city import CityData

log = logging.getLogger(__name__)

AlertState = Literal["active", "cleared"]
_SEVERITY_RANK = {"info": 0, "warn": 1, "alarm": 2}


class RuleUnavailable(Exception):
    """A rule cannot be evaluated now (no value, not enough history); its alerts stay."""


@dataclass(frozen=True)
class Finding:
    """One key for which a rule's condition holds at the moment of evaluation."""

    key: str
    severity: Severity
    value: float
    limit: float | None = None
    cells: tuple[int, ...] = ()
    #: Extra placeholders for the message (already formatted).
    fields: Mapping[str, str] = field(default_factory=dict)
    #: How far beyond the limit: the strongest findings are kept when a rule has too many.
    strength: float = 0.0


@dataclass
class Alert:
    """One alert: a rule's condition holding for one key, from first to last seen."""

    id: str
    rule: str
    kind: str
    key: str
    severity: Severity
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    value: float
    limit: float | None
    cells: tuple[int, ...]
    first_seen: pd.Timestamp
    last_seen: pd.Timestamp
    indicator: str | None = None
    count: int = 1
    state: AlertState = "active"
    cleared_at: pd.Timestamp | None = None
    acked_by: str | None = None
    acked_at: pd.Timestamp | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acked_by is not None

    def message(self, language: str) -> str:
        return self.message_zh if language.startswith("zh") else self.message_en

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "kind": self.kind, "key": self.key,
            "severity": self.severity, "state": self.state,
            "title_zh": self.title_zh, "title_en": self.title_en,
            "message_zh": self.message_zh, "message_en": self.message_en,
            "value": None if not math.isfinite(self.value) else round(float(self.value), 6),
            "limit": None if self.limit is None or not math.isfinite(self.limit)
            else round(float(self.limit), 6),
            "cells": [to_hex(c) for c in self.cells], "indicator": self.indicator,
            "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
            "count": self.count,
            "cleared_at": None if self.cleared_at is None else self.cleared_at.isoformat(),
            "acknowledged": self.acknowledged, "acked_by": self.acked_by,
            "acked_at": None if self.acked_at is None else self.acked_at.isoformat(),
        }


@dataclass
class AlertChanges:
    """What one :meth:`AlertBook.evaluate` changed."""

    time: pd.Timestamp
    raised: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)
    #: Updated alerts whose severity changed (also in ``updated``).
    escalated: list[Alert] = field(default_factory=list)
    cleared: list[Alert] = field(default_factory=list)
    #: Findings not raised because a rule reached ``max_alerts``, by rule.
    suppressed: dict[str, int] = field(default_factory=dict)
    #: Rows a rule could not judge (e.g. no time), by rule.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Rules that could not be evaluated, and why (their alerts were left as they were).
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when an alert appeared, cleared or changed severity."""
        return bool(self.raised or self.cleared or self.escalated)

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "raised": [a.id for a in self.raised], "updated": [a.id for a in self.updated],
            "escalated": [a.id for a in self.escalated], "cleared": [a.id for a in self.cleared],
            "suppressed": dict(self.suppressed), "skipped": dict(self.skipped),
            "errors": dict(self.errors),
        }


# ---------------------------------------------------------------- messages
_DEFAULT_MESSAGES: dict[tuple[str, str], tuple[str, str]] = {
    ("threshold", "above"): ("{title}：{value}{unit}，高于{limit}{unit}",
                             "{title}: {value} {unit}, above {limit} {unit}"),
    ("threshold", "below"): ("{title}：{value}{unit}，低于{limit}{unit}",
                             "{title}: {value} {unit}, below {limit} {unit}"),
    ("forecast", "above"): ("{title}：预计{within}内超过{limit}{unit}（约{at}，预测{value}{unit}）",
                            "{title}: expected to exceed {limit} {unit} within {within} "
                            "(around {at}, forecast {value} {unit})"),
    ("forecast", "below"): ("{title}：预计{within}内低于{limit}{unit}（约{at}，预测{value}{unit}）",
                            "{title}: expected to fall below {limit} {unit} within {within} "
                            "(around {at}, forecast {value} {unit})"),
    ("cell_count", "above"): ("{title}：网格{cell}近{window}内{value}件，超过{limit}件",
                              "{title}: {value} in cell {cell} in the last {window}, "
                              "above {limit}"),
    ("reading", "above"): ("{title}：{name}读数{value}，高于{limit}",
                           "{title}: {name} reads {value}, above {limit}"),
    ("reading", "below"): ("{title}：{name}读数{value}，低于{limit}",
                           "{title}: {name} reads {value}, below {limit}"),
    ("silent", "above"): ("{title}：{name}已{minutes}分钟无数据（限{after}）",
                          "{title}: {name} silent for {minutes} min (limit {after})"),
    ("anomaly", "above"): ("{title}：{where}近{bucket}为{value}，较前{k}个时段均值{mean}异常"
                           "偏高（z={z}）",
                           "{title}: {value} in the last {bucket} {where}, unusually high "
                           "against the previous {k} periods (mean {mean}, z = {z})"),
}


def _fmt(value: float | None, decimals: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):d}"
    return f"{value:.{max(decimals, 1)}f}"


def _duration(seconds: float, language: str) -> str:
    zh = language.startswith("zh")
    if seconds % 86400 == 0:
        n, unit = seconds / 86400, ("天" if zh else " d")
    elif seconds % 3600 == 0:
        n, unit = seconds / 3600, ("小时" if zh else " h")
    elif seconds % 60 == 0:
        n, unit = seconds / 60, ("分钟" if zh else " min")
    else:
        n, unit = seconds, ("秒" if zh else " s")
    return f"{_fmt(n)}{unit}"


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _message(rule: Rule, finding: Finding, language: str, unit: str) -> str:
    custom = rule.message_zh if language.startswith("zh") else rule.message_en
    direction = str(finding.fields.get("direction", rule.direction))
    template = custom or _DEFAULT_MESSAGES.get(
        (rule.kind, direction), _DEFAULT_MESSAGES.get((rule.kind, "above"), ("", "")),
    )[0 if language.startswith("zh") else 1]
    values = _Defaults({
        "title": rule.title(language), "rule": rule.name, "key": finding.key,
        "value": finding.fields.get("value_text", _fmt(finding.value)),
        "limit": _fmt(finding.limit), "unit": unit, "severity": finding.severity,
        "cell": to_hex(finding.cells[0]) if finding.cells else "",
    })
    for name, text in finding.fields.items():
        if name.endswith(("_zh", "_en")):
            if name.endswith("_zh" if language.startswith("zh") else "_en"):
                values[name[:-3]] = text
        else:
            values.setdefault(name, text)
    try:
        text = template.format_map(values)
    except (ValueError, IndexError, AttributeError):  # the parser refuses these; belt and braces
        text = f"{values['title']}: {values['value']} ({finding.key})"
    return " ".join(text.split()) if not language.startswith("zh") else text


# ------------------------------------------------------------------ checks
@dataclass
class _Context:
    data: CityData
    now: pd.Timestamp
    readings: Mapping[str, IndicatorReading]
    indicators: Mapping[str, Indicator]
    timezone: str
    skipped: dict[str, int]

    def reading(self, name: str) -> IndicatorReading:
        reading = self.readings.get(name)
        if reading is None or reading.error is not None:
            why = "not evaluated" if reading is None else reading.error
            raise RuleUnavailable(f"indicator {name!r} has no reading ({why})")
        return reading

    def local_time(self, moment: pd.Timestamp) -> str:
        return pd.Timestamp(moment).tz_convert(self.timezone).strftime("%H:%M")


def _beyond(value: float, rule: Rule) -> bool:
    if rule.above is not None:
        return value > rule.above
    return rule.below is not None and value < rule.below


def _check_threshold(rule: Rule, ctx: _Context) -> list[Finding]:
    assert rule.indicator is not None
    reading = ctx.reading(rule.indicator)
    value = reading.value
    if not math.isfinite(value):
        raise RuleUnavailable(f"indicator {rule.indicator!r} has no value now")
    fields = {"indicator_zh": reading.title_zh, "indicator_en": reading.title_en,
              "value_text": _fmt(value, reading.decimals)}
    if rule.limit is not None:
        if not _beyond(value, rule):
            return []
        assert rule.severity is not None
        return [Finding(rule.indicator, rule.severity, value, rule.limit, fields=fields,
                        strength=abs(value - rule.limit))]
    thresholds = ctx.indicators[rule.indicator].thresholds
    assert thresholds is not None  # the parser guarantees it
    status = thresholds.status(value)
    if status not in ("warn", "alarm"):
        return []
    level = thresholds.alarm if status == "alarm" else thresholds.warn
    fields["direction"] = thresholds.direction  # the message says "below" for a floor
    return [Finding(rule.indicator, status, value, level, fields=fields)]  # type: ignore[arg-type]


def _check_forecast(rule: Rule, ctx: _Context) -> list[Finding]:
    assert rule.indicator is not None
    reading = ctx.reading(rule.indicator)
    predicted = reading.forecast
    if predicted is None or predicted.method == "none":
        raise RuleUnavailable(f"indicator {rule.indicator!r} has no forecast now")
    until = ctx.now + pd.Timedelta(seconds=rule.within)
    if rule.limit is not None:
        assert rule.severity is not None
        levels: list[tuple[Severity, float, bool]] = [(rule.severity, rule.limit, False)]
        direction = rule.direction
    else:
        thresholds = ctx.indicators[rule.indicator].thresholds
        assert thresholds is not None
        direction = thresholds.direction
        levels = []
        if thresholds.alarm is not None:
            levels.append(("alarm", thresholds.alarm, True))
        if thresholds.warn is not None:
            levels.append(("warn", thresholds.warn, True))
    for severity, limit, inclusive in levels:
        crossing = predicted.first_crossing(limit, direction, rule.band, until, inclusive)
        if crossing is None:
            continue
        when, value = crossing
        fields = {"indicator_zh": reading.title_zh, "indicator_en": reading.title_en,
                  "at": ctx.local_time(when),
                  "within_zh": _duration(rule.within, "zh"), "within_en": _duration(rule.within, "en"),
                  "value_text": _fmt(value, reading.decimals)}
        return [Finding(rule.indicator, severity, value, limit, fields=fields,
                        strength=abs(value - limit))]
    return []


def _rule_rows(rule: Rule, rows: pd.DataFrame) -> pd.DataFrame:
    if rule.source is not None and "source" in rows:
        rows = rows.loc[(rows["source"] == rule.source).to_numpy()]
    return filter_where(rows, rule.where)


def _timed(rule: Rule, rows: pd.DataFrame, ctx: _Context, column: str) -> pd.DataFrame:
    missing = rows[column].isna().to_numpy() if column in rows else np.ones(len(rows), bool)
    if missing.any():
        ctx.skipped[rule.name] = ctx.skipped.get(rule.name, 0) + int(missing.sum())
    return rows.loc[~missing]


def _check_cell_count(rule: Rule, ctx: _Context) -> list[Finding]:
    assert rule.layer is not None and rule.role is not None and rule.above is not None
    rows, _ = event_rows(ctx.data, rule.layer, rule.role, rule.source, ctx.now)
    rows = _timed(rule, _rule_rows(rule, rows), ctx, rule.time_column)
    if rows.empty:
        return []
    times = time_ns(rows[rule.time_column])
    now_ns = ctx.now.as_unit("ns").value
    recent = (times > now_ns - int(rule.window * 1e9)) & (times <= now_ns)
    cells = parents(rows["cell"].to_numpy()[recent], rule.res)
    if len(cells) == 0:
        return []
    found, counts = np.unique(cells, return_counts=True)
    assert rule.severity is not None
    window = {"window_zh": _duration(rule.window, "zh"), "window_en": _duration(rule.window, "en")}
    return [Finding(to_hex(int(cell)), rule.severity, float(n), rule.above, (int(cell),),
                    fields=window, strength=float(n) - rule.above)
            for cell, n in zip(found, counts, strict=True) if n > rule.above]


def _names(rows: pd.DataFrame) -> pd.Series:
    names = rows["name"].astype("string") if "name" in rows else pd.Series(pd.NA, index=rows.index)
    return names.fillna(rows["id"].astype("string"))


def _check_reading(rule: Rule, ctx: _Context) -> list[Finding]:
    assert rule.layer is not None and rule.role is not None
    rows = state_rows(ctx.data, rule.layer, rule.role, rule.source, ctx.now)
    if rows is None:
        raise RuleUnavailable(f"no {rule.layer}/{rule.role} rows known at {ctx.now}")
    rows = _rule_rows(rule, rows)
    if rows.empty or rule.column not in rows:
        return []
    values = pd.to_numeric(rows[rule.column], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        hit = values > rule.above if rule.above is not None else values < rule.below  # type: ignore[operator]
    hit &= np.isfinite(values)
    rows, values = rows.loc[hit], values[hit]
    names = _names(rows)
    assert rule.severity is not None and rule.limit is not None
    return [Finding(str(row_id), rule.severity, float(value), rule.limit, (int(cell),),
                    fields={"name": str(name), "column": rule.column},
                    strength=abs(float(value) - rule.limit))
            for row_id, cell, value, name in zip(rows["id"], rows["cell"], values, names,
                                                 strict=True)]


def _check_silent(rule: Rule, ctx: _Context) -> list[Finding]:
    assert rule.layer is not None and rule.role is not None
    rows, _ = event_rows(ctx.data, rule.layer, rule.role, rule.source, ctx.now)
    rows = _timed(rule, _rule_rows(rule, rows), ctx, "time")
    if rows.empty:
        return []
    latest = rows.sort_values("time", kind="stable").drop_duplicates("id", keep="last")
    silent_s = (ctx.now - latest["time"]).dt.total_seconds().to_numpy()
    hit = silent_s > rule.after
    latest, silent_s = latest.loc[hit], silent_s[hit]
    assert rule.severity is not None
    after = {"after_zh": _duration(rule.after, "zh"), "after_en": _duration(rule.after, "en")}
    return [Finding(str(row_id), rule.severity, seconds / 60.0, rule.after / 60.0, (int(cell),),
                    fields={"name": str(name), "minutes": _fmt(seconds / 60.0, 0), **after},
                    strength=seconds)
            for row_id, cell, seconds, name in zip(latest["id"], latest["cell"], silent_s,
                                                   _names(latest), strict=True)]


def zscore(current: float, earlier: np.ndarray, min_std: float) -> tuple[float, float, float]:
    """(z, mean, sd) of ``current`` against ``earlier`` (sample sd, floored at ``min_std``)."""
    mean = float(np.mean(earlier))
    sd = float(np.std(earlier, ddof=1)) if len(earlier) > 1 else 0.0
    return (current - mean) / max(sd, min_std), mean, sd


def cell_bucket_counts(times: np.ndarray, cells: np.ndarray, now_ns: int, bucket_ns: int,
                       buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts per cell (rows) and bucket (columns: 0 = ``(now − bucket, now]``, 1 = the one before …)."""
    age = now_ns - times
    keep = (age >= 0) & (age < bucket_ns * buckets)
    index = age[keep] // bucket_ns
    found, cell_index = np.unique(cells[keep], return_inverse=True)
    counts = np.zeros((len(found), buckets), dtype=float)
    np.add.at(counts, (cell_index, index), 1.0)
    return found, counts


def _check_anomaly(rule: Rule, ctx: _Context) -> list[Finding]:
    assert rule.severity is not None
    bucket = {"bucket_zh": _duration(rule.bucket, "zh"), "bucket_en": _duration(rule.bucket, "en")}
    if rule.indicator is not None:
        reading = ctx.reading(rule.indicator)
        values = np.asarray(reading.series_values, dtype=float)
        if len(values) == 0 or not math.isfinite(values[-1]):
            raise RuleUnavailable(f"indicator {rule.indicator!r} has no value now")
        earlier = values[:-1][np.isfinite(values[:-1])][-rule.baseline_buckets:]
        if len(earlier) < 2:
            raise RuleUnavailable(f"indicator {rule.indicator!r} has fewer than 2 earlier values")
        z, mean, sd = zscore(values[-1], earlier, rule.min_std)
        if values[-1] < rule.min_count or z < rule.z:
            return []
        fields = {"indicator_zh": reading.title_zh, "indicator_en": reading.title_en,
                  "where_zh": "", "where_en": "", "mean": _fmt(mean), "std": _fmt(sd), "z": _fmt(z, 1),
                  "k": str(len(earlier)), **bucket}
        return [Finding(rule.indicator, rule.severity, float(values[-1]),
                        mean + rule.z * max(sd, rule.min_std), fields=fields, strength=z)]
    assert rule.layer is not None and rule.role is not None
    rows, coverage = event_rows(ctx.data, rule.layer, rule.role, rule.source, ctx.now)
    rows = _timed(rule, _rule_rows(rule, rows), ctx, rule.time_column)
    k = rule.baseline_buckets
    if coverage is not None:
        # Only buckets wholly inside the known history count as a baseline.
        known = int((ctx.now - coverage).total_seconds() // rule.bucket) - 1
        k = min(k, known)
    if k < 2:
        raise RuleUnavailable(f"needs at least 2 earlier {_duration(rule.bucket, 'en')} "
                              "buckets of history")
    if rows.empty:
        return []
    cells = parents(rows["cell"].to_numpy(), rule.res)
    found, counts = cell_bucket_counts(time_ns(rows[rule.time_column]), cells,
                                       ctx.now.as_unit("ns").value, int(rule.bucket * 1e9), k + 1)
    findings = []
    for cell, row in zip(found, counts, strict=True):
        current = row[0]
        if current < rule.min_count:
            continue
        z, mean, sd = zscore(current, row[1:], rule.min_std)
        if z < rule.z:
            continue
        hexed = to_hex(int(cell))
        fields = {"where_zh": f"网格{hexed}", "where_en": f"in cell {hexed}", "mean": _fmt(mean),
                  "std": _fmt(sd), "z": _fmt(z, 1), "k": str(k), **bucket}
        findings.append(Finding(hexed, rule.severity, float(current),
                                mean + rule.z * max(sd, rule.min_std), (int(cell),),
                                fields=fields, strength=z))
    return findings


_CHECKS = {
    "threshold": _check_threshold, "forecast": _check_forecast, "cell_count": _check_cell_count,
    "reading": _check_reading, "silent": _check_silent, "anomaly": _check_anomaly,
}


def check_rule(rule: Rule, data: CityData, now: pd.Timestamp,
               readings: Mapping[str, IndicatorReading] | None = None,
               indicators: Sequence[Indicator] = ()) -> list[Finding]:
    """The findings of one rule at ``now`` (pure); raises :class:`RuleUnavailable`."""
    ctx = _Context(data, pd.Timestamp(now), readings or {}, {i.name: i for i in indicators},
                   data.config.city.timezone, {})
    return _CHECKS[rule.kind](rule, ctx)


# -------------------------------------------------------------------- book
class AlertBook:
    """Active and recently cleared alerts of a city, kept in memory (see module docs).

    Example::

        book = AlertBook(settings.rules, settings.indicators)
        changes = book.evaluate(data, now)        # each tick
        book.active()                             # newest first
        book.ack(alert_id, "duty-officer", now)
    """

    def __init__(self, rules: Sequence[Rule], indicators: Sequence[Indicator] = (),
                 history: IndicatorHistory | None = None, max_cleared: int = 500) -> None:
        self.rules = tuple(rules)
        self.indicators = {i.name: i for i in indicators}
        missing = sorted({r.indicator for r in self.rules if r.indicator}
                         - set(self.indicators))
        if missing:
            raise ValueError(f"rules refer to undeclared indicator(s): {', '.join(missing)}")
        self.history = history
        self._active: dict[tuple[str, str], Alert] = {}
        self._cleared: deque[Alert] = deque(maxlen=max_cleared)
        self._by_id: dict[str, Alert] = {}
        self._prefix = uuid.uuid4().hex[:6]
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    # ------------------------------------------------------------- evaluate
    def _readings(self, data: CityData, now: pd.Timestamp,
                  given: Mapping[str, IndicatorReading] | None) -> dict[str, IndicatorReading]:
        readings = dict(given or {})
        wanted = {r.indicator for r in self.rules if r.enabled and r.indicator}
        forecasts = {r.indicator for r in self.rules if r.enabled and r.kind == "forecast"}
        for name in sorted(wanted - set(readings)):
            indicator = self.indicators[name]
            try:
                readings[name] = evaluate(data, indicator, now, self.history,
                                          with_forecast=name in forecasts)
            except Exception as exc:
                log.exception("indicator %s failed", name)
                readings[name] = failed_reading(indicator, now, f"{type(exc).__name__}: {exc}")
        return readings

    def evaluate(self, data: CityData, now: pd.Timestamp | None = None,
                 readings: Mapping[str, IndicatorReading] | None = None) -> AlertChanges:
        """Check every enabled rule at ``now`` and apply the findings; returns what changed.

        ``readings`` (indicator name → reading, e.g. from the same tick's
        :func:`~ops.signs.indicators.evaluate_all`) saves recomputing indicators.
        """
        now = reference_time(data) if now is None else pd.Timestamp(now)
        ctx = _Context(data, now, self._readings(data, now, readings), self.indicators,
                       data.config.city.timezone, {})
        changes = AlertChanges(time=now)
        for rule in self.rules:
            if not rule.enabled:
                continue
            try:
                findings = _CHECKS[rule.kind](rule, ctx)
            except RuleUnavailable as exc:
                changes.errors[rule.name] = str(exc)
                continue
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("rule %s failed", rule.name)
                changes.errors[rule.name] = f"{type(exc).__name__}: {exc}"
                continue
            source = self.indicators.get(rule.indicator or "")
            units = ("", "") if source is None else (source.unit_zh, source.unit_en)
            with self._lock:
                self._apply(rule, findings, now, changes, units)
        changes.skipped = dict(ctx.skipped)
        return changes

    def _apply(self, rule: Rule, findings: list[Finding], now: pd.Timestamp,
               changes: AlertChanges, units: tuple[str, str]) -> None:
        active_keys = {key for (name, key) in self._active if name == rule.name}
        known = [f for f in findings if f.key in active_keys]
        fresh = sorted((f for f in findings if f.key not in active_keys),
                       key=lambda f: (-_SEVERITY_RANK[f.severity], -f.strength, f.key))
        room = max(0, rule.max_alerts - len(known))
        if len(fresh) > room:
            changes.suppressed[rule.name] = len(fresh) - room
            fresh = fresh[:room]
        seen = set()
        for finding in known + fresh:
            seen.add(finding.key)
            message_zh = _message(rule, finding, "zh", units[0])
            message_en = _message(rule, finding, "en", units[1])
            alert = self._active.get((rule.name, finding.key))
            if alert is None:
                alert = Alert(
                    id=f"{self._prefix}-{next(self._seq)}", rule=rule.name, kind=rule.kind,
                    key=finding.key, severity=finding.severity, title_zh=rule.title_zh,
                    title_en=rule.title_en, message_zh=message_zh, message_en=message_en,
                    value=finding.value, limit=finding.limit, cells=finding.cells,
                    first_seen=now, last_seen=now, indicator=rule.indicator)
                self._active[(rule.name, finding.key)] = alert
                self._by_id[alert.id] = alert
                changes.raised.append(alert)
                continue
            if alert.severity != finding.severity:
                changes.escalated.append(alert)
            alert.severity = finding.severity
            alert.value, alert.limit, alert.cells = finding.value, finding.limit, finding.cells
            alert.message_zh, alert.message_en = message_zh, message_en
            alert.last_seen = now
            alert.count += 1
            changes.updated.append(alert)
        for key in sorted(active_keys - seen):
            alert = self._active.pop((rule.name, key))
            alert.state = "cleared"
            alert.cleared_at = now
            if len(self._cleared) == self._cleared.maxlen:
                self._by_id.pop(self._cleared[0].id, None)
            self._cleared.append(alert)
            changes.cleared.append(alert)

    # ---------------------------------------------------------------- access
    def active(self) -> list[Alert]:
        """Active alerts, most severe then newest first."""
        with self._lock:
            alerts = list(self._active.values())
        return sorted(alerts, key=lambda a: (-_SEVERITY_RANK[a.severity], -a.first_seen.value,
                                             a.id))

    def cleared(self) -> list[Alert]:
        """Recently cleared alerts (bounded), newest first."""
        with self._lock:
            return list(reversed(self._cleared))

    def get(self, alert_id: str) -> Alert:
        """An active or recently cleared alert; KeyError when unknown."""
        with self._lock:
            return self._by_id[alert_id]

    def ack(self, alert_id: str, who: str, now: pd.Timestamp) -> Alert:
        """Acknowledge an alert (the first acknowledgement is kept); KeyError when unknown."""
        with self._lock:
            alert = self._by_id[alert_id]
            if alert.acked_by is None:
                alert.acked_by = who
                alert.acked_at = pd.Timestamp(now)
            return alert

    def as_dicts(self, state: Literal["active", "cleared", "all"] = "active") -> list[dict[str, Any]]:
        with self._lock:
            alerts = (self.active() if state in ("active", "all") else []) + \
                (self.cleared() if state in ("cleared", "all") else [])
            return [a.as_dict() for a in alerts]


__all__ = [
    "Alert", "AlertBook", "AlertChanges", "Finding", "RuleUnavailable", "cell_bucket_counts",
    "check_rule", "zscore",
]
