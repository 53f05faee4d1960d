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

Every rule takes ``name``, ``kind``, ``severity`` (info | warn | alarm), ``title_zh``,
``title_en``, ``message_zh``, ``message_en`` (templates with ``{placeholders}``) and
``enabled``; each kind's own keys, example and messages are in its module under
:mod:`ops.signs.rules`, and :data:`ops.signs.rules.RULE_KINDS` lists the kinds.

This module is the section's entry point: :func:`parse_ops_settings` reads both tables.
Indicators are declared in :mod:`ops.signs.indicator_spec`, rules in
:mod:`ops.signs.rules`, and both share the checks of :mod:`ops.signs.kit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.sections import Section
from ops.signs.indicator_spec import (
    BASELINES,
    INDICATOR_KINDS,
    ForecastSpec,
    Indicator,
    Status,
    Thresholds,
    parse_indicator,
    parse_indicators,
)
from ops.signs.kit import SEVERITIES, Band, Direction, Severity, role_columns
from ops.signs.rules import RULE_KINDS, Rule, parse_rule, parse_rules


@dataclass(frozen=True)
class OpsSettings:
    """The city's vital signs and early-warning rules."""

    indicators: tuple[Indicator, ...] = ()
    rules: tuple[Rule, ...] = ()


def parse_ops_settings(raw: Mapping[str, Any], sources: Sequence[Any] = ()) -> OpsSettings:
    """The ``indicators`` and ``rules`` of a parsed TOML document (other keys are ignored).

    ``sources`` (the city's :class:`~config.city.Source` list) lets ``source = …`` and
    per-source metrics be checked; without it those are taken on trust.
    """
    indicators = parse_indicators(raw.get("indicators", []), sources=sources)
    return OpsSettings(indicators=indicators,
                       rules=parse_rules(raw.get("rules", []), indicators, sources=sources))


#: ``[[indicators]]`` and ``[[rules]]`` as the city file's section:
#: ``config.section(SIGNS_SECTION)`` is None when the city declares neither.
SIGNS_SECTION = Section[OpsSettings | None](
    "signs", ("indicators", "rules"),
    lambda tables, context: parse_ops_settings(tables, context.sources), default=None)


__all__ = [
    "BASELINES", "INDICATOR_KINDS", "RULE_KINDS", "SEVERITIES", "Band", "Direction",
    "ForecastSpec", "Indicator", "OpsSettings", "Rule", "SIGNS_SECTION", "Severity", "Status", "Thresholds",
    "parse_indicator", "parse_indicators", "parse_ops_settings", "parse_rule", "parse_rules",
    "role_columns",
]
