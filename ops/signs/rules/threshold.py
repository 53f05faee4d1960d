"""``threshold``: an indicator's value beyond ``above``/``below``, or its own thresholds.

::

    [[rules]]
    name = "devices-offline"
    kind = "threshold"
    indicator = "devices_online"
    below = 80                 # or neither: warn / alarm at the indicator's thresholds
    severity = "alarm"         # only with above/below
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from config.kit import ConfigError
from ops.signs.indicator_spec import Indicator
from ops.signs.kit import Severity
from ops.signs.rules.base import (
    CheckContext,
    Finding,
    LimitRule,
    ParseContext,
    RuleUnavailable,
    fmt,
    parse_limit,
)


@dataclass(frozen=True, kw_only=True)
class ThresholdRule(LimitRule):
    """An indicator's current value beyond a limit (severity from the rule or the thresholds)."""

    kind: ClassVar[str] = "threshold"
    keys: ClassVar[frozenset[str]] = frozenset({"indicator", "above", "below"})
    message_fields: ClassVar[frozenset[str]] = frozenset({"indicator"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：{value}{unit}，高于{limit}{unit}",
                  "{title}: {value} {unit}, above {limit} {unit}"),
        "below": ("{title}：{value}{unit}，低于{limit}{unit}",
                  "{title}: {value} {unit}, below {limit} {unit}"),
    }

    @classmethod
    def parse_indicator_limit(cls, table: Mapping[str, Any], ctx: ParseContext,
                              ) -> tuple[Indicator, dict[str, Any]]:
        """The indicator and ``above``/``below``; without a limit, its thresholds decide."""
        indicator = ctx.indicator(table)
        above, below = parse_limit(ctx.where, table, required=False)
        fields: dict[str, Any] = {"indicator": indicator.name, "above": above, "below": below}
        if above is None and below is None:
            if indicator.thresholds is None:
                raise ConfigError(f"{ctx.where}: give above or below, or declare thresholds on "
                                  f"indicator {indicator.name!r}")
            if "severity" in table:
                raise ConfigError(f"{ctx.where}.severity: without above/below the level reached "
                                  f"on {indicator.name!r}'s thresholds is the severity")
            fields["severity"] = None
        return indicator, fields

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        return cls.parse_indicator_limit(table, ctx)[1]

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.indicator is not None
        reading = ctx.reading(self.indicator)
        value = reading.value
        if not math.isfinite(value):
            raise RuleUnavailable(f"indicator {self.indicator!r} has no value now")
        fields = {"indicator_zh": reading.title_zh, "indicator_en": reading.title_en,
                  "value_text": fmt(value, reading.decimals)}
        if self.limit is not None:
            if not self.beyond(value):
                return []
            assert self.severity is not None
            return [Finding(self.indicator, self.severity, value, self.limit, fields=fields,
                            strength=abs(value - self.limit))]
        thresholds = ctx.indicators[self.indicator].thresholds
        assert thresholds is not None  # the parser guarantees it
        status = thresholds.status(value)
        if status == "alarm":
            severity: Severity = "alarm"
            level = thresholds.alarm
        elif status == "warn":
            severity, level = "warn", thresholds.warn
        else:
            return []
        fields["direction"] = thresholds.direction  # the message says "below" for a floor
        return [Finding(self.indicator, severity, value, level, fields=fields)]
