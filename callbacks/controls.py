"""The controls column (layer, metric, overlays, outlines, drill-down, time replay) and
the header's language and theme buttons: their layout pieces and the callbacks that
turn them into stores."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import pandas as pd
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from callbacks import ids
from callbacks.common import label
from callbacks.map import replay_moment
from callbacks.ops_panel import overlay_options as ops_overlay_options
from callbacks.tour import query_flag
from config.i18n import pick, t
from layers import LAYERS

if TYPE_CHECKING:
    from config.city import CityConfig
    from services import Services
    from store.city import CityData

#: Assumed map size in pixels when fitting a unit's bounds (the wall and a laptop both
#: show at least this much map; fitting a little loose is better than cropping).
FIT_WIDTH_PX, FIT_HEIGHT_PX = 1100, 750
REPLAY_SPEEDS = (1, 10, 60, 600)


# ---------------------------------------------------------------------- layout
def layer_options(language: str) -> list[dict[str, Any]]:
    return [{"label": html.Span([html.B(layer.symbol, className="layer-symbol"),
                                 f" {pick(language, '', layer.title_en)}"],
                                className=f"layer-option layer-{layer.id}"),
             "value": layer.id} for layer in LAYERS.values()]


def overlay_options(language: str) -> list[dict[str, Any]]:
    """The layers' point overlays, then the operations overlays (events, alert cells)."""
    options = []
    for layer in LAYERS.values():
        if layer.overlay != "points" or layer.overlay_role is None:
            continue
        role = layer.roles[layer.overlay_role]
        options.append({"label": f"{layer.symbol} {pick(language, role.title_zh, role.title_en)}",
                        "value": layer.id})
    return options + ops_overlay_options(language)


def replay_controls(config: CityConfig, language: str) -> list[Any]:
    """The time slider: how far back to start, how fast to play, and back to live."""
    hours = max(1, int(round(config.live.history / 3600)))
    marks = {-h: f"-{h}h" for h in range(0, hours + 1, max(1, hours // 4))}
    marks[0] = "0"
    return [
        label("replay.title", language, html.H2),
        dcc.Slider(id=ids.HISTORY_SLIDER, min=-hours, max=0, step=0.25, value=0, marks=marks,
                   className="cb-slider", updatemode="mouseup"),
        html.Div(className="cb-replay-row", children=[
            dcc.Dropdown(id=ids.REPLAY_SPEED, clearable=False, value=60, searchable=False,
                         options=[{"label": f"{v}×", "value": v} for v in REPLAY_SPEEDS],
                         className="cb-dropdown cb-speed"),
            html.Button(t("replay.play", language), id=ids.REPLAY_PLAY, className="cb-button"),
            html.Button(t("replay.live", language), id=ids.REPLAY_LIVE, className="cb-button"),
        ]),
    ]


def controls_column(config: CityConfig, data: CityData, language: str) -> html.Aside:
    """The left column: what the map shows, where, and when."""
    top = data.boundaries[0] if data.boundaries else None
    outline_default = (f"boundary:{data.boundaries[-1].spec.level}"
                       if len(data.boundaries) > 1 else None)
    return html.Aside(className="cb-controls", children=[
        label("panel.hex_layer", language, html.H2),
        dcc.RadioItems(id=ids.HEX_LAYER, options=layer_options(language),
                       value=data.opening_layer(), className="cb-layer-radio",
                       inputClassName="cb-radio-input"),
        label("panel.metric", language, html.H2),
        dcc.Dropdown(id=ids.METRIC, clearable=False, className="cb-dropdown"),
        label("panel.overlays", language, html.H2),
        dcc.Checklist(id=ids.OVERLAYS, options=overlay_options(language),
                      value=[], className="cb-checklist"),
        label("panel.outlines", language, html.H2),
        dcc.Dropdown(id=ids.OUTLINE, value=outline_default,
                     options=[{"label": pick(language, zh, en), "value": key}
                              for key, zh, en in data.outline_choices()],
                     className="cb-dropdown"),
        label("panel.drill", language, html.H2),
        dcc.Dropdown(id=ids.DISTRICT, placeholder=t("panel.pick_district", language),
                     options=top.names() if top else [], className="cb-dropdown"),
        dcc.Dropdown(id=ids.SUBAREA, placeholder=t("panel.pick_unit", language),
                     options=[], className="cb-dropdown",
                     disabled=len(data.boundaries) < 2),
        html.Button(t("panel.back_to_city", language), id=ids.BACK_TO_CITY,
                    className="cb-button cb-back"),
        *replay_controls(config, language),
        html.Div(id=ids.MAP_STATUS, className="cb-map-status", role="status"),
    ])


def fit_view(bounds: tuple[float, float, float, float]) -> tuple[float, tuple[float, float]]:
    """Zoom and (lat, lon) centre that show ``bounds`` on a web-mercator map."""
    west, south, east, north = bounds

    def mercator_y(lat: float) -> float:
        lat = max(min(lat, 85.0), -85.0)
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    lon_span = max(east - west, 1e-6) / 360.0
    lat_span = max(mercator_y(north) - mercator_y(south), 1e-9) / (2 * math.pi)
    zoom = min(math.log2(FIT_WIDTH_PX / 512 / lon_span), math.log2(FIT_HEIGHT_PX / 512 / lat_span))
    center_y = (mercator_y(north) + mercator_y(south)) / 2
    center_lat = math.degrees(2 * math.atan(math.exp(center_y)) - math.pi / 2)
    return round(max(min(zoom, 16.0), 1.0), 2), (center_lat, (west + east) / 2)


def drill_to(data: CityData, trigger: Any, district: str | None, subarea: str | None
             ) -> tuple[Any, ...]:
    """(area, view, camera, revision, district) after a drill-down control changed.

    A district, then a sub-area, fits the map to it; Back (or nothing picked) shows
    the whole city; a sub-area list being reset changes nothing.
    """
    city = data.config.city
    city_view = {"zoom": city.zoom, "center": [city.center_lat, city.center_lon], "bbox": None}
    skip = (no_update,) * 5
    if trigger == ids.SUBAREA and not subarea and not district:
        return skip  # the sub-area list was reset
    if trigger == ids.BACK_TO_CITY or (not district and not subarea):
        return None, city_view, None, "city", None
    if subarea and len(data.boundaries) > 1:
        level = data.boundaries[1].spec.level
        name = subarea
    elif district:
        level = data.boundaries[0].spec.level
        name = district
    else:
        return skip
    boundary = data.boundary(level)
    bounds = boundary.bounds(name) if boundary is not None else None
    if bounds is None:
        return skip
    zoom, center = fit_view(bounds)
    view = {"zoom": zoom, "center": list(center), "bbox": list(bounds)}
    return {"level": level, "name": name}, view, None, f"{level}:{name}", no_update


# ------------------------------------------------------------------- callbacks
def register(app: Dash, services: Services) -> None:
    data, config = services.store, services.config

    @app.callback(
        Output(ids.LANGUAGE, "data"),
        Input(ids.LANGUAGE_BUTTON, "n_clicks"),
        State(ids.LANGUAGE, "data"),
        prevent_initial_call=True,
    )
    def toggle_language(_clicks: int | None, language: str) -> str:
        return pick(language, "en", "zh-CN")

    @app.callback(
        Output(ids.THEME, "data"),
        Input(ids.THEME_BUTTON, "n_clicks"),
        State(ids.THEME, "data"),
        prevent_initial_call=True,
    )
    def toggle_theme(_clicks: int | None, theme: str) -> str:
        return "light" if theme == "dark" else "dark"

    @app.callback(
        Output(ids.ROOT, "className"),
        Output(ids.THEME_BUTTON, "children"),
        Input(ids.THEME, "data"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.URL, "search"),
    )
    def apply_theme(theme: str, language: str, search: str | None) -> tuple[str, str]:
        """Theme class; ``?wall=1`` also hides the side panels (a wall has no mouse)."""
        other = "theme.light" if theme == "dark" else "theme.dark"
        wall = " cb-wall" if query_flag(search, "wall") else ""
        return f"cb-root theme-{theme}{wall}", t(other, language)

    @app.callback(
        Output({"type": ids.LABELS, "key": ALL}, "children"),
        Output(ids.LANGUAGE_BUTTON, "children"),
        Output(ids.TITLE, "children"),
        Output(ids.ROOT, "lang"),
        Output(ids.HEX_LAYER, "options"),
        Output(ids.OVERLAYS, "options"),
        Output(ids.DISTRICT, "placeholder"),
        Output(ids.SUBAREA, "placeholder"),
        Output(ids.BACK_TO_CITY, "children"),
        Output(ids.OUTLINE, "options"),
        Output(ids.REPLAY_PLAY, "children"),
        Output(ids.REPLAY_LIVE, "children"),
        Input(ids.LANGUAGE, "data"),
    )
    def translate(language: str) -> tuple[Any, ...]:
        keys = [item["id"]["key"] for item in ctx.outputs_list[0]]
        outlines = [{"label": pick(language, zh, en), "value": key}
                    for key, zh, en in data.outline_choices()]
        return (
            [t(key, language) for key in keys],
            t("lang.switch", language),
            pick(language, config.city.name_zh, config.city.name),
            language,
            layer_options(language),
            overlay_options(language),
            t("panel.pick_district", language),
            t("panel.pick_unit", language),
            t("panel.back_to_city", language),
            outlines,
            t("replay.play", language),
            t("replay.live", language),
        )

    @app.callback(
        Output(ids.METRIC, "options"),
        Output(ids.METRIC, "value"),
        Input(ids.HEX_LAYER, "value"),
        Input(ids.LANGUAGE, "data"),
        State(ids.METRIC, "value"),
    )
    def metric_choices(layer_id: str, language: str, current: str | None) -> tuple[Any, str]:
        metrics = LAYERS[layer_id].metrics(config.sources)
        options = [{"label": pick(language, m.title_zh, m.title_en), "value": m.name}
                   for m in metrics]
        names = [m.name for m in metrics]
        return options, current if current in names else names[0]

    @app.callback(
        Output(ids.SUBAREA, "options"),
        Output(ids.SUBAREA, "value"),
        Input(ids.DISTRICT, "value"),
    )
    def subarea_choices(district: str | None) -> tuple[list[str], None]:
        if len(data.boundaries) < 2 or not district:
            return [], None
        return data.boundaries[1].names(parent=district), None

    @app.callback(
        Output(ids.AREA, "data"),
        Output(ids.VIEW, "data", allow_duplicate=True),
        Output(ids.CAMERA, "data", allow_duplicate=True),
        Output(ids.REVISION, "data"),
        Output(ids.DISTRICT, "value"),
        Input(ids.DISTRICT, "value"),
        Input(ids.SUBAREA, "value"),
        Input(ids.BACK_TO_CITY, "n_clicks"),
        prevent_initial_call=True,
    )
    def drill(district: str | None, subarea: str | None, _back: int | None) -> tuple[Any, ...]:
        """Pick a district, then a sub-area: fit the map to it. Back: the whole city."""
        return drill_to(data, ctx.triggered_id, district, subarea)

    @app.callback(
        Output(ids.REPLAY, "data"),
        Output(ids.HISTORY_SLIDER, "value"),
        Input(ids.REPLAY_PLAY, "n_clicks"),
        Input(ids.REPLAY_LIVE, "n_clicks"),
        Input(ids.TICK, "n_intervals"),
        State(ids.HISTORY_SLIDER, "value"),
        State(ids.REPLAY_SPEED, "value"),
        State(ids.REPLAY, "data"),
        prevent_initial_call=True,
    )
    def replay(_play: int | None, _live: int | None, _tick: int | None, hours_back: float,
               speed: int, current: dict[str, Any] | None) -> tuple[Any, Any]:
        """Play the past from the slider's position at a chosen speed; then back to live."""
        now = data.clock.now()
        if ctx.triggered_id == ids.REPLAY_PLAY and hours_back < 0:
            start = now + pd.Timedelta(hours=float(hours_back))
            span = data.history_span()
            if span is not None:
                start = max(start, span[0])
            return {"start": start.isoformat(), "wall": time.time() * 1000,
                    "speed": float(speed)}, no_update
        if ctx.triggered_id == ids.REPLAY_LIVE:
            return None, 0
        if current and replay_moment(current, data) is None:
            return None, 0  # caught up with the present: live again
        return no_update, no_update
