"""``forecast``: an indicator's forecast band crossing a limit ``within`` a horizon, at a step
where the forecast has skill (see [indicators.md](indicators.md#forecasts-that-earn-their-place)).

::

    [[rules]]
    name = "requests-rising"
    kind = "forecast"
    indicator = "requests_per_hour"
    above = 90                 # or neither: the indicator's thresholds
    within = "2h"              # at most the indicator's forecast horizon
    band = "upper"             # upper | lower | mean (default: upper, lower for a floor)

The rule only trusts a forecast with **skill**: a crossing counts only at a step where
the indicator's backtested forecast beats its baseline (``skill > 0``, see
:mod:`ops.signs.backtest`). When no step within ``within`` has skill — persistence won
the backtest, or the history is too short to backtest — the rule cannot judge and says
so (the reason shows in the alert book's errors, as for any unavailable rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from config.kit import ConfigError
from ops.signs import kit
from ops.signs.forecast import Forecast
from ops.signs.kit import Band, Severity
from ops.signs.rules.base import CheckContext, Finding, ParseContext, RuleUnavailable, durations, fmt
from ops.signs.rules.threshold import ThresholdRule


@dataclass(frozen=True, kw_only=True)
class ForecastRule(ThresholdRule):
    """The first time the forecast band crosses a limit (or the thresholds) within ``within``."""

    kind: ClassVar[str] = "forecast"
    keys: ClassVar[frozenset[str]] = ThresholdRule.keys | {"within", "band"}
    message_fields: ClassVar[frozenset[str]] = frozenset({"indicator", "within", "at"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：预计{within}内超过{limit}{unit}（约{at}，预测{value}{unit}）",
                  "{title}: expected to exceed {limit} {unit} within {within} "
                  "(around {at}, forecast {value} {unit})"),
        "below": ("{title}：预计{within}内低于{limit}{unit}（约{at}，预测{value}{unit}）",
                  "{title}: expected to fall below {limit} {unit} within {within} "
                  "(around {at}, forecast {value} {unit})"),
    }
    needs_forecast: ClassVar[bool] = True

    within: float = 2 * 3600.0
    band: Band = "upper"

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        indicator, fields = cls.parse_indicator_limit(table, ctx)
        if indicator.forecast is None:
            raise ConfigError(f"{ctx.where}: indicator {indicator.name!r} has forecast = false")
        within = kit.positive_duration(f"{ctx.where}.within", table.get("within", "2h"))
        if within > indicator.forecast.horizon:
            raise ConfigError(f"{ctx.where}.within: {within:g} s is beyond indicator "
                              f"{indicator.name!r}'s forecast horizon "
                              f"({indicator.forecast.horizon:g} s)")
        above, below = fields["above"], fields["below"]
        falling = below is not None or (above is None and indicator.thresholds is not None
                                        and indicator.thresholds.direction == "below")
        fields.update(within=within, band=kit.choice(
            f"{ctx.where}.band", table.get("band", "lower" if falling else "upper"), kit.BANDS,
            "band"))
        return fields

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.indicator is not None
        reading = ctx.reading(self.indicator)
        predicted = reading.forecast
        if predicted is None or predicted.method == "none":
            raise RuleUnavailable(f"indicator {self.indicator!r} has no forecast now")
        until = ctx.now + pd.Timedelta(seconds=self.within)
        skilful = {when for when, skill in zip(predicted.times, predicted.skill, strict=False)
                   if when <= until and math.isfinite(skill) and skill > 0}
        if not skilful:
            raise RuleUnavailable(f"indicator {self.indicator!r}: {no_skill(predicted)}")
        if self.limit is not None:
            assert self.severity is not None
            levels: list[tuple[Severity, float, bool]] = [(self.severity, self.limit, False)]
            direction = self.direction
        else:
            thresholds = ctx.indicators[self.indicator].thresholds
            assert thresholds is not None
            direction = thresholds.direction
            levels = []
            if thresholds.alarm is not None:
                levels.append(("alarm", thresholds.alarm, True))
            if thresholds.warn is not None:
                levels.append(("warn", thresholds.warn, True))
        for severity, limit, inclusive in levels:
            crossing = predicted.first_crossing(limit, direction, self.band, until, inclusive,
                                                steps=skilful)
            if crossing is None:
                continue
            when, value = crossing
            fields = {"indicator_zh": reading.title_zh, "indicator_en": reading.title_en,
                      "at": ctx.local_time(when), **durations("within", self.within),
                      "value_text": fmt(value, reading.decimals)}
            return [Finding(self.indicator, severity, value, limit, fields=fields,
                            strength=abs(value - limit))]
        return []


def no_skill(predicted: Forecast) -> str:
    """Why a forecast is not trusted, in one line."""
    tested = predicted.backtest
    if tested is None and predicted.pending:
        return "forecast backtest pending (running in the background); not trusted yet"
    if tested is None:
        return f"forecast not backtested ({predicted.note or 'too little history'}); not trusted"
    if tested.only_persistence:
        return ("forecast has no skill: on the backtest nothing beat persistence "
                f"(last value carried forward, {len(tested.origins)} origins)")
    shown = ", ".join(f"+{h} {m} {s:+.0%}" if math.isfinite(s) else f"+{h} –"
                      for h, (m, s) in enumerate(zip(tested.chosen, tested.skill, strict=True), 1))
    return f"forecast has no skill within the rule's horizon ({shown})"
