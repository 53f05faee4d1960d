"""Every fixed string the UI shows, in Chinese and English.

Layer, metric and source titles live with their layer or in the city config;
this table holds the rest. :func:`t` falls back to the key itself, and a unit
test checks that every key has both languages.
"""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    # key: (zh-CN, en)
    "app.title": ("城市大脑 · 一图统览", "citybrain · one map for the whole city"),
    "app.subtitle": ("城市运行态势", "City situation"),
    "lang.switch": ("English", "中文"),
    "theme.dark": ("深色", "Dark"),
    "theme.light": ("浅色", "Light"),
    "theme.label": ("主题", "Theme"),
    "panel.layers": ("图层", "Layers"),
    "panel.hex_layer": ("六边形图层", "Hexagon layer"),
    "panel.metric": ("指标", "Metric"),
    "panel.overlays": ("叠加显示", "Overlays"),
    "panel.outlines": ("边界", "Outlines"),
    "panel.drill": ("区域", "Area"),
    "panel.whole_city": ("全市", "Whole city"),
    "panel.back_to_city": ("返回全市", "Back to the whole city"),
    "panel.pick_district": ("选择行政区", "Pick a district"),
    "panel.pick_unit": ("选择下级区域", "Pick a sub-area"),
    "panel.profile": ("网格画像", "Cell profile"),
    "panel.profile_hint": ("点击地图上的六边形，查看该网格的人、企、地、物、政全要素画像。",
                           "Click a hexagon to see everything known about that place."),
    "panel.area_figures": ("区域概况", "Area figures"),
    "panel.sources": ("数据源", "Data sources"),
    "panel.freshness": ("数据时效", "Freshness"),
    "map.resolution": ("H3 分辨率", "H3 resolution"),
    "map.cells": ("网格", "cells"),
    "map.points": ("点", "points"),
    "map.capped": ("已限制：显示数量超过上限，已降低分辨率", "Capped: too many to draw, resolution lowered"),
    "map.sampled": ("点太多，已抽样显示", "Too many points: a sample is shown"),
    "map.no_data": ("该图层当前没有数据", "This layer has no data now"),
    "map.stale": ("数据已过期", "Stale data"),
    "map.live": ("实时", "Live"),
    "map.value": ("数值", "Value"),
    "map.cell": ("网格", "Cell"),
    "map.selected": ("选中网格", "Selected cell"),
    "profile.cell": ("网格编号", "Cell id"),
    "profile.resolution": ("分辨率", "Resolution"),
    "profile.area": ("面积", "Area"),
    "profile.residents": ("常住人口", "Residents"),
    "profile.density": ("人口密度", "Population density"),
    "profile.total": ("合计", "Total"),
    "profile.by": ("按{field}", "By {field}"),
    "profile.units": ("所属单元", "Land units"),
    "profile.share": ("占比", "share"),
    "profile.nearest": ("最近的服务点", "Nearest service points"),
    "profile.none": ("无", "None"),
    "profile.open": ("未办结", "Open"),
    "profile.closed": ("已办结", "Closed"),
    "profile.median_close": ("办结时长中位数", "Median time to close"),
    "profile.hours": ("小时", "hours"),
    "profile.km": ("公里", "km"),
    "profile.invalid": ("无效的网格编号", "Not a valid cell id"),
    "health.ok": ("正常", "OK"),
    "health.rejected": ("已拒绝", "rejected"),
    "health.error": ("错误", "error"),
    "health.simulated": ("模拟数据", "Simulated data"),
    "health.rows": ("条", "rows"),
    "health.last_read": ("最近读取", "last read"),
    "attribution": ("数据来源", "Data"),
    "replay.title": ("时间回放", "Time replay"),
    "replay.showing": ("回放", "Replay"),
    "replay.play": ("▶ 回放", "▶ Replay"),
    "replay.live": ("● 回到实时", "● Back to live"),
    "replay.speed": ("速度", "Speed"),
    "replay.hours_ago": ("小时前", "hours ago"),
    "replay.no_history": ("暂无历史数据", "No history yet"),
    "stale.banner": ("数据过期：{sources}", "Stale data: {sources}"),
    "stale.since": ("最后数据 {when}", "last data {when}"),
    "stale.never": ("从未收到数据", "no data received"),
    "unit.km2": ("平方公里", "km²"),
}


def t(key: str, language: str, **values: object) -> str:
    """The message ``key`` in ``language`` ("zh-CN" or "en"), formatted with ``values``."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pair[0] if language.startswith("zh") else pair[1]
    return text.format(**values) if values else text


def pick(language: str, zh: str, en: str) -> str:
    """Choose between a Chinese and an English text."""
    return zh if language.startswith("zh") else en
