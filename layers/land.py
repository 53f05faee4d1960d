"""地 Land: land units (districts, neighbourhoods, postal areas, zones), their area and density."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from config.city import Source
from layers.base import TOP_N, Layer, Metric, PlaceRows, Role, Selector

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


class Land(Layer):
    """Land units also list, in a place's profile, the units it overlaps per source."""

    def profile_extras(self, data: PlaceRows, select: Selector, lat: float, lon: float
                       ) -> dict[str, Any]:
        return {"units": land_units(data, select, self.id)}


def land_units(data: PlaceRows, select: Selector, layer_id: str = "land") -> list[dict[str, Any]]:
    """Per land source, the ``TOP_N`` units covering most of a place: share, area, density."""
    out = []
    for source in data.config.sources_for(layer_id):
        rows = data.frame(layer_id, UNITS.name, source.name)
        rows = rows.loc[select(rows)] if len(rows) else rows
        if rows.empty:
            continue
        by_unit = rows.groupby(["id", "name"], as_index=False).agg(
            area_km2=("area_km2", "sum"), unit_area_km2=("unit_area_km2", "first"),
            value=("value", "sum"))
        total = by_unit["area_km2"].sum()
        by_unit = by_unit.sort_values("area_km2", ascending=False).head(TOP_N)
        out.append({
            "source": source.name, "title_zh": source.title_zh, "title_en": source.title_en,
            "units": [{
                "id": str(r.id), "name": str(r.name), "area_km2": round(float(r.area_km2), 4),
                "share": round(float(r.area_km2 / total), 4) if total else None,
                "unit_area_km2": round(float(r.unit_area_km2), 4),
                "density": (round(float(r.value / r.area_km2), 1)
                            if "value" in source.fields and r.area_km2 else None),
            } for r in by_unit.itertuples()],
        })
    return out


LAYER = Land(
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
