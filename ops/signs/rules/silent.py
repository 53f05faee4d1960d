"""``silent``: an id (or entity) whose latest ``time`` is older than ``after``, one alert per id or entity.

::

    [[rules]]
    name = "device-silent"
    kind = "silent"
    layer = "things"
    role = "devices"
    after = "30m"
    severity = "alarm"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ops.signs import kit
from ops.signs.rows import event_rows
from ops.signs.rules.base import (
    CheckContext,
    Finding,
    ParseContext,
    RowsRule,
    durations,
    fmt,
    row_keys,
    row_names,
)


@dataclass(frozen=True, kw_only=True)
class SilentRule(RowsRule):
    """Ids not heard from for longer than ``after`` (from the history, past the live window)."""

    kind: ClassVar[str] = "silent"
    keys: ClassVar[frozenset[str]] = RowsRule.keys | {"after"}
    message_fields: ClassVar[frozenset[str]] = frozenset({"cell", "name", "after", "minutes"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：{name}已{minutes}分钟无数据（限{after}）",
                  "{title}: {name} silent for {minutes} min (limit {after})"),
    }

    after: float = 1800.0

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        fields, _ = cls.parse_rows(table, ctx)
        fields["after"] = kit.positive_duration(f"{ctx.where}.after", table.get("after", "30m"))
        return fields | cls.parse_max_alerts(table, ctx)

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.layer is not None and self.role is not None
        rows, _ = event_rows(ctx.data, self.layer, self.role, self.source, ctx.now)
        rows = self.timed(self.select(rows), ctx, "time")
        if rows.empty:
            return []
        keys = row_keys(rows)
        latest = rows.assign(_key=keys).sort_values("time", kind="stable") \
            .drop_duplicates("_key", keep="last")
        silent_s = (ctx.now - latest["time"]).dt.total_seconds().to_numpy()
        hit = silent_s > self.after
        latest, silent_s = latest.loc[hit], silent_s[hit]
        assert self.severity is not None
        after = durations("after", self.after)
        return [Finding(str(row_id), self.severity, seconds / 60.0, self.after / 60.0, (int(cell),),
                        fields={"name": str(name), "minutes": fmt(seconds / 60.0, 0), **after},
                        strength=seconds)
                for row_id, cell, seconds, name in zip(latest["_key"], latest["cell"], silent_s,
                                                       row_names(latest), strict=True)]
