"""What every rule kind shares: the :class:`Rule` base, its findings and contexts.

A rule kind is one subclass of :class:`Rule` that knows, in one place:

* ``kind``: its name in ``[[rules]]`` (``kind = "…"``);
* ``keys``: the keys of its table besides the common ones (:data:`COMMON_KEYS`);
* :meth:`Rule.parse_fields`: how those keys become its dataclass fields (with the
  same :class:`~config.city.ConfigError` words as every other table);
* :meth:`Rule.check`: its *findings* at a moment, one per key (an indicator, an H3
  cell, a device id) whose condition holds — the :class:`~ops.signs.alerts.AlertBook`
  raises, updates and clears alerts from them;
* ``messages`` and ``message_fields``: its default alert text in zh and en, and the
  placeholders a custom ``message_zh`` / ``message_en`` may use.

Registered in :data:`ops.signs.rules.RULE_KINDS` (see :func:`~ops.signs.rules.register_rule_kind`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from config.i18n import is_chinese, pick
from config.kit import ConfigError
from geo.hexes import to_hex
from ops.signs import kit
from ops.signs.indicator_spec import Indicator
from ops.signs.kit import Direction, Severity
from ops.signs.rows import filter_where

if TYPE_CHECKING:
    from ops.signs.indicators import IndicatorReading
    from store.city import CityData

#: Keys every rule table may have.
COMMON_KEYS = frozenset({"name", "kind", "severity", "title_zh", "title_en", "message_zh",
                         "message_en", "enabled"})
#: Placeholders every rule's message may use.
COMMON_FIELDS = frozenset({"title", "rule", "key", "value", "limit", "unit", "severity"})
#: Keys of the rules that read a layer role's rows.
ROW_KEYS = frozenset({"layer", "role", "where", "source"})


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


@dataclass(frozen=True)
class ParseContext:
    """What a rule's table is checked against: its place, the indicators, the sources."""

    #: ``[[rules]] 'name'``, the prefix of every error about this table.
    where: str
    indicators: Mapping[str, Indicator]
    #: The city's sources (empty: ``source = …`` is taken on trust).
    sources: Sequence[Any] = ()

    def indicator(self, table: Mapping[str, Any]) -> Indicator:
        """The declared indicator the table's ``indicator`` key names."""
        if "indicator" not in table:
            raise ConfigError(f"{self.where}: missing required key 'indicator'")
        name = table["indicator"]
        if name not in self.indicators:
            raise ConfigError(f"{self.where}.indicator: unknown indicator {name!r}; valid "
                              f"indicators are: {', '.join(self.indicators) or '(none declared)'}")
        return self.indicators[name]


@dataclass
class CheckContext:
    """The city at the moment rules are checked, and the indicator readings of that moment."""

    data: CityData
    now: pd.Timestamp
    readings: Mapping[str, IndicatorReading]
    indicators: Mapping[str, Indicator]
    timezone: str
    #: Rows a rule could not judge (e.g. no time), by rule; filled by the checks.
    skipped: dict[str, int] = field(default_factory=dict)

    def reading(self, name: str) -> IndicatorReading:
        """The reading of indicator ``name``; :class:`RuleUnavailable` when it has none."""
        reading = self.readings.get(name)
        if reading is None or reading.error is not None:
            why = "not evaluated" if reading is None else reading.error
            raise RuleUnavailable(f"indicator {name!r} has no reading ({why})")
        return reading

    def local_time(self, moment: pd.Timestamp) -> str:
        """``HH:MM`` of ``moment`` in the city's time zone."""
        return str(pd.Timestamp(moment).tz_convert(self.timezone).strftime("%H:%M"))


def fmt(value: float | None, decimals: int = 1) -> str:
    """A number for a message: whole numbers without decimals, ``–`` for none."""
    if value is None or not math.isfinite(value):
        return "–"
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):d}"
    return f"{value:.{max(decimals, 1)}f}"


def duration_text(seconds: float, language: str) -> str:
    """``2 h`` / ``2小时``: a duration in its largest whole unit."""
    zh = is_chinese(language)
    if seconds % 86400 == 0:
        n, unit = seconds / 86400, ("天" if zh else " d")
    elif seconds % 3600 == 0:
        n, unit = seconds / 3600, ("小时" if zh else " h")
    elif seconds % 60 == 0:
        n, unit = seconds / 60, ("分钟" if zh else " min")
    else:
        n, unit = seconds, ("秒" if zh else " s")
    return f"{fmt(n)}{unit}"


def durations(name: str, seconds: float) -> dict[str, str]:
    """The ``{name}`` placeholder in both languages (``name_zh``, ``name_en``)."""
    return {f"{name}_zh": duration_text(seconds, "zh"), f"{name}_en": duration_text(seconds, "en")}


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True, kw_only=True)
class Rule(ABC):
    """One early-warning rule as declared in ``[[rules]]``; subclasses are its kinds.

    ``severity`` None means "the level the indicator's thresholds reached".
    """

    #: Its name in ``[[rules]]``.
    kind: ClassVar[str]
    #: Its table's keys besides :data:`COMMON_KEYS`.
    keys: ClassVar[frozenset[str]] = frozenset()
    #: Placeholders its messages may use besides :data:`COMMON_FIELDS`.
    message_fields: ClassVar[frozenset[str]] = frozenset()
    #: Default messages (zh, en) by direction ("above" when the direction has none).
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {}
    #: True when its check reads the indicator's forecast (the book then computes one).
    needs_forecast: ClassVar[bool] = False

    name: str
    title_zh: str
    title_en: str
    severity: Severity | None = "warn"
    message_zh: str | None = None
    message_en: str | None = None
    enabled: bool = True
    #: The indicator the rule reads, if any (its unit and titles are the alert's).
    indicator: str | None = None
    #: Most alerts at once; the strongest findings are kept, the rest counted.
    max_alerts: int = 100

    @classmethod
    def valid_keys(cls) -> frozenset[str]:
        """Every key its table may have."""
        return COMMON_KEYS | cls.keys

    @classmethod
    def placeholders(cls) -> frozenset[str]:
        """Every placeholder its messages may use."""
        return COMMON_FIELDS | cls.message_fields

    @classmethod
    @abstractmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        """Its own fields from a ``[[rules]]`` table (whose keys are already checked).

        May return ``severity`` (None: taken from the indicator's thresholds) and
        ``indicator`` (the name of the indicator it reads).
        """

    @abstractmethod
    def check(self, ctx: CheckContext) -> list[Finding]:
        """The findings at ``ctx.now``; :class:`RuleUnavailable` when it cannot judge."""

    @property
    def limit(self) -> float | None:
        return None

    @property
    def direction(self) -> Direction:
        return "above"

    def title(self, language: str) -> str:
        return pick(language, self.title_zh, self.title_en)

    def message(self, finding: Finding, language: str, unit: str) -> str:
        """The alert text of ``finding``: the rule's own template, or its kind's default."""
        zh = is_chinese(language)
        custom = self.message_zh if zh else self.message_en
        direction = str(finding.fields.get("direction", self.direction))
        template = custom or self.messages.get(
            direction, self.messages.get("above", ("", "")))[0 if zh else 1]
        values = _Defaults({
            "title": self.title(language), "rule": self.name, "key": finding.key,
            "value": finding.fields.get("value_text", fmt(finding.value)),
            "limit": fmt(finding.limit), "unit": unit, "severity": finding.severity,
            "cell": to_hex(finding.cells[0]) if finding.cells else "",
        })
        for name, text in finding.fields.items():
            if name.endswith(("_zh", "_en")):
                if name.endswith("_zh" if zh else "_en"):
                    values[name[:-3]] = text
            else:
                values.setdefault(name, text)
        try:
            text = template.format_map(values)
        except (ValueError, IndexError, AttributeError):  # the parser refuses these; belt and braces
            text = f"{values['title']}: {values['value']} ({finding.key})"
        return " ".join(text.split()) if not zh else text


def parse_limit(where: str, table: Mapping[str, Any], allowed: tuple[str, ...] = ("above", "below"),
                required: bool = True) -> tuple[float | None, float | None]:
    """``(above, below)`` from a table that gives at most one of ``allowed``."""
    given = [k for k in allowed if k in table]
    if len(given) > 1:
        raise ConfigError(f"{where}: give either above or below, not both")
    if not given:
        if required:
            raise ConfigError(f"{where}: needs {' or '.join(allowed)} = <limit>")
        return None, None
    value = kit.number(f"{where}.{given[0]}", table[given[0]])
    return (value, None) if given[0] == "above" else (None, value)


@dataclass(frozen=True, kw_only=True)
class LimitRule(Rule):
    """A rule whose value must stay at most ``above`` or at least ``below``."""

    above: float | None = None
    below: float | None = None

    @property
    def limit(self) -> float | None:
        return self.above if self.above is not None else self.below

    @property
    def direction(self) -> Direction:
        return "below" if self.below is not None else "above"

    def beyond(self, value: float) -> bool:
        """True when ``value`` is strictly beyond the limit."""
        if self.above is not None:
            return value > self.above
        return self.below is not None and value < self.below


@dataclass(frozen=True, kw_only=True)
class RowsRule(Rule):
    """A rule over the rows of one layer role (optionally one source, ``where``-filtered)."""

    keys: ClassVar[frozenset[str]] = ROW_KEYS | {"max_alerts"}

    layer: str | None = None
    role: str | None = None
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    source: str | None = None

    @classmethod
    def parse_rows(cls, table: Mapping[str, Any], ctx: ParseContext,
                   ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """``layer``, ``role``, ``where`` and ``source``, and the role's columns."""
        layer, role = kit.layer_role(ctx.where, table)
        columns = kit.role_columns(layer, role)
        fields = {"layer": layer, "role": role,
                  "where": kit.where_filter(f"{ctx.where}.where", table.get("where", {}), columns),
                  "source": kit.source_name(ctx.where, table, layer, role, ctx.sources)}
        return fields, columns

    @classmethod
    def parse_time_column(cls, table: Mapping[str, Any], ctx: ParseContext, layer: str, role: str,
                          columns: Sequence[str]) -> str:
        """The ``time_column`` (default ``time``), checked to hold times."""
        column = kit.role_column(f"{ctx.where}.time_column", table.get("time_column", "time"),
                                 columns)
        if not kit.is_time_column(layer, role, column):
            raise ConfigError(f"{ctx.where}.time_column: {column!r} is not a time column")
        return column

    @classmethod
    def parse_max_alerts(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        if "max_alerts" not in table:
            return {}
        return {"max_alerts": int(kit.number(f"{ctx.where}.max_alerts", table["max_alerts"], 1))}

    def select(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows of its source that pass its ``where``."""
        if self.source is not None and "source" in rows:
            rows = rows.loc[(rows["source"] == self.source).to_numpy()]
        return filter_where(rows, self.where)

    def timed(self, rows: pd.DataFrame, ctx: CheckContext, column: str) -> pd.DataFrame:
        """The rows with a ``column`` time; the others are counted as skipped."""
        missing = rows[column].isna().to_numpy() if column in rows else np.ones(len(rows), bool)
        if missing.any():
            ctx.skipped[self.name] = ctx.skipped.get(self.name, 0) + int(missing.sum())
        return rows.loc[~missing]


def row_keys(rows: pd.DataFrame) -> pd.Series:
    """What a rule's alerts are per: the entity observed (readings), else the row's id.

    Observations of one station share its entity id, so a rule over them raises one
    alert per station episode, not one per reading.
    """
    return (rows["entity"] if "entity" in rows else rows["id"]).astype("string")


def row_names(rows: pd.DataFrame) -> pd.Series:
    """Each row's label (``name``), or its key (:func:`row_keys`) when it has none."""
    names = rows["name"].astype("string") if "name" in rows else pd.Series(pd.NA, index=rows.index)
    return names.fillna(row_keys(rows))


__all__ = [
    "COMMON_FIELDS", "COMMON_KEYS", "ROW_KEYS", "CheckContext", "Finding", "LimitRule",
    "ParseContext", "Rule", "RowsRule", "RuleUnavailable", "duration_text", "durations", "fmt",
    "parse_limit", "row_keys", "row_names",
]
