"""``cell_count``: rows per H3 cell (at ``res``) whose time is in the last ``window``.

::

    [[rules]]
    name = "requests-hotspot"
    kind = "cell_count"
    layer = "government"
    role = "requests"
    res = 8
    window = "1h"
    above = 5
    max_alerts = 20
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from geo.exact import cells_of_rows
from geo.hexes import to_hex
from ops.signs import kit
from ops.signs.rows import event_rows, time_ns
from ops.signs.rules.base import (
    CheckContext,
    Finding,
    LimitRule,
    ParseContext,
    RowsRule,
    durations,
    parse_limit,
)


@dataclass(frozen=True, kw_only=True)
class CellCountRule(RowsRule, LimitRule):
    """More than ``above`` rows in one cell within the last ``window``; one alert per cell."""

    kind: ClassVar[str] = "cell_count"
    keys: ClassVar[frozenset[str]] = RowsRule.keys | {"time_column", "res", "window", "above"}
    message_fields: ClassVar[frozenset[str]] = frozenset({"cell", "window"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：网格{cell}近{window}内{value}件，超过{limit}件",
                  "{title}: {value} in cell {cell} in the last {window}, above {limit}"),
    }

    time_column: str = "time"
    res: int = 8
    window: float = 3600.0

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        fields, columns = cls.parse_rows(table, ctx)
        fields["time_column"] = cls.parse_time_column(table, ctx, fields["layer"], fields["role"],
                                                      columns)
        fields["res"] = int(kit.number(f"{ctx.where}.res", table.get("res", 8), 0, 15))
        fields["window"] = kit.positive_duration(f"{ctx.where}.window", table.get("window", "1h"))
        fields["above"] = parse_limit(ctx.where, table, ("above",))[0]
        return fields | cls.parse_max_alerts(table, ctx)

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.layer is not None and self.role is not None and self.above is not None
        rows, _ = event_rows(ctx.data, self.layer, self.role, self.source, ctx.now)
        rows = self.timed(self.select(rows), ctx, self.time_column)
        if rows.empty:
            return []
        times = time_ns(rows[self.time_column])
        now_ns = ctx.now.as_unit("ns").value
        recent = (times > now_ns - int(self.window * 1e9)) & (times <= now_ns)
        cells = cells_of_rows(rows.loc[recent], self.res)
        if len(cells) == 0:
            return []
        found, counts = np.unique(cells, return_counts=True)
        assert self.severity is not None
        window = durations("window", self.window)
        return [Finding(to_hex(int(cell)), self.severity, float(n), self.above, (int(cell),),
                        fields=window, strength=float(n) - self.above)
                for cell, n in zip(found, counts, strict=True) if n > self.above]
