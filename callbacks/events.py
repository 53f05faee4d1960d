"""The Events feature: stats, department queues, the overdue list, an event's detail with
its audit trail and operator actions, the events of a cell, and the events overlay.

Components come from :mod:`callbacks.events_view` (pure functions of records); this
module reads the event pipeline (``services.events``, None when the city has no
``[events]``) and the signed-in user, and holds the callbacks. An operator's action
is :func:`perform_transition`, a plain function; the role is checked there on every
request, whatever the page showed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from callbacks import ids
from callbacks.common import Outcome, label, tab, triggered_value
from callbacks.events_view import (
    MAX_NOTE,
    cell_events_section,
    closed_since,
    event_detail,
    event_id_from_click,
    event_list,
    events_trace,
    priority_order,
    queues_table,
    start_of_day,
    stats_header,
)
from callbacks.signin import login_form, may_change, signed_in
from config.i18n import t
from geo.hexes import from_hex
from layers import events_layer
from ops.events.model import (
    STATUSES,
    ConflictError,
    Event,
    EventNotFound,
    PermissionDenied,
    TransitionError,
)
from ops.events.settings import EVENTS_SECTION
from ops.events.stats import summary

if TYPE_CHECKING:
    from config.city import CityConfig
    from ops.events.pipeline import EventPipeline
    from ops.events.settings import User
    from services import Services

#: Statuses an event can still leave: every change touches at least one of these.
ACTIVE_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s != "closed")
#: The value of the events overlay in the overlays checklist.
OVERLAY = "events"


# ------------------------------------------------------------------ pure helpers
def events_fingerprint(active: Iterable[Event], report_count: int, now: datetime) -> str:
    """A short digest that changes whenever what the events panels show changes.

    ``active`` are the events not yet closed: every transition, escalation and merge
    changes one of them (its version), every new event adds one or a report, and
    closing removes one. The overdue count and the city hour cover what changes with
    time alone (an event falling due, "overdue by" texts, "closed today").
    """
    events = sorted(active, key=lambda e: e.id)
    digest = hashlib.blake2b(digest_size=8)
    for event in events:
        digest.update(f"{event.id}:{event.version};".encode())
    overdue = sum(1 for e in events if e.is_overdue(now))
    hour = now.replace(minute=0, second=0, microsecond=0).isoformat()
    return f"{report_count}:{len(events)}:{overdue}:{hour}:{digest.hexdigest()}"


def read_fingerprint(pipeline: EventPipeline) -> str:
    """:func:`events_fingerprint` of the pipeline as it is now (one cheap read)."""
    return events_fingerprint(pipeline.events(status=ACTIVE_STATUSES),
                              pipeline.store.count_reports(), pipeline.now())


def detail_key(event: Event, now: datetime, user: User | None, language: str) -> list[Any]:
    """What the detail pane depends on; the same key means the same pane.

    For someone who may act, the pane holds a note being typed: it is redrawn only
    when the event itself changes. A read-only pane also follows the "overdue by"
    time, hour by hour.
    """
    key = [event.id, event.version, event.is_overdue(now),
           user.name if user else None, user.role if user else None, language]
    if not may_change(user) and event.is_overdue(now):
        key.append(int((now - event.due_at).total_seconds() // 3600))
    return key


def departments_for(pipeline: EventPipeline, event: Event) -> list[str]:
    """Departments an event can be dispatched to: the routing table's, the default one
    and the event's own."""
    settings = pipeline.settings
    names = {*settings.departments.values(), settings.default_department, event.department}
    return sorted(n for n in names if n)


def perform_transition(pipeline: EventPipeline, user: User | None, event_id: int, to: str,
                       expected_version: int | None, department: str | None = None,
                       note: str | None = "") -> Outcome:
    """Move an event for a signed-in user; the role is checked here, whatever the page showed.

    Never raises for the expected refusals: a conflict (someone else changed the event
    since ``expected_version``), a transition the lifecycle does not allow, a missing
    event or a user who may not change events each come back as an :class:`Outcome`.
    """
    if not may_change(user):
        return Outcome(False, "events.forbidden")
    assert user is not None
    note = (note or "").strip()[:MAX_NOTE]
    department = department.strip() if isinstance(department, str) and department.strip() \
        else None
    try:
        before = pipeline.get(event_id)
        event = pipeline.transition(event_id, to, actor=user.name, role=user.role,
                                    department=department if to == "dispatched" else None,
                                    note=note, expected_version=expected_version)
    except ConflictError as exc:
        return Outcome(False, "events.conflict", {"id": event_id, "expected": exc.expected,
                                                  "actual": exc.actual})
    except TransitionError as exc:
        return Outcome(False, "events.refused", {"reason": str(exc)})
    except EventNotFound:
        return Outcome(False, "events.missing", {"id": event_id})
    except PermissionDenied:
        return Outcome(False, "events.forbidden")
    return Outcome(True, "events.done", {"id": event.id, "before": before.status,
                                         "after": event.status})


def value_for(states: Sequence[Mapping[str, Any]], event_id: int) -> Any:
    """The value of the pattern-matched field (department, note) that belongs to ``event_id``."""
    return next((s.get("value") for s in states if s["id"].get("event") == event_id), None)


def in_bbox(events: Iterable[Event], bbox: Sequence[float] | None) -> list[Event]:
    """Events inside (west, south, east, north); all of them when ``bbox`` is None."""
    if bbox is None:
        return list(events)
    west, south, east, north = bbox
    return [e for e in events if south <= e.lat <= north and west <= e.lon <= east]


def next_queue(department: str | None, current: str | None) -> str | None:
    """The queue to show after a click on ``department`` ("" is "show all"): clicking the
    shown one again goes back to the overdue list."""
    department = department or None
    return None if department == current else department


def picked_event(triggered: Any, click: Mapping[str, Any] | None) -> int | None:
    """The event picked by a list button (its pattern id) or a map click, if any."""
    if triggered == ids.MAP:
        return event_id_from_click(click)
    if triggered_value() and isinstance(triggered, Mapping):
        return int(triggered["event"])
    return None


# ------------------------------------------------------------------- views
def overview(pipeline: EventPipeline, department: str | None, zone: ZoneInfo,
             language: str) -> tuple[Any, Any, Any]:
    """Stats, department queues and the overdue list (or one department's queue)."""
    now = pipeline.now()
    events = pipeline.store.all_events()
    stats = summary(events, now, overdue_limit=0)
    closed_today = closed_since(events, start_of_day(now, zone))
    if department:
        chosen = priority_order([e for e in events
                                 if e.department == department and e.is_open], now)
        title: Any = html.Span([
            t("events.queue_of", language, department=department), " ",
            html.Button(t("events.show_all", language), n_clicks=0, className="ops-link",
                        id={"type": ids.QUEUE_PICK, "department": ""})])
    else:
        chosen = priority_order([e for e in events if e.is_overdue(now)], now)
        title = t("events.overdue_list", language)
    return (stats_header(stats, closed_today, language),
            queues_table(stats["departments"], department, language),
            event_list(chosen, len(chosen), title, now, zone, language,
                       "queue" if department else "overdue"))


def detail_view(pipeline: EventPipeline, event_id: int | None, user: User | None,
                shown: list[Any] | None, zone: ZoneInfo, language: str) -> tuple[Any, Any]:
    """The selected event and its :func:`detail_key`; ``no_update`` when ``shown`` already."""
    if event_id is None:
        return html.P(t("events.pick_hint", language), className="cb-hint"), None
    try:
        event, reports, audit = pipeline.detail(int(event_id))
    except EventNotFound:
        return html.P(t("events.missing", language, id=event_id), className="cb-warn"), None
    now = pipeline.now()
    key = detail_key(event, now, user, language)
    if key == shown:
        return no_update, no_update
    return event_detail(event, reports, audit, now=now, zone=zone, language=language,
                        role=user.role if user else None,
                        departments=departments_for(pipeline, event)), key


def overlay_trace(pipeline: EventPipeline, zone: ZoneInfo, language: str,
                  bbox: Sequence[float] | None, limit: int, public: bool = False) -> dict[str, Any]:
    """The events overlay of the map, left to the viewport ``bbox`` when zoomed in.

    For the ``public`` audience the trace is there (so updates can patch it) but empty:
    an event marker is a person's report at an exact place.
    """
    shown = [] if public else in_bbox(pipeline.store.all_events(), bbox)
    return events_trace(shown, pipeline.now(), zone, language, limit=limit)


# ------------------------------------------------------------------- layout
def stores() -> list[Any]:
    """Per-user state of the Events tab (in the browser, never in the server)."""
    return [
        dcc.Store(id=ids.SELECTED_EVENT, data=None),
        dcc.Store(id=ids.QUEUE_FILTER, data=None),
        dcc.Store(id=ids.DETAIL_KEY, data=None),
    ]


def events_tab_children(config: CityConfig, language: str) -> list[Any]:
    hint = [] if config.section(EVENTS_SECTION) is not None else [
        label("events.not_configured", language, html.P, className="cb-hint")]
    return [
        *hint,
        login_form(language),
        html.Div(id=ids.EVENTS_STATS, className="ops-stats"),
        html.Div(id=ids.EVENT_MESSAGE, className="ops-message", role="status"),
        html.Div(id=ids.EVENT_DETAIL, className="ops-detail-wrap"),
        html.Div(id=ids.EVENTS_QUEUES, className="ops-queues"),
        html.Div(id=ids.EVENTS_LIST, className="ops-list"),
    ]


def events_tab(config: CityConfig, language: str) -> dcc.Tab:
    return tab("tab.events", "events", language,
               [html.Div(id=ids.EVENTS_PANEL, className="ops-events",
                         children=events_tab_children(config, language))])


def overlay_option(language: str) -> dict[str, Any]:
    """The events entry of the overlays checklist."""
    layer = events_layer()
    symbol = f"{layer.symbol} " if layer is not None else ""
    return {"label": f"{symbol}{t('overlay.events', language)}", "value": OVERLAY}


# -------------------------------------------------------------------- callbacks
def register(app: Dash, services: Services) -> None:
    zone = ZoneInfo(services.config.city.timezone)

    @app.callback(
        Output(ids.EVENTS_STATS, "children"),
        Output(ids.EVENTS_QUEUES, "children"),
        Output(ids.EVENTS_LIST, "children"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.QUEUE_FILTER, "data"),
        Input(ids.SESSION_USER, "data"),
    )
    def show_overview(_fingerprint: Any, tab: str, language: str, department: str | None,
                      _session: Any) -> tuple[Any, Any, Any]:
        if tab != "events":
            return no_update, no_update, no_update
        if services.events is None:
            return [], [], []
        if services.audience() == "public":  # events are people: aggregates only
            return html.P(t("events.public", language), className="cb-hint"), [], []
        return overview(services.events, department, zone, language)

    @app.callback(
        Output(ids.QUEUE_FILTER, "data"),
        Input({"type": ids.QUEUE_PICK, "department": ALL}, "n_clicks"),
        State(ids.QUEUE_FILTER, "data"),
        prevent_initial_call=True,
    )
    def pick_queue(_clicks: list[int], current: str | None) -> Any:
        """A department row shows its queue; clicking it again (or "show all") goes back."""
        if not triggered_value() or not isinstance(ctx.triggered_id, Mapping):
            return no_update
        return next_queue(ctx.triggered_id.get("department"), current)

    @app.callback(
        Output(ids.SELECTED_EVENT, "data"),
        Output(ids.PANEL_TABS, "value"),
        Output(ids.EVENT_MESSAGE, "children"),
        Input({"type": ids.EVENT_PICK, "list": ALL, "event": ALL}, "n_clicks"),
        Input(ids.MAP, "clickData"),
        prevent_initial_call=True,
    )
    def pick_event(_clicks: list[int], click: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        """An event clicked in a list or on the map: select it and show the Events tab."""
        event_id = picked_event(ctx.triggered_id, click)
        if event_id is None or services.audience() == "public":
            return no_update, no_update, no_update
        return event_id, "events", ""

    @app.callback(
        Output(ids.EVENT_DETAIL, "children"),
        Output(ids.DETAIL_KEY, "data"),
        Input(ids.SELECTED_EVENT, "data"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.OPS_CHANGED, "data"),
        Input(ids.SESSION_USER, "data"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.PANEL_TABS, "value"),
        State(ids.DETAIL_KEY, "data"),
    )
    def detail(event_id: int | None, _fingerprint: Any, _changed: int, _session: Any,
               language: str, tab: str, shown: list[Any] | None) -> tuple[Any, Any]:
        """The selected event; redrawn only when it (or who looks at it) changed."""
        if tab != "events":
            return no_update, no_update
        if services.events is None:
            return [], None
        if services.audience() == "public":  # detail (free text, places) needs a viewer
            return html.P(t("events.public", language), className="cb-hint"), None
        user = signed_in(services) if event_id is not None else None
        return detail_view(services.events, event_id, user, shown, zone, language)

    @app.callback(
        Output(ids.EVENT_MESSAGE, "children", allow_duplicate=True),
        Output(ids.OPS_CHANGED, "data"),
        Input({"type": ids.EVENT_ACTION, "event": ALL, "to": ALL, "version": ALL}, "n_clicks"),
        State({"type": ids.EVENT_DEPARTMENT, "event": ALL}, "value"),
        State({"type": ids.EVENT_NOTE, "event": ALL}, "value"),
        State(ids.LANGUAGE, "data"),
        State(ids.OPS_CHANGED, "data"),
        prevent_initial_call=True,
    )
    def act(_clicks: list[int], _departments: list[str | None], _notes: list[str | None],
            language: str, changed: int | None) -> tuple[Any, Any]:
        """An operator's button: the role is checked again here, never taken from the page."""
        target = ctx.triggered_id
        if not triggered_value() or not isinstance(target, Mapping) or services.events is None:
            return no_update, no_update
        event_id = int(target["event"])
        outcome = perform_transition(
            services.events, signed_in(services), event_id, str(target["to"]),
            int(target["version"]), department=value_for(ctx.states_list[0], event_id),
            note=value_for(ctx.states_list[1], event_id))
        return outcome.message(language), (changed or 0) + 1

    @app.callback(
        Output(ids.CELL_EVENTS, "children"),
        Input(ids.SELECTED_CELL, "data"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
    )
    def cell_events(selected: str | None, language: str, _fingerprint: Any, tab: str) -> Any:
        """The events inside the selected cell (an event's res-10 cell has it as parent)."""
        events = services.events
        if events is None or not selected:
            return no_update if ctx.triggered_id == ids.OPS_FINGERPRINT else []
        if tab != "place":
            return no_update
        if services.audience() == "public":
            return []
        try:
            cell = from_hex(selected)
        except ValueError:
            return []
        return cell_events_section(events.events(cell=cell), events.now(), zone, language)

    # The detail sits above the lists: bring it into view when an event is picked.
    app.clientside_callback(
        """function(children) {
            const card = document.getElementById('event-card');
            const panel = card && card.closest('.cb-panel');
            if (!panel) { return; }
            const tabs = panel.querySelector('.cb-tabs');
            const top = card.getBoundingClientRect().top - panel.getBoundingClientRect().top
                - (tabs ? tabs.offsetHeight : 0) - 8;
            if (top < 0 || top > panel.clientHeight / 2) {
                panel.scrollTo({top: panel.scrollTop + top});
            }
        }""",
        Input(ids.EVENT_DETAIL, "children"),
        prevent_initial_call=True,
    )
