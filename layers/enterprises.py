"""企 Enterprises: licensed establishments and business points of interest."""

from __future__ import annotations

from layers.base import Field, Layer, Metric, Role

ESTABLISHMENTS = Role(
    name="establishments",
    geometry="point",
    title_zh="企业与商户",
    title_en="Establishments",
    fields=(
        Field("category", title_zh="类别", title_en="Category", breakdown=True),
        Field("size", "float", "营业面积", "Floor area"),
    ),
)

LAYER = Layer(
    id="enterprises",
    title_zh="企业",
    title_en="Enterprises",
    symbol="企",
    roles={"establishments": ESTABLISHMENTS},
    default_role="establishments",
    base_metrics=(
        Metric("enterprises", "企业数", "Enterprises", role="establishments", unit_zh="家",
               unit_en="establishments"),
        Metric("floor_area", "营业面积合计", "Total floor area", role="establishments", agg="sum",
               column="size"),
        Metric("categories", "类别数", "Distinct categories", role="establishments",
               agg="nunique", column="category"),
    ),
    colorscale=("#0b1a33", "#12355b", "#1f5f8b", "#2f8fbf", "#5cc4e6", "#bdf0ff"),
    overlay="points",
    overlay_role="establishments",
    point_roles=("establishments",),
)
