"""Early-warning rule kinds (预测预警), one class each, listed once in :data:`RULE_KINDS`.

Each kind (a :class:`~ops.signs.rules.base.Rule` subclass) knows its keys, its
parsing, its check and its default message; :func:`parse_rule` only does what is
common to every ``[[rules]]`` table (name, kind, keys, severity, titles, messages,
``enabled``). A new kind is one module plus one line in :data:`BUILTIN_RULE_KINDS`
— or, from outside, :func:`register_rule_kind`.

=============  ==============================================================
``threshold``  an indicator's value beyond ``above``/``below`` (or its thresholds)
``forecast``   an indicator's forecast band crossing a limit ``within`` a horizon
``cell_count`` rows per H3 cell (at ``res``) whose time is in the last ``window``
``reading``    a row's ``column`` (e.g. a sensor reading) beyond a limit, per id or entity
``silent``     an id (or entity) whose latest ``time`` is older than ``after``
``anomaly``    a cell's count in the latest bucket (or an indicator's latest value)
               against its previous ``baseline_buckets``
=============  ==============================================================
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from config.kit import ConfigError
from ops.signs import kit
from ops.signs.indicator_spec import Indicator
from ops.signs.kit import Severity
from ops.signs.rules.anomaly import AnomalyRule
from ops.signs.rules.base import CheckContext, Finding, ParseContext, Rule, RuleUnavailable
from ops.signs.rules.cell_count import CellCountRule
from ops.signs.rules.forecast import ForecastRule
from ops.signs.rules.reading import ReadingRule
from ops.signs.rules.silent import SilentRule
from ops.signs.rules.threshold import ThresholdRule

#: The rule kinds citybrain ships, in the order errors and docs list them.
BUILTIN_RULE_KINDS: tuple[type[Rule], ...] = (
    ThresholdRule, ForecastRule, CellCountRule, ReadingRule, SilentRule, AnomalyRule)

#: Every known rule kind by its ``kind`` name (built-ins, then registered ones).
RULE_KINDS: dict[str, type[Rule]] = {}


def register_rule_kind(cls: type[Rule]) -> type[Rule]:
    """Make ``cls`` usable as ``kind = cls.kind`` in ``[[rules]]`` (usable as a decorator).

    Refuses a second class under a name already taken.
    """
    kind = getattr(cls, "kind", "")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{cls.__name__} has no kind name")
    if RULE_KINDS.get(kind, cls) is not cls:
        raise ValueError(f"rule kind {kind!r} is already registered "
                         f"({RULE_KINDS[kind].__name__})")
    RULE_KINDS[kind] = cls
    return cls


for _kind in BUILTIN_RULE_KINDS:
    register_rule_kind(_kind)


def _message(where: str, placeholders: frozenset[str], value: Any) -> str | None:
    if value is None:
        return None
    text = kit.text(where, value)
    try:
        parts = [(f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(text)
                 if f is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid message template: {exc}") from None
    if any(spec or conversion for _, spec, conversion in parts):
        raise ConfigError(f"{where}: placeholders take no format spec or conversion (values "
                          "arrive formatted), e.g. {value}, not {value:.1f}")
    fields = {f for f, _, _ in parts}
    unknown = sorted(f for f in fields if f.split(".")[0].split("[")[0] not in placeholders)
    if unknown:
        raise ConfigError(f"{where}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                          f"valid placeholders are: {', '.join(sorted(placeholders))}")
    return text


def parse_rule(table: Mapping[str, Any], indicators: Sequence[Indicator] | Mapping[str, Indicator],
               where: str = "[[rules]]", sources: Sequence[Any] = ()) -> Rule:
    """Validate one ``[[rules]]`` table against the declared indicators (and sources)."""
    by_name = indicators if isinstance(indicators, Mapping) else {i.name: i for i in indicators}
    name = kit.entry_name(f"{where}.name", table.get("name"))
    where = f"[[rules]] {name!r}"
    kind = kit.choice(f"{where}.kind", table.get("kind"), list(RULE_KINDS), "kind")
    cls = RULE_KINDS[kind]
    kit.check_keys(f"{where} (kind {kind!r})", table, cls.valid_keys())
    severity: Severity | None = kit.choice(  # type: ignore[assignment]
        f"{where}.severity", table.get("severity", "warn"), kit.SEVERITIES, "severity")
    fields = cls.parse_fields(table, ParseContext(where, by_name, sources))
    severity = fields.pop("severity", severity)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: expected true or false")
    indicator = by_name.get(fields.get("indicator") or "")
    title_en = str(table.get("title_en", indicator.title_en if indicator else name))
    placeholders = cls.placeholders()
    return cls(
        name=name,
        title_zh=str(table.get("title_zh", indicator.title_zh if indicator else title_en)),
        title_en=title_en,
        severity=severity,
        message_zh=_message(f"{where}.message_zh", placeholders, table.get("message_zh")),
        message_en=_message(f"{where}.message_en", placeholders, table.get("message_en")),
        enabled=enabled,
        **fields,
    )


def parse_rules(entries: Sequence[Mapping[str, Any]],
                indicators: Sequence[Indicator] | Mapping[str, Indicator],
                where: str = "[[rules]]", sources: Sequence[Any] = ()) -> tuple[Rule, ...]:
    """Validate ``[[rules]]``; names must be unique, indicators must be declared."""
    rules = tuple(parse_rule(entry, indicators, f"{where} #{i + 1}", sources)
                  for i, entry in enumerate(kit.table_entries(where, entries)))
    kit.unique_names(where, [r.name for r in rules], "rule")
    return rules


__all__ = [
    "BUILTIN_RULE_KINDS", "RULE_KINDS", "AnomalyRule", "CellCountRule", "CheckContext",
    "Finding", "ForecastRule", "ParseContext", "ReadingRule", "Rule", "RuleUnavailable",
    "SilentRule", "ThresholdRule", "parse_rule", "parse_rules",
    "register_rule_kind",
]
