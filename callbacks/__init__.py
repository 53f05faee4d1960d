"""Dash callbacks, one module per feature, each with its layout pieces and ``register(app, services)``.

- :mod:`callbacks.layout`: the page shell that assembles the features' pieces
- :mod:`callbacks.controls`: layer, metric, overlays, drill-down, replay, language, theme
- :mod:`callbacks.map`: the map (viewport, drawing, picking a cell)
- :mod:`callbacks.panels`: the Place tab (cell and area profiles), sources and clock
- :mod:`callbacks.tour`: the exhibition tour (``?tour=1``)
- :mod:`callbacks.signin`: operator sign-in and who may act
- :mod:`callbacks.events`: the Events tab, a cell's events, the events overlay
- :mod:`callbacks.signs`: the Vital signs tab
- :mod:`callbacks.alerts`: the Alerts tab and the alert-cells overlay
- :mod:`callbacks.ops_panel`: what those three share (stores, tabs, the tick fingerprint)

Component ids are in :mod:`callbacks.ids`; small shared pieces in :mod:`callbacks.common`;
malformed callback requests are refused by :mod:`callbacks.guard`.
"""

from __future__ import annotations

from dash import Dash

from services import Services


def register_all(app: Dash, services: Services) -> None:
    """Register every feature's callbacks on ``app``.

    Callbacks read the optional services (``events``, ``signs``, ``auth``) when they
    run, so a city without them registers the same callbacks.
    """
    from callbacks import alerts, controls, events, map, ops_panel, panels, signin, signs, tour
    from callbacks.guard import install_dispatch_guard

    install_dispatch_guard(app)
    for feature in (controls, map, panels, tour, ops_panel, signin, events, signs, alerts):
        feature.register(app, services)
