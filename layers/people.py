"""人 People: resident population apportioned to cells by area, and trips as mobility."""

from __future__ import annotations

from layers.base import Field, Layer, Metric, Role

POPULATION = Role(
    name="population",
    geometry="area",
    title_zh="常住人口",
    title_en="Resident population",
)
MOBILITY = Role(
    name="mobility",
    geometry="point",
    title_zh="出行",
    title_en="Trips",
    fields=(
        Field("category", title_zh="类型", title_en="Type", breakdown=True),
        Field("end_time", "time", "结束时间", "End time"),
        Field("passengers", "float", "乘客", "Passengers"),
        Field("distance", "float", "距离", "Distance"),
    ),
)

LAYER = Layer(
    id="people",
    title_zh="人口",
    title_en="People",
    symbol="人",
    roles={"population": POPULATION, "mobility": MOBILITY},
    default_role="population",
    base_metrics=(
        Metric("residents", "常住人口", "Residents", role="population", agg="sum", column="value",
               unit_zh="人", unit_en="people"),
        Metric("density", "人口密度", "Population density", role="population",
               agg="sum_per_km2", column="value", unit_zh="人/km²", unit_en="people/km²"),
        Metric("trips", "出行（上车）", "Trips (pickups)", role="mobility", unit_zh="次",
               unit_en="trips"),
    ),
    colorscale=("#1b1f3a", "#4b2a6b", "#9c3b7a", "#e0605a", "#f9a646", "#fde68a"),
    overlay="none",
    point_roles=("mobility",),
    population_metric="residents",
)

__all__ = ["LAYER"]
