"""``anomaly``: a cell's count in the latest bucket (or an indicator's latest value)
against its previous ``baseline_buckets``: z = (x − mean) / max(sd, min_std).

::

    [[rules]]
    name = "requests-surge"
    kind = "anomaly"
    layer = "government"       # or indicator = "…" (its own rows and buckets)
    role = "requests"
    res = 8
    bucket = "1h"
    baseline_buckets = 12
    z = 3.0
    min_count = 5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from config.kit import ConfigError
from geo.exact import cells_of_rows
from geo.hexes import to_hex
from ops.signs import kit
from ops.signs.rows import event_rows, time_ns
from ops.signs.rules.base import (
    ROW_KEYS,
    CheckContext,
    Finding,
    ParseContext,
    RowsRule,
    RuleUnavailable,
    duration_text,
    durations,
    fmt,
)


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


#: Keys that belong to the rows form only: an indicator brings its own rows and buckets.
_ROWS_ONLY = ROW_KEYS | {"time_column", "res", "bucket", "max_alerts"}


@dataclass(frozen=True, kw_only=True)
class AnomalyRule(RowsRule):
    """An unusually high latest bucket, per cell of a layer role or for one indicator."""

    kind: ClassVar[str] = "anomaly"
    keys: ClassVar[frozenset[str]] = RowsRule.keys | {
        "indicator", "time_column", "res", "bucket", "baseline_buckets", "z", "min_count",
        "min_std"}
    message_fields: ClassVar[frozenset[str]] = frozenset({
        "cell", "indicator", "where", "bucket", "mean", "std", "z", "k"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：{where}近{bucket}为{value}，较前{k}个时段均值{mean}异常偏高（z={z}）",
                  "{title}: {value} in the last {bucket} {where}, unusually high "
                  "against the previous {k} periods (mean {mean}, z = {z})"),
    }

    time_column: str = "time"
    res: int = 8
    bucket: float = 3600.0
    baseline_buckets: int = 24
    z: float = 3.0
    min_count: float = 5.0
    min_std: float = 1.0

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        where = ctx.where
        fields: dict[str, Any]
        if "indicator" in table:
            indicator = ctx.indicator(table)
            rows_only = sorted(_ROWS_ONLY & set(table))
            if rows_only:
                raise ConfigError(f"{where}.{rows_only[0]}: an anomaly on an indicator uses the "
                                  "indicator's own rows and buckets")
            fields = {"indicator": indicator.name, "bucket": indicator.bucket}
        else:
            fields, columns = cls.parse_rows(table, ctx)
            fields["time_column"] = cls.parse_time_column(table, ctx, fields["layer"],
                                                          fields["role"], columns)
            fields["res"] = int(kit.number(f"{where}.res", table.get("res", 8), 0, 15))
            fields |= cls.parse_max_alerts(table, ctx)
            fields["bucket"] = kit.positive_duration(f"{where}.bucket", table.get("bucket", "1h"))
        return fields | {
            "baseline_buckets": int(kit.number(f"{where}.baseline_buckets",
                                            table.get("baseline_buckets", 24), 2, 10_000)),
            "z": kit.number(f"{where}.z", table.get("z", 3.0), 0),
            "min_count": kit.number(f"{where}.min_count", table.get("min_count", 5), 0),
            "min_std": kit.number(f"{where}.min_std", table.get("min_std", 1.0), 1e-9),
        }

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.severity is not None
        bucket = durations("bucket", self.bucket)
        if self.indicator is not None:
            reading = ctx.reading(self.indicator)
            values = np.asarray(reading.series_values, dtype=float)
            if len(values) == 0 or not math.isfinite(values[-1]):
                raise RuleUnavailable(f"indicator {self.indicator!r} has no value now")
            earlier = values[:-1][np.isfinite(values[:-1])][-self.baseline_buckets:]
            if len(earlier) < 2:
                raise RuleUnavailable(f"indicator {self.indicator!r} has fewer than 2 earlier "
                                      "values")
            z, mean, sd = zscore(values[-1], earlier, self.min_std)
            if values[-1] < self.min_count or z < self.z:
                return []
            fields = {"indicator_zh": reading.title_zh, "indicator_en": reading.title_en,
                      "where_zh": "", "where_en": "", "mean": fmt(mean), "std": fmt(sd),
                      "z": fmt(z, 1), "k": str(len(earlier)), **bucket}
            return [Finding(self.indicator, self.severity, float(values[-1]),
                            mean + self.z * max(sd, self.min_std), fields=fields, strength=z)]
        assert self.layer is not None and self.role is not None
        rows, coverage = event_rows(ctx.data, self.layer, self.role, self.source, ctx.now)
        rows = self.timed(self.select(rows), ctx, self.time_column)
        k = self.baseline_buckets
        if coverage is not None:
            # Only buckets wholly inside the known history count as a baseline.
            known = int((ctx.now - coverage).total_seconds() // self.bucket) - 1
            k = min(k, known)
        if k < 2:
            raise RuleUnavailable(f"needs at least 2 earlier {duration_text(self.bucket, 'en')} "
                                  "buckets of history")
        if rows.empty:
            return []
        cells = cells_of_rows(rows, self.res)
        found, counts = cell_bucket_counts(time_ns(rows[self.time_column]), cells,
                                           ctx.now.as_unit("ns").value, int(self.bucket * 1e9),
                                           k + 1)
        findings = []
        for cell, row in zip(found, counts, strict=True):
            current = row[0]
            if current < self.min_count:
                continue
            z, mean, sd = zscore(current, row[1:], self.min_std)
            if z < self.z:
                continue
            hexed = to_hex(int(cell))
            fields = {"where_zh": f"网格{hexed}", "where_en": f"in cell {hexed}",
                      "mean": fmt(mean), "std": fmt(sd), "z": fmt(z, 1), "k": str(k), **bucket}
            findings.append(Finding(hexed, self.severity, float(current),
                                    mean + self.z * max(sd, self.min_std), (int(cell),),
                                    fields=fields, strength=z))
        return findings
