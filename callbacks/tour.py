"""The exhibition tour: the map shows itself, step by step, with captions (``?tour=1``).

Steps come from the city config's ``[[tour]]`` tables. Each step sets the controls a
visitor would (layer, metric, overlays, district), so the tour exercises the same
paths as a person and needs no code of its own to draw anything.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, State, dcc, html, no_update

from callbacks import ids
from config.i18n import pick

if TYPE_CHECKING:
    from services import Services


def tour_components() -> list[Any]:
    """What the page needs for the tour: the URL, a timer, the state, a caption."""
    return [
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Interval(id=ids.TOUR_TICK, interval=1000, disabled=True),
        dcc.Store(id=ids.TOUR, data=None),
    ]


def caption_component() -> Any:
    return html.Div(id=ids.TOUR_CAPTION, className="cb-tour-caption", role="status")


def query_flag(search: str | None, name: str) -> bool:
    """True when ``?name=1`` (or ``true``/``yes``) is in the page's query string."""
    values = parse_qs((search or "").lstrip("?")).get(name, [])
    return bool(values) and values[-1].lower() in ("1", "true", "yes", "on")


def register(app: Dash, services: Services) -> None:
    steps = services.config.tour

    @app.callback(
        Output(ids.TOUR, "data"),
        Output(ids.TOUR_TICK, "disabled"),
        Input(ids.URL, "search"),
    )
    def start(search: str | None) -> tuple[Any, bool]:
        if not steps or not query_flag(search, "tour"):
            return None, True
        return {"step": -1, "until": 0.0}, False

    @app.callback(
        Output(ids.HEX_LAYER, "value", allow_duplicate=True),
        Output(ids.METRIC, "value", allow_duplicate=True),
        Output(ids.OVERLAYS, "value", allow_duplicate=True),
        Output(ids.DISTRICT, "value", allow_duplicate=True),
        Output(ids.TOUR, "data", allow_duplicate=True),
        Output(ids.TOUR_CAPTION, "children"),
        Input(ids.TOUR_TICK, "n_intervals"),
        Input(ids.LANGUAGE, "data"),
        State(ids.TOUR, "data"),
        prevent_initial_call=True,
    )
    def advance(_tick: int | None, language: str, tour: dict[str, Any] | None) -> tuple[Any, ...]:
        """Move to the next step when the current one's time is up; loop forever."""
        if not tour or not steps:
            return (no_update,) * 5 + ([],)
        index = int(tour["step"])
        if time.time() < float(tour["until"]) and index >= 0:
            step = steps[index]
            return (no_update,) * 5 + (caption(step, language, index),)
        index = (index + 1) % len(steps)
        step = steps[index]
        state = {"step": index, "until": time.time() + step.seconds}
        return (step.layer, step.metric if step.metric else no_update, list(step.overlays),
                step.district, state, caption(step, language, index))

    def caption(step: Any, language: str, index: int) -> list[Any]:
        return [html.Span(f"{index + 1}/{len(steps)}", className="cb-tour-step"),
                html.Span(pick(language, step.caption_zh, step.caption_en))]
