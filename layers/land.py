"""地 Land: land units (districts, neighbourhoods, postal areas, zones), their area and density."""

from __future__ import annotations

from collections.abc import Sequence

from config.city import Source
from layers.base import Layer, Metric, Role

UNITS = Role(
    name="units",
    geometry="area",
    title_zh="土地单元",
    title_en="Land units",
)


def _per_source(source: Source) -> Sequence[Metric]:
    metrics = [
        Metric(f"units:{source.name}", f"{source.title_zh}数", f"{source.title_en}: units",
               role="units", agg="nunique", column="id", source=source.name),
        Metric(f"area:{source.name}", f"{source.title_zh}面积", f"{source.title_en}: area",
               role="units", agg="sum", column="area_km2", source=source.name,
               unit_zh="km²", unit_en="km²", decimals=3),
    ]
    if "value" in source.fields:
        metrics.append(
            Metric(f"density:{source.name}", f"{source.title_zh}人口密度",
                   f"{source.title_en}: population density", role="units", agg="sum_per_km2",
                   column="value", source=source.name, unit_zh="人/km²", unit_en="people/km²")
        )
    return metrics


LAYER = Layer(
    id="land",
    title_zh="土地",
    title_en="Land",
    symbol="地",
    roles={"units": UNITS},
    default_role="units",
    base_metrics=(
        Metric("units", "土地单元数", "Land units", role="units", agg="nunique", column="id",
               unit_zh="个", unit_en="units"),
    ),
    colorscale=("#0f2418", "#1d4a2c", "#2f7a43", "#55a860", "#9bd07f", "#e3f5b8"),
    overlay="outlines",
    overlay_role="units",
    source_metrics=_per_source,
)
