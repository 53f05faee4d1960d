"""物 Things: networked street devices and urban objects (kiosks, hotspots, docks, sensors)."""

from __future__ import annotations

from layers.base import Field, Layer, Metric, Role

DEVICES = Role(
    name="devices",
    geometry="point",
    title_zh="城市部件与设备",
    title_en="Devices and urban objects",
    fields=(
        Field("category", title_zh="类型", title_en="Type", breakdown=True),
        Field("provider", title_zh="运营方", title_en="Provider", breakdown=True),
        Field("status", title_zh="状态", title_en="Status", breakdown=True),
        Field("reading", "float", "读数", "Reading"),
    ),
)

LAYER = Layer(
    id="things",
    title_zh="城市部件",
    title_en="Things",
    symbol="物",
    roles={"devices": DEVICES},
    default_role="devices",
    base_metrics=(
        Metric("things", "部件数", "Things", role="devices", unit_zh="个", unit_en="things"),
        Metric("providers", "运营方数", "Distinct providers", role="devices", agg="nunique",
               column="provider"),
    ),
    colorscale=("#081c24", "#0d3b45", "#126b70", "#1f9e90", "#5fd3a8", "#d2ffe0"),
    overlay="points",
    overlay_role="devices",
    point_roles=("devices",),
)
