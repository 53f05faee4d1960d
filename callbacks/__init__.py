"""Dash callbacks, one module per feature, each with ``register(app, data)``."""

from __future__ import annotations

from dash import Dash

from store.city import CityData


def register_all(app: Dash, data: CityData) -> None:
    from callbacks import controls, map, ops, panels, tour

    controls.register(app, data)
    map.register(app, data)
    panels.register(app, data)
    tour.register(app, data)
    ops.register(app, data)
