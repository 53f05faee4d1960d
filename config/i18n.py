"""Every fixed string the UI shows, in Chinese and English.

Layer, metric and source titles live with their layer or in the city config;
this table holds the rest. :func:`t` falls back to the key itself, and a unit
test checks that every key has both languages. Every zh/en choice in the app goes
through :func:`pick` (or :func:`is_chinese`).
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

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
    "stale.dependency": ("{name} 自 {when} 起{state}", "{name} {state} since {when}"),
    "state.down": ("不可用", "down"),
    "state.stale": ("过期", "stale"),
    "state.degraded": ("降级", "degraded"),
    "unit.km2": ("平方公里", "km²"),
    # operations panel: tabs, events, sign-in (callbacks/ops.py, callbacks/ops_layout.py)
    "tab.place": ("网格画像", "Place"),
    "tab.signs": ("体征", "Vital signs"),
    "tab.alerts": ("预警", "Alerts"),
    "tab.events": ("事件", "Events"),
    "overlay.events": ("事件（按状态）", "Events by status"),
    "overlay.alerts": ("预警网格", "Alert cells"),
    "status.received": ("已接收", "Received"),
    "status.dispatched": ("已派遣", "Dispatched"),
    "status.in_progress": ("处置中", "In progress"),
    "status.resolved": ("已处置", "Resolved"),
    "status.closed": ("已结案", "Closed"),
    "events.open": ("待办", "Open"),
    "events.overdue": ("超期", "Overdue"),
    "events.closed_today": ("今日结案", "Closed today"),
    "events.median_close": ("结案时长中位数", "Median time to close"),
    "events.p90_close": ("结案时长P90", "90th pct. time to close"),
    "events.queues": ("部门队列", "Queues by department"),
    "events.department": ("部门", "Department"),
    "events.all_departments": ("全部部门", "All departments"),
    "events.overdue_list": ("超期事件（最久在前）", "Overdue events (most overdue first)"),
    "events.queue_of": ("{department} 待办事件", "Open events of {department}"),
    "events.show_all": ("显示全部超期", "Show all overdue"),
    "events.none": ("没有事件", "No events"),
    "events.more": ("另有 {n} 件未列出", "{n} more not listed"),
    "events.description": ("描述", "Description"),
    "events.reports": ("合并的诉求（{n}）", "Merged reports ({n})"),
    "events.audit": ("处置记录", "Audit trail"),
    "events.reported": ("接报", "Reported"),
    "events.due": ("时限", "Due"),
    "events.channel": ("渠道", "Channel"),
    "events.overdue_by": ("超期 {span}", "overdue by {span}"),
    "events.escalation": ("督办 {n} 级", "Escalation {n}"),
    "events.note": ("备注（可选）", "Note (optional)"),
    "events.dispatch_to": ("派往部门", "Dispatch to"),
    "events.action.dispatch": ("派遣", "Dispatch"),
    "events.action.redispatch": ("改派", "Re-dispatch"),
    "events.action.hand_back": ("退回重派", "Hand back for re-dispatch"),
    "events.action.start": ("开始处置", "Start work"),
    "events.action.reopen": ("重新处置", "Reopen"),
    "events.action.resolve": ("处置完成", "Resolve"),
    "events.action.close": ("结案", "Close"),
    "events.done": ("事件 #{id}：{before} → {after}", "Event #{id}: {before} → {after}"),
    "events.conflict": ("事件 #{id} 刚被他人修改（版本 {expected} → {actual}），已重新载入，请再确认。",
                        "Event #{id} was just changed by someone else (version {expected} → "
                        "{actual}); it has been reloaded — please decide again."),
    "events.refused": ("不允许：{reason}", "Not allowed: {reason}"),
    "events.forbidden": ("只有已登录的值班员可以更改事件。", "Only a signed-in operator may change events."),
    "events.missing": ("事件 #{id} 不存在", "Event #{id} does not exist"),
    "events.read_only": ("只读：以值班员身份登录后可处置事件。",
                         "Read only: sign in as an operator to act on events."),
    "events.not_configured": ("本城市未配置事件管道（[events]）。",
                              "This city has no event pipeline ([events])."),
    "events.in_cell": ("本网格事件", "Events in this cell"),
    "events.in_cell_counts": ("待办 {open} · 超期 {overdue} · 共 {total}",
                              "open {open} · overdue {overdue} · total {total}"),
    "events.minutes": ("{n} 分钟", "{n} min"),
    "events.hours": ("{n} 小时", "{n} h"),
    "events.days": ("{n} 天", "{n} d"),
    "events.reports_count": ("{n} 次诉求", "{n} reports"),
    "events.public": ("事件详情仅对已登录的查看员和操作员显示；公众只看汇总。",
                      "Events are shown to signed-in viewers and operators; the public sees "
                      "aggregates only."),
    "events.pick_hint": ("点击列表或地图上的事件查看详情。",
                         "Click an event in a list or on the map to see it here."),
    "audit.receive": ("接报", "received"),
    "audit.dispatch": ("派遣", "dispatched"),
    "audit.transition": ("流转", "moved"),
    "audit.merge": ("合并诉求", "report merged"),
    "audit.escalate": ("督办升级", "escalated"),
    "audit.import": ("导入", "imported"),
    "login.title": ("值班登录", "Sign in"),
    "login.name": ("用户名", "User name"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.logout": ("退出登录", "Sign out"),
    "login.as": ("已登录：{name}（{role}）", "Signed in: {name} ({role})"),
    "login.failed": ("用户名或密码错误", "Unknown user or wrong password"),
    "login.no_users": ("未配置用户：请在城市配置文件中添加 [[users]]（name、role，以及 token_env "
                       "或 password_hash_env），见 docs/api.md",
                       "no users are configured: add [[users]] to the city file (name, role, "
                       "and token_env or password_hash_env); see docs/api.md"),
    "login.refused": ("尝试次数过多，请 {seconds} 秒后再试",
                      "Too many sign-in attempts; try again in {seconds} s"),
    "role.operator": ("值班员", "operator"),
    "role.viewer": ("查看者", "viewer"),
    "role.exhibition": ("展示屏", "exhibition"),
    "signs.none": ("本城市未配置城市体征（[[indicators]]）。",
                   "This city has no vital signs configured ([[indicators]])."),
    "signs.status.ok": ("正常", "OK"),
    "signs.status.warn": ("预警", "Warning"),
    "signs.status.alarm": ("告警", "Alarm"),
    "signs.status.unknown": ("未知", "Unknown"),
    "signs.baseline.rolling_mean": ("较滚动均值", "vs rolling mean"),
    "signs.baseline.same_hour_yesterday": ("较昨日同时", "vs same hour yesterday"),
    "signs.baseline.same_hour_last_week": ("较上周同时", "vs same hour last week"),
    "signs.forecast": ("预测 +{span}：{mean}（{lower}–{upper}）",
                       "Forecast +{span}: {mean} ({lower}–{upper})"),
    "signs.skill": ("预测技能 {skill}（对比{baseline}）", "skill {skill} vs {baseline}"),
    "signs.no_skill": ("无预测技能：不优于{baseline}", "no skill: not better than {baseline}"),
    "signs.untested": ("预测未经回测", "forecast not backtested"),
    "signs.pending": ("回测进行中", "backtest pending"),
    "signs.model.persistence": ("持续法（上一值）", "persistence"),
    "signs.model.seasonal_naive": ("季节朴素法", "seasonal naive"),
    "signs.model.ets": ("指数平滑", "ETS"),
    "signs.skill_detail": ("回测（{origins} 个起点）+{span} 平均绝对误差：{maes}",
                           "Backtest ({origins} origins), MAE at +{span}: {maes}"),
    "signs.as_of": ("截至 {time}", "as of {time}"),
    "signs.data_to": ("数据至 {time}", "data to {time}"),
    "signs.failed": ("无法计算：{error}", "Cannot be computed: {error}"),
    "alerts.none": ("当前没有预警", "No active alerts"),
    "alerts.not_configured": ("本城市未配置预警规则（[[rules]]）。",
                              "This city has no alert rules configured ([[rules]])."),
    "alerts.active": ("当前预警（{n}）", "Active alerts ({n})"),
    "alerts.cleared": ("最近解除", "Recently cleared"),
    "alerts.severity.info": ("提示", "Info"),
    "alerts.severity.warn": ("预警", "Warning"),
    "alerts.severity.alarm": ("告警", "Alarm"),
    "alerts.seen": ("首次 {first} · 最近 {last} · 连续 {count} 次评估成立",
                    "first {first} · last {last} · held in {count} checks"),
    "alerts.cells": ("网格 {cells}", "cells {cells}"),
    "alerts.indicator": ("指标 {name}", "indicator {name}"),
    "alerts.ack": ("确认", "Acknowledge"),
    "alerts.acked_by": ("已确认：{who}（{when}）", "Acknowledged by {who} ({when})"),
    "alerts.cleared_at": ("已解除 {when}", "Cleared {when}"),
    "alerts.done": ("预警已确认", "Alert acknowledged"),
    "alerts.missing": ("该预警已不存在", "That alert no longer exists"),
    "alerts.forbidden": ("只有已登录的值班员可以确认预警。",
                         "Only a signed-in operator may acknowledge alerts."),
}


def t(key: str, language: str, **values: object) -> str:
    """The message ``key`` in ``language`` ("zh-CN" or "en"), formatted with ``values``."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pick(language, *pair)
    return text.format(**values) if values else text


def is_chinese(language: str) -> bool:
    """True for a Chinese language tag (``zh``, ``zh-CN``, ``zh-Hans`` …), else English.

    The one place that decides which of a zh/en pair a page in ``language`` shows.
    """
    return language.startswith("zh")


def pick(language: str, zh: T, en: T) -> T:
    """``zh`` for a Chinese ``language`` (see :func:`is_chinese`), else ``en``.

    >>> pick("zh-CN", "人口", "People"), pick("en", "人口", "People")
    ('人口', 'People')
    """
    return zh if is_chinese(language) else en
