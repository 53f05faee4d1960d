"""What the operations features (events, vital signs, alerts) share on the page: their
stores and tabs, the map overlays they add, and one fingerprint per tick.

Ticks: one cheap fingerprint per tick of what the page shows (events, signs, alerts)
in the ``OPS_FINGERPRINT`` store; the panels, the cell's events and the map's overlay
traces listen to it, so when nothing changed nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import Dash, Input, Output, State, dcc, no_update

from callbacks import alerts, events, ids, signin, signs
from callbacks.alerts import alerts_fingerprint
from callbacks.events import read_fingerprint
from callbacks.signs import signs_fingerprint

if TYPE_CHECKING:
    from config.city import CityConfig
    from services import Services

#: Overlay values drawn from the operations state (not from a layer).
OPS_OVERLAYS = (events.OVERLAY, alerts.OVERLAY)


# ---------------------------------------------------------------------- layout
def ops_stores() -> list[Any]:
    """Per-user state of the operations panel (in the browser, never in the server)."""
    return [
        dcc.Store(id=ids.OPS_FINGERPRINT, data=None),
        dcc.Store(id=ids.OPS_CHANGED, data=0),
        *signin.stores(),
        *events.stores(),
    ]


def ops_tabs(config: CityConfig, language: str) -> list[dcc.Tab]:
    """The Vital signs, Alerts and Events tabs of the right panel (Place is the layout's)."""
    return [signs.signs_tab(language), alerts.alerts_tab(language),
            events.events_tab(config, language)]


def overlay_options(language: str) -> list[dict[str, Any]]:
    """The operations entries of the overlays checklist, after the layers' own."""
    return [events.overlay_option(language), alerts.overlay_option(language)]


# ------------------------------------------------------------------ fingerprint
def next_fingerprint(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Any:
    """``new`` when it differs from what the browser holds, else ``no_update``."""
    return no_update if current is not None and dict(current) == dict(new) else dict(new)


def page_fingerprint(services: Services, current: Mapping[str, Any] | None, tab: str,
                     overlays: Sequence[str] | None, cell: str | None) -> dict[str, Any]:
    """The fingerprints of what the page shows now; parts not shown keep their old value."""
    shown = set(overlays or ())
    fingerprint = dict(current or {})
    if services.events is not None and (tab == "events" or bool(cell)
                                        or events.OVERLAY in shown):
        fingerprint["events"] = read_fingerprint(services.events)
    vital_signs = services.signs
    if vital_signs is not None and (tab in ("signs", "alerts") or alerts.OVERLAY in shown):
        readings, _ = vital_signs.current()
        fingerprint["signs"] = signs_fingerprint(readings)
        fingerprint["alerts"] = alerts_fingerprint(vital_signs.book.active(),
                                                   vital_signs.book.cleared())
    return fingerprint


# ---------------------------------------------------------------------- overlays
def overlay_traces(services: Services, overlays: Sequence[str], language: str,
                   bbox: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Map traces of the operations overlays that are switched on (for the map callback).

    Events outside the map's viewport (``bbox``, when zoomed in) are left out: they
    could not be seen, and the trace is sent again whenever events change.
    """
    traces: list[dict[str, Any]] = []
    if events.OVERLAY in overlays and services.events is not None:
        zone = ZoneInfo(services.config.city.timezone)
        # Events are people at exact places: the public gets the trace, empty.
        traces.append(events.overlay_trace(services.events, zone, language, bbox,
                                           limit=services.config.map.max_points,
                                           public=services.audience() == "public"))
    if alerts.OVERLAY in overlays and services.signs is not None:
        traces.extend(alerts.overlay_traces(services.signs, language))
    return traces


# -------------------------------------------------------------------- callbacks
def register(app: Dash, services: Services) -> None:
    @app.callback(
        Output(ids.OPS_FINGERPRINT, "data"),
        Input(ids.TICK, "n_intervals"),
        Input(ids.OPS_CHANGED, "data"),
        State(ids.OPS_FINGERPRINT, "data"),
        State(ids.PANEL_TABS, "value"),
        State(ids.OVERLAYS, "value"),
        State(ids.SELECTED_CELL, "data"),
    )
    def watch(_tick: int | None, _changed: int, current: dict[str, Any] | None, tab: str,
              overlays: list[str] | None, cell: str | None) -> Any:
        """One cheap read per tick of what the page shows now (events, signs, alerts)."""
        return next_fingerprint(current, page_fingerprint(services, current, tab, overlays,
                                                          cell))
