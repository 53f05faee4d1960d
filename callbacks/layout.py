"""The page: header, controls, the one map, the place panel, sources and attributions.

The layout holds no figure (a large figure in ``app.layout`` costs seconds to
serialise); the map callback draws it on load. Texts that change with the language
carry pattern-matching ids ``{"type": "label", "key": <message key>}`` and one
callback translates them all.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from callbacks import ids
from callbacks.ops_layout import ops_stores, ops_tabs
from callbacks.tour import caption_component, tour_components
from config.city import CityConfig
from config.i18n import pick, t
from layers import DEFAULT_LAYER, LAYERS, events_layer
from store.city import CityData


def label(key: str, language: str, tag: Any = html.Span, **kwargs: Any) -> Any:
    return tag(t(key, language), id={"type": ids.LABELS, "key": key}, **kwargs)


def layer_options(language: str) -> list[dict[str, Any]]:
    return [{"label": html.Span([html.B(layer.symbol, className="layer-symbol"),
                                 f" {layer.title_en if not language.startswith('zh') else ''}"],
                                className=f"layer-option layer-{layer.id}"),
             "value": layer.id} for layer in LAYERS.values()]


def overlay_options(language: str) -> list[dict[str, Any]]:
    options = []
    for layer in LAYERS.values():
        if layer.overlay != "points" or layer.overlay_role is None:
            continue
        role = layer.roles[layer.overlay_role]
        options.append({"label": f"{layer.symbol} {pick(language, role.title_zh, role.title_en)}",
                        "value": layer.id})
    events = events_layer()
    symbol = f"{events.symbol} " if events is not None else ""
    options.append({"label": f"{symbol}{t('overlay.events', language)}",
                    "value": "events"})
    options.append({"label": f"⚠ {t('overlay.alerts', language)}", "value": "alerts"})
    return options


REPLAY_SPEEDS = (1, 10, 60, 600)


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


def build_layout(config: CityConfig, data: CityData) -> html.Div:
    language = config.city.language
    city = config.city
    top = data.boundaries[0] if data.boundaries else None
    outline_default = (f"boundary:{data.boundaries[-1].spec.level}"
                       if len(data.boundaries) > 1 else None)
    return html.Div(
        id=ids.ROOT,
        className=f"cb-root theme-{city.theme}",
        lang=language,
        children=[
            dcc.Store(id=ids.LANGUAGE, data=language, storage_type="local"),
            dcc.Store(id=ids.THEME, data=city.theme, storage_type="local"),
            dcc.Store(id=ids.VIEW, data={"zoom": city.zoom, "center": [city.center_lat,
                                                                     city.center_lon],
                                         "bbox": None}),
            dcc.Store(id=ids.CAMERA, data=None),
            dcc.Store(id=ids.SELECTED_CELL, data=None),
            dcc.Store(id=ids.AREA, data=None),
            dcc.Store(id=ids.REVISION, data="city"),
            dcc.Store(id=ids.RENDERED, data=None),
            *tour_components(),
            dcc.Store(id=ids.REPLAY, data=None),
            *ops_stores(),
            html.Header(className="cb-header", children=[
                html.Div(className="cb-brand", children=[
                    html.Span("城市大脑", className="cb-logo"),
                    html.H1(pick(language, city.name_zh, city.name), id=ids.TITLE),
                    label("app.subtitle", language, html.Span, className="cb-subtitle"),
                ]),
                html.Div(className="cb-header-tools", children=[
                    html.Span(id=ids.CLOCK, className="cb-clock"),
                    html.Button(t("theme.light" if city.theme == "dark" else "theme.dark",
                                  language), id=ids.THEME_BUTTON, className="cb-button"),
                    html.Button(t("lang.switch", language), id=ids.LANGUAGE_BUTTON,
                                className="cb-button"),
                ]),
            ]),
            html.Main(className="cb-body", children=[
                html.Aside(className="cb-controls", children=[
                    label("panel.hex_layer", language, html.H2),
                    dcc.RadioItems(id=ids.HEX_LAYER, options=layer_options(language),
                                   value=DEFAULT_LAYER, className="cb-layer-radio",
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
                ]),
                html.Section(className="cb-map-wrap", children=[
                    html.Div(id=ids.STALE_BANNER, className="cb-stale-banner", role="alert"),
                    caption_component(),
                    dcc.Graph(id=ids.MAP, className="cb-map",
                              config={"displaylogo": False, "scrollZoom": True,
                                      "showSendToCloud": False,
                                      "displayModeBar": False, "responsive": True},
                              style={"height": "100%", "width": "100%"}),
                ]),
                html.Aside(className="cb-panel", children=[
                    dcc.Tabs(id=ids.PANEL_TABS, value="place", className="cb-tabs",
                             content_className="cb-tab-content", children=[
                        dcc.Tab(label=label("tab.place", language), value="place",
                                className="cb-tab", selected_className="cb-tab-selected",
                                children=[
                            html.Div(id=ids.AREA_PANEL, className="cb-area"),
                            html.Div(id=ids.PROFILE, className="cb-profile",
                                     children=html.P(t("panel.profile_hint", language),
                                                     className="cb-hint")),
                            html.Div(id=ids.CELL_EVENTS, className="ops-cell-events"),
                        ]),
                        *ops_tabs(config, language),
                    ]),
                ]),
            ]),
            html.Footer(className="cb-footer", children=[
                html.Div(id=ids.SOURCES, className="cb-sources"),
                html.Div(id=ids.ATTRIBUTION, className="cb-attribution",
                         children=" · ".join(config.attributions)),
            ]),
            dcc.Interval(id=ids.TICK, interval=int(config.live.refresh * 1000)),
        ],
    )
