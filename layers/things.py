"""物 Things: networked street devices and urban objects (kiosks, hotspots, docks, sensors),
and the readings they report (observations of an entity over time)."""

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

#: Observations of entities: one row per (entity, time), e.g. a station's hourly
#: readings. ``entity`` holds the id of the device or station observed; a source of
#: readings names the source of those entities (``entity_source``), from which
#: readings without coordinates take their location and name.
READINGS = Role(
    name="readings",
    geometry="point",
    title_zh="设备读数",
    title_en="Readings",
    fields=(
        Field("entity", title_zh="设备", title_en="Device"),
        Field("reading", "float", "读数", "Reading"),
        Field("category", title_zh="类型", title_en="Type", breakdown=True),
        Field("status", title_zh="状态", title_en="Status", breakdown=True),
    ),
)

LAYER = Layer(
    id="things",
    title_zh="城市部件",
    title_en="Things",
    symbol="物",
    roles={"devices": DEVICES, "readings": READINGS},
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
