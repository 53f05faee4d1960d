"""The page shell: header, the controls column, the one map, the right panel's tabs and
the footer, assembled from the features' layout pieces.

The layout holds no figure (a large figure in ``app.layout`` costs seconds to
serialise); the map callback draws it on load. Texts that change with the language
carry pattern-matching ids ``{"type": "label", "key": <message key>}`` and one
callback (:mod:`callbacks.controls`) translates them all.
"""

from __future__ import annotations

from dash import dcc, html

from callbacks import ids
from callbacks.common import label
from callbacks.controls import controls_column
from callbacks.map import map_section
from callbacks.ops_panel import ops_stores, ops_tabs
from callbacks.panels import footer, place_tab
from callbacks.tour import tour_components
from config.city import CityConfig
from config.i18n import pick, t
from store.city import CityData


def page_stores(config: CityConfig) -> list[dcc.Store]:
    """Per-user state of the map page (in the browser, never in the server)."""
    city = config.city
    return [
        dcc.Store(id=ids.LANGUAGE, data=city.language, storage_type="local"),
        dcc.Store(id=ids.THEME, data=city.theme, storage_type="local"),
        dcc.Store(id=ids.VIEW, data={"zoom": city.zoom, "center": [city.center_lat,
                                                                 city.center_lon],
                                     "bbox": None}),
        dcc.Store(id=ids.CAMERA, data=None),
        dcc.Store(id=ids.SELECTED_CELL, data=None),
        dcc.Store(id=ids.AREA, data=None),
        dcc.Store(id=ids.REVISION, data="city"),
        dcc.Store(id=ids.RENDERED, data=None),
    ]


def header(config: CityConfig, language: str) -> html.Header:
    """The city's name, the clock, and the theme and language buttons."""
    city = config.city
    return html.Header(className="cb-header", children=[
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
    ])


def build_layout(config: CityConfig, data: CityData) -> html.Div:
    """The whole page for a city, in its configured language and theme."""
    language = config.city.language
    return html.Div(
        id=ids.ROOT,
        className=f"cb-root theme-{config.city.theme}",
        lang=language,
        children=[
            *page_stores(config),
            *tour_components(),
            dcc.Store(id=ids.REPLAY, data=None),
            *ops_stores(),
            header(config, language),
            html.Main(className="cb-body", children=[
                controls_column(config, data, language),
                map_section(),
                html.Aside(className="cb-panel", children=[
                    dcc.Tabs(id=ids.PANEL_TABS, value="place", className="cb-tabs",
                             content_className="cb-tab-content",
                             children=[place_tab(language), *ops_tabs(config, language)]),
                ]),
            ]),
            footer(config),
            dcc.Interval(id=ids.TICK, interval=int(config.live.refresh * 1000)),
        ],
    )
