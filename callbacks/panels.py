"""The place panels: a cell's profile, a drilled area's figures, sources and the clock,
with their layout pieces (the Place tab and the footer)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import Dash, Input, Output, dcc, html

from callbacks import ids
from callbacks.common import tab
from config.i18n import pick, t
from geo.hexes import from_hex
from render.profile import area_profile, cell_profile

if TYPE_CHECKING:
    from config.city import CityConfig
    from services import Services


def _number(value: float | None, decimals: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def _metric_rows(section: dict[str, Any], language: str) -> list[Any]:
    rows = []
    for metric in section["metrics"]:
        unit = pick(language, metric["unit_zh"], metric["unit_en"])
        rows.append(html.Tr([
            html.Th(pick(language, metric["title_zh"], metric["title_en"])),
            html.Td(metric.get("suppressed") or
                    f"{_number(metric['value'], metric['decimals'])} {unit}".strip(),
                    className="cb-num", **{"data-metric": metric["name"]}),
        ]))
    return rows


def _breakdown(block: dict[str, Any], language: str) -> Any:
    field = pick(language, block["field_zh"], block["field_en"])
    role = pick(language, block["role_zh"], block["role_en"])
    # Values from the public (request types, names) are passed as text children: Dash
    # escapes them, so nothing a caller typed is ever interpreted as HTML.
    return html.Div(className="cb-breakdown", children=[
        html.H4(f"{role} · {t('profile.by', language, field=field)}"),
        html.Ul([html.Li([html.Span(item["value"]),
                          html.Span(item.get("suppressed") or f"{item['count']:,}",
                                    className="cb-num")])
                 for item in block["items"]]),
    ])


def render_place(profile: dict[str, Any], language: str, heading: list[Any]) -> list[Any]:
    """Render a cell or area profile (same structure) as panel sections, one per layer."""
    children: list[Any] = list(heading)
    for layer_id, section in profile["layers"].items():
        body: list[Any] = [html.Table(html.Tbody(_metric_rows(section, language)),
                                      className="cb-metrics")]
        for unit_block in section.get("units", []):
            body.append(html.Div(className="cb-breakdown", children=[
                html.H4(pick(language, unit_block["title_zh"], unit_block["title_en"])),
                html.Ul([html.Li([
                    html.Span(unit["name"]),
                    html.Span(f"{unit['share'] * 100:.0f}%" if unit["share"] is not None else "",
                              className="cb-num"),
                ]) for unit in unit_block["units"]]),
            ]))
        body.extend(_breakdown(b, language) for b in section["breakdowns"])
        nearest = section.get("nearest_service_points")
        if nearest:
            body.append(html.Div(className="cb-breakdown", children=[
                html.H4(t("profile.nearest", language)),
                html.Ul([html.Li([
                    html.Span(f"{p['name'] or p['category'] or p['id']}"
                              f" ({p['category']})" if p["category"] else p["name"] or p["id"]),
                    html.Span(f"{p['distance_km']:.2f} {t('profile.km', language)}",
                              className="cb-num"),
                ]) for p in nearest]),
            ]))
        stale = [html.Span(t("map.stale", language), className="cb-chip cb-stale")] \
            if section["stale"] else []
        children.append(html.Section(className=f"cb-layer-section layer-{layer_id}",
                                     id=f"profile-{layer_id}", children=[
            html.H3([html.B(section["symbol"], className="layer-symbol"),
                     f" {pick(language, section['title_zh'], section['title_en'])}", *stale]),
            *body,
        ]))
    return children


def place_tab(language: str) -> dcc.Tab:
    """The Place tab: the drilled area, the selected cell's profile and its events."""
    return tab("tab.place", "place", language, [
        html.Div(id=ids.AREA_PANEL, className="cb-area"),
        html.Div(id=ids.PROFILE, className="cb-profile",
                 children=html.P(t("panel.profile_hint", language), className="cb-hint")),
        html.Div(id=ids.CELL_EVENTS, className="ops-cell-events"),
    ])


def footer(config: CityConfig) -> html.Footer:
    """Source health chips (filled by a callback) and the data attributions."""
    return html.Footer(className="cb-footer", children=[
        html.Div(id=ids.SOURCES, className="cb-sources"),
        html.Div(id=ids.ATTRIBUTION, className="cb-attribution",
                 children=" · ".join(config.attributions)),
    ])


def dependency_lines(found: list[dict[str, Any]], language: str, zone: ZoneInfo) -> list[str]:
    """Banner lines for dependencies that are not ok (Redis, the event store, intake …).

    Sources are left out: the banner names stale sources of the shown layer itself.
    """
    lines = []
    for entry in found:
        if entry["kind"] == "source" or entry["state"] == "ok":
            continue
        since = entry.get("since")
        when = datetime.fromisoformat(since).astimezone(zone).strftime("%H:%M:%S") if since else "?"
        line = t("stale.dependency", language, name=entry["name"], when=when,
                 state=t(f"state.{entry['state']}", language))
        lines.append(f"{line} — {entry['why']}" if entry.get("why") else line)
    return lines


def register(app: Dash, services: Services) -> None:
    data, config = services.store, services.config
    zone = ZoneInfo(config.city.timezone)

    @app.callback(
        Output(ids.PROFILE, "children"),
        Input(ids.SELECTED_CELL, "data"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.TICK, "n_intervals"),
    )
    def show_cell(selected: str | None, language: str, _tick: int | None) -> Any:
        if not selected:
            return html.P(t("panel.profile_hint", language), className="cb-hint")
        try:
            cell = from_hex(selected)
        except ValueError:
            return html.P(t("profile.invalid", language), className="cb-warn")
        profile = cell_profile(data, cell)
        if services.audience() == "public" and services.disclosure is not None:
            profile = services.disclosure.profile(profile, cell=cell)
        heading = [
            html.H2(t("panel.profile", language)),
            html.P([html.Code(profile["cell"], id="profile-cell-id"),
                    f" · {t('profile.resolution', language)} {profile['res']}"
                    f" · {profile['area_km2']:.3f} km²"], className="cb-muted"),
        ]
        return render_place(profile, language, heading)

    @app.callback(
        Output(ids.AREA_PANEL, "children"),
        Input(ids.AREA, "data"),
        Input(ids.LANGUAGE, "data"),
    )
    def show_area(area: dict[str, str] | None, language: str) -> Any:
        if not area:
            return []
        profile = area_profile(data, area["level"], area["name"])
        if profile is None:
            return []
        if services.audience() == "public" and services.disclosure is not None:
            profile = services.disclosure.profile(profile, group=f"{area['level']}:{area['name']}")
        boundary = data.boundary(area["level"])
        level_title = pick(language, boundary.spec.title_zh, boundary.spec.title_en) \
            if boundary else area["level"]
        summary = html.Table(html.Tbody([
            html.Tr([html.Th(pick(language, section["title_zh"], section["title_en"])),
                     html.Td(section["metrics"][0].get("suppressed") or _number(
                         section["metrics"][0]["value"], section["metrics"][0]["decimals"]),
                         className="cb-num")])
            for section in profile["layers"].values() if section["metrics"]
        ] + [html.Tr([html.Th(t("profile.area", language)),
                      html.Td(f"{profile['area_km2']:,.1f} km²", className="cb-num")])]),
            className="cb-metrics")
        return [html.H2([t("panel.area_figures", language), " · ", html.Span(area["name"],
                                                                             id="area-name")]),
                html.P(level_title, className="cb-muted"), summary]

    @app.callback(
        Output(ids.STALE_BANNER, "children"),
        Output(ids.STALE_BANNER, "className"),
        Input(ids.TICK, "n_intervals"),
        Input(ids.HEX_LAYER, "value"),
        Input(ids.LANGUAGE, "data"),
    )
    def stale_banner(_tick: int | None, layer_id: str, language: str) -> tuple[Any, str]:
        """Say loudly, over the map, when what is shown is not live."""
        stale = []
        for source in config.sources_for(layer_id):
            health = data.health[source.name]
            if not health.is_stale():
                continue
            when = health.last_data.astimezone(zone).strftime("%H:%M:%S") \
                if health.last_data else None
            since = t("stale.since", language, when=when) if when else t("stale.never", language)
            reason = f" — {health.last_error}" if health.last_error else ""
            stale.append(f"{pick(language, source.title_zh, source.title_en)} ({since}){reason}")
        # A dependency that is down (Redis, the event store, intake): what is shown is its last data.
        watch = services.dependencies
        stale += dependency_lines(watch.report() if watch is not None else [], language, zone)
        if not stale:
            return [], "cb-stale-banner"
        return f"⚠ {t('stale.banner', language, sources='; '.join(stale))}", \
            "cb-stale-banner cb-stale-banner-on"

    @app.callback(
        Output(ids.SOURCES, "children"),
        Output(ids.CLOCK, "children"),
        Input(ids.TICK, "n_intervals"),
        Input(ids.LANGUAGE, "data"),
    )
    def show_sources(_tick: int | None, language: str) -> tuple[list[Any], str]:
        chips = []
        for source in config.sources:
            health = data.health[source.name]
            rejected = sum(health.rejected.values())
            state = "error" if health.last_error else ("stale" if health.is_stale() else "ok")
            text = f"{pick(language, source.title_zh, source.title_en)}: {health.rows_loaded:,}"
            if rejected:
                text += f" (−{rejected:,} {t('health.rejected', language)})"
            if source.simulated:
                text += f" [{t('health.simulated', language)}]"
            chips.append(html.Span(text, className=f"cb-source cb-source-{state}",
                                   title=health.last_error or ", ".join(
                                       f"{k}: {v}" for k, v in health.rejected.items())))
        now = data.clock.now().tz_convert(zone)
        clock = now.strftime("%Y-%m-%d %H:%M:%S")
        if data.clock.accelerated:
            clock += f" (×{data.clock.speed:g})"
        return chips, clock
