"""``reading``: a row's ``column`` (e.g. a sensor reading) beyond a limit, one alert per id or entity.

Over observations (``things/readings``: one row per station and hour) it judges
each entity's latest reading (from the history, so a reading that is late does not
end an episode) and keys its alert by the entity: the alert is raised
when a station breaks the limit, kept (updated) while its readings keep breaking
it, and cleared when a reading is back within it — one alert per episode, not one
per reading.

::

    [[rules]]
    name = "pm25-high"
    kind = "reading"
    layer = "things"
    role = "devices"
    column = "reading"
    above = 35                 # or below
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from layers import LAYERS
from ops.signs import kit
from ops.signs.rows import event_rows, latest_observations, state_rows
from ops.signs.rules.base import (
    CheckContext,
    Finding,
    LimitRule,
    ParseContext,
    RowsRule,
    RuleUnavailable,
    parse_limit,
    row_keys,
    row_names,
)


@dataclass(frozen=True, kw_only=True)
class ReadingRule(RowsRule, LimitRule):
    """Rows present now (each entity's latest observation) whose ``column`` is beyond a limit."""

    kind: ClassVar[str] = "reading"
    keys: ClassVar[frozenset[str]] = RowsRule.keys | {"column", "above", "below"}
    message_fields: ClassVar[frozenset[str]] = frozenset({"cell", "name", "column"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：{name}读数{value}，高于{limit}",
                  "{title}: {name} reads {value}, above {limit}"),
        "below": ("{title}：{name}读数{value}，低于{limit}",
                  "{title}: {name} reads {value}, below {limit}"),
    }

    column: str = "reading"

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        fields, columns = cls.parse_rows(table, ctx)
        fields["column"] = kit.role_column(f"{ctx.where}.column", table.get("column", "reading"),
                                           columns)
        fields["above"], fields["below"] = parse_limit(ctx.where, table)
        return fields | cls.parse_max_alerts(table, ctx)

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.layer is not None and self.role is not None
        if LAYERS[self.layer].roles[self.role].observations:
            # Each entity's latest reading from the whole history, not only the live
            # window: a station whose next reading is late has not recovered.
            rows = latest_observations(
                event_rows(ctx.data, self.layer, self.role, self.source, ctx.now)[0], ctx.now)
        else:
            rows = state_rows(ctx.data, self.layer, self.role, self.source, ctx.now)
        if rows is None:
            raise RuleUnavailable(f"no {self.layer}/{self.role} rows known at {ctx.now}")
        rows = self.select(rows)
        if rows.empty or self.column not in rows:
            return []
        values = pd.to_numeric(rows[self.column], errors="coerce").to_numpy(dtype=float)
        limit = self.limit
        assert limit is not None  # the parser requires above or below
        with np.errstate(invalid="ignore"):
            hit = values > limit if self.above is not None else values < limit
        hit &= np.isfinite(values)
        rows, values = rows.loc[hit], values[hit]
        names = row_names(rows)
        assert self.severity is not None
        return [Finding(str(row_id), self.severity, float(value), limit, (int(cell),),
                        fields={"name": str(name), "column": self.column},
                        strength=abs(float(value) - limit))
                for row_id, cell, value, name in zip(row_keys(rows), rows["cell"], values, names,
                                                     strict=True)]
