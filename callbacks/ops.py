"""The operations panel: events (queues, overdue list, detail, operator actions), sign-in,
vital signs, alerts (with Acknowledge), the events of a cell, and the events and
alert-cell overlays of the map. Glue only; see callbacks.ops_layout.

The event pipeline lives at ``app.server.extensions["citybrain_events"]`` and the
vital signs at ``["citybrain_signs"]`` (both attached after the callbacks are
registered, and absent when the city config has no ``[events]`` / no
``[[indicators]]``), so every callback looks them up when it runs.

Who may act is decided on the server, on every request, from the Flask session
(:meth:`ops.auth.Auth.user_for_request`): the ``SESSION_USER`` store in the browser
only says which name to show. A forged callback request from a viewer is refused
like one from nobody.

Ticks: one cheap fingerprint per tick of what the page shows (:func:`events_fingerprint`,
:func:`signs_fingerprint`, :func:`alerts_fingerprint`) in the ``OPS_FINGERPRINT``
store; the panels, the cell's events and the map's overlay traces listen to it, so
when nothing changed nothing is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import ALL, Dash, Input, Output, State, ctx, html, no_update

from callbacks import ids
from callbacks.ops_layout import (
    MAX_NOTE,
    alerts_panel,
    alerts_traces,
    cell_events_section,
    closed_since,
    data_attrs,
    event_detail,
    event_id_from_click,
    event_list,
    events_trace,
    priority_order,
    queues_table,
    signed_in_text,
    signs_panel,
    start_of_day,
    stats_header,
)
from config.i18n import t
from geo.hexes import from_hex
from ops.events.model import (
    CHANGE_ROLES,
    STATUSES,
    SYSTEM,
    ConflictError,
    Event,
    EventNotFound,
    PermissionDenied,
    TransitionError,
    summary,
)

if TYPE_CHECKING:
    from flask import Flask

    from ops.auth import Auth
    from ops.events.pipeline import EventPipeline
    from ops.events.settings import User
    from ops.signs.alerts import Alert
    from ops.signs.indicators import IndicatorReading
    from ops.signs.service import VitalSigns
    from store.city import CityData

EVENTS_KEY = "citybrain_events"
AUTH_KEY = "citybrain_auth"  # ops.auth.EXTENSION_KEY, without importing Flask here
#: Where the app keeps its :class:`ops.signs.service.VitalSigns` (absent: no vital signs).
SIGNS_KEY = "citybrain_signs"
#: Statuses an event can still leave: every change touches at least one of these.
ACTIVE_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s != "closed")
#: Overlay values drawn from the operations state (not from a layer).
OPS_OVERLAYS = ("events", "alerts")


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


def signs_fingerprint(readings: Sequence[IndicatorReading]) -> str:
    """Changes when any vital sign's time, value, status or forecast changes."""
    digest = hashlib.blake2b(digest_size=8)
    for reading in readings:
        predicted = reading.forecast.mean[-1:] if reading.forecast is not None else ()
        digest.update(repr((reading.name, reading.time.isoformat(), reading.value,
                            reading.status, reading.baseline, tuple(predicted),
                            reading.stale, reading.error)).encode())
    return digest.hexdigest()


def alerts_fingerprint(active: Sequence[Alert], cleared: Sequence[Alert]) -> str:
    """Changes when an alert appears, clears, is seen again, changes severity or is acknowledged."""
    digest = hashlib.blake2b(digest_size=8)
    for alert in (*active, *cleared):
        digest.update(repr((alert.id, alert.state, alert.severity, alert.count,
                            alert.acked_by, alert.cells)).encode())
    return f"{len(active)}:{len(cleared)}:{digest.hexdigest()}"


def next_fingerprint(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Any:
    """``new`` when it differs from what the browser holds, else ``no_update``."""
    return no_update if current is not None and dict(current) == dict(new) else dict(new)


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


@dataclass(frozen=True)
class Outcome:
    """What an operator action did: an i18n message key and its values."""

    ok: bool
    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def text(self, language: str) -> str:
        values = dict(self.values)
        for name in ("before", "after"):
            if name in values:
                values[name] = t(f"status.{values[name]}", language)
        return t(self.key, language, **values)


def may_change(user: User | None) -> bool:
    return user is not None and user.role in CHANGE_ROLES and user.role != SYSTEM


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


def perform_ack(signs: VitalSigns, user: User | None, alert_id: str) -> Outcome:
    """Acknowledge an alert for a signed-in operator (the role is checked here)."""
    from ops.signs.indicators import reference_time

    if not may_change(user):
        return Outcome(False, "alerts.forbidden")
    assert user is not None
    try:
        signs.book.ack(alert_id, user.name, reference_time(signs.data))
    except KeyError:
        return Outcome(False, "alerts.missing")
    return Outcome(True, "alerts.done")


def session_user(auth: Auth | None) -> User | None:
    """The user signed in in this browser (Flask session), judged on the server."""
    from flask import has_request_context

    if auth is None or not has_request_context():
        return None
    return auth.user_for_request()


def value_for(states: Sequence[Mapping[str, Any]], event_id: int) -> Any:
    """The value of the pattern-matched field (department, note) that belongs to ``event_id``."""
    return next((s.get("value") for s in states if s["id"].get("event") == event_id), None)


def triggered_value() -> Any:
    """The new value of the input that fired (None for a component that just appeared)."""
    return ctx.triggered[0]["value"] if ctx.triggered else None


# -------------------------------------------------------------- reads for views
def read_fingerprint(pipeline: EventPipeline) -> str:
    return events_fingerprint(pipeline.events(status=ACTIVE_STATUSES),
                              pipeline.store.count_reports(), pipeline.now())


def in_bbox(events: Iterable[Event], bbox: Sequence[float] | None) -> list[Event]:
    """Events inside (west, south, east, north); all of them when ``bbox`` is None."""
    if bbox is None:
        return list(events)
    west, south, east, north = bbox
    return [e for e in events if south <= e.lat <= north and west <= e.lon <= east]


def overlay_traces(server: Flask, data: CityData, overlays: Sequence[str], language: str,
                   bbox: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Map traces of the operations overlays that are switched on (for the map callback).

    Events outside the map's viewport (``bbox``, when zoomed in) are left out: they
    could not be seen, and the trace is sent again whenever events change.
    """
    traces: list[dict[str, Any]] = []
    pipeline = server.extensions.get(EVENTS_KEY)
    if "events" in overlays and pipeline is not None:
        zone = ZoneInfo(data.config.city.timezone)
        traces.append(events_trace(in_bbox(pipeline.store.all_events(), bbox), pipeline.now(),
                                   zone, language, limit=data.config.map.max_points))
    signs = server.extensions.get(SIGNS_KEY)
    if "alerts" in overlays and signs is not None:
        signs.current()  # evaluates the rules when the cached result is old
        traces.extend(alerts_traces(signs.book.active(), language))
    return traces


# -------------------------------------------------------------------- callbacks
def register(app: Dash, data: CityData) -> None:
    config = data.config
    zone = ZoneInfo(config.city.timezone)
    server = app.server

    def pipeline() -> EventPipeline | None:
        return server.extensions.get(EVENTS_KEY)

    def vital_signs() -> VitalSigns | None:
        return server.extensions.get(SIGNS_KEY)

    def signed_in() -> User | None:
        """Who is signed in, from the session, on every request (never from the page)."""
        auth = server.extensions.get(AUTH_KEY)
        events = pipeline()
        return session_user(auth if auth is not None else events.auth if events else None)

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
        shown = set(overlays or ())
        fingerprint = dict(current or {})
        events = pipeline()
        if events is not None and (tab == "events" or bool(cell) or "events" in shown):
            fingerprint["events"] = read_fingerprint(events)
        signs = vital_signs()
        if signs is not None and (tab in ("signs", "alerts") or "alerts" in shown):
            readings, _ = signs.current()
            fingerprint["signs"] = signs_fingerprint(readings)
            fingerprint["alerts"] = alerts_fingerprint(signs.book.active(),
                                                       signs.book.cleared())
        return next_fingerprint(current, fingerprint)

    @app.callback(
        Output(ids.SESSION_USER, "data"),
        Output(ids.LOGIN_PASSWORD, "value"),
        Input(ids.LOGIN_BUTTON, "n_clicks"),
        Input(ids.LOGIN_PASSWORD, "n_submit"),
        Input(ids.LOGOUT_BUTTON, "n_clicks"),
        State(ids.LOGIN_NAME, "value"),
        State(ids.LOGIN_PASSWORD, "value"),
    )
    def sign_in(_login: int, _submit: int, _logout: int, name: str | None,
                password: str | None) -> tuple[Any, Any]:
        """Sign in (into the Flask session), sign out, or on page load say who is signed in."""
        events = pipeline()
        if events is None:
            return None, no_update
        if ctx.triggered_id in (ids.LOGIN_BUTTON, ids.LOGIN_PASSWORD):
            user = events.auth.authenticate((name or "").strip(), password or "")
            if user is None:
                return {"user": None, "failed": True}, ""
            events.auth.login(user)
            return {"user": {"name": user.name, "role": user.role}, "failed": False}, ""
        if ctx.triggered_id == ids.LOGOUT_BUTTON:
            events.auth.logout()
            return {"user": None, "failed": False}, ""
        user = signed_in()
        return {"user": {"name": user.name, "role": user.role} if user else None,
                "failed": False}, no_update

    @app.callback(
        Output(ids.LOGIN_STATUS, "children"),
        Output(ids.LOGIN_FORM, "className"),
        Output(ids.LOGOUT_BUTTON, "className"),
        Output(ids.LOGIN_NAME, "placeholder"),
        Output(ids.LOGIN_PASSWORD, "placeholder"),
        Input(ids.SESSION_USER, "data"),
        Input(ids.LANGUAGE, "data"),
    )
    def show_session(session: dict[str, Any] | None, language: str) -> tuple[Any, ...]:
        user = (session or {}).get("user")
        hidden = "ops-hidden" if pipeline() is None else ""
        if user:
            status: Any = html.Span(signed_in_text(user["name"], user["role"], language),
                                    id="signed-in-as", **data_attrs({"data-role": user["role"]}))
            form, logout = "ops-login-fields ops-hidden", "cb-button ops-logout"
        else:
            status = html.Span(t("login.failed", language), className="ops-bad") \
                if (session or {}).get("failed") else t("login.title", language)
            form, logout = f"ops-login-fields {hidden}".strip(), "cb-button ops-logout ops-hidden"
        return (status, form, logout, t("login.name", language), t("login.password", language))

    @app.callback(
        Output(ids.EVENTS_STATS, "children"),
        Output(ids.EVENTS_QUEUES, "children"),
        Output(ids.EVENTS_LIST, "children"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.QUEUE_FILTER, "data"),
    )
    def overview(_fingerprint: Any, tab: str, language: str, department: str | None
                 ) -> tuple[Any, Any, Any]:
        """Stats, department queues and the overdue list (or one department's queue)."""
        if tab != "events":
            return no_update, no_update, no_update
        events_pipeline = pipeline()
        if events_pipeline is None:
            return [], [], []
        now = events_pipeline.now()
        events = events_pipeline.store.all_events()
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
        department = ctx.triggered_id.get("department") or None
        return None if department == current else department

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
        if ctx.triggered_id == ids.MAP:
            event_id = event_id_from_click(click)
        elif triggered_value() and isinstance(ctx.triggered_id, Mapping):
            event_id = int(ctx.triggered_id["event"])
        else:
            event_id = None
        if event_id is None:
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
        events = pipeline()
        if events is None:
            return [], None
        if event_id is None:
            return html.P(t("events.pick_hint", language), className="cb-hint"), None
        try:
            event, reports, audit = events.detail(int(event_id))
        except EventNotFound:
            return html.P(t("events.missing", language, id=event_id), className="cb-warn"), None
        now = events.now()
        user = signed_in()
        key = detail_key(event, now, user, language)
        if key == shown:
            return no_update, no_update
        return event_detail(event, reports, audit, now=now, zone=zone, language=language,
                            role=user.role if user else None,
                            departments=departments_for(events, event)), key

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
        if not triggered_value() or not isinstance(target, Mapping):
            return no_update, no_update
        events = pipeline()
        if events is None:
            return no_update, no_update
        event_id = int(target["event"])
        outcome = perform_transition(
            events, signed_in(), event_id, str(target["to"]), int(target["version"]),
            department=value_for(ctx.states_list[0], event_id),
            note=value_for(ctx.states_list[1], event_id))
        message = html.Span(outcome.text(language),
                            className="ops-ok" if outcome.ok else "ops-bad",
                            **data_attrs({"data-outcome": outcome.key}))
        return message, (changed or 0) + 1

    @app.callback(
        Output(ids.CELL_EVENTS, "children"),
        Input(ids.SELECTED_CELL, "data"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
    )
    def cell_events(selected: str | None, language: str, _fingerprint: Any, tab: str) -> Any:
        """The events inside the selected cell (an event's res-10 cell has it as parent)."""
        events = pipeline()
        if events is None or not selected:
            return no_update if ctx.triggered_id == ids.OPS_FINGERPRINT else []
        if tab != "place":
            return no_update
        try:
            cell = from_hex(selected)
        except ValueError:
            return []
        return cell_events_section(events.events(cell=cell), events.now(), zone, language)

    @app.callback(
        Output(ids.SIGNS_PANEL, "children"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.THEME, "data"),
    )
    def show_signs(_fingerprint: Any, tab: str, language: str, theme: str) -> Any:
        """Each vital sign: value, status, sparkline with forecast band, change vs baseline."""
        if tab != "signs":
            return no_update
        signs = vital_signs()
        if signs is None:
            return html.P(t("signs.none", language), className="cb-hint")
        readings, _ = signs.current()
        return signs_panel(readings, language, theme, zone)

    @app.callback(
        Output(ids.ALERTS_PANEL, "children"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.SESSION_USER, "data"),
        Input(ids.OPS_CHANGED, "data"),
    )
    def show_alerts(_fingerprint: Any, tab: str, language: str, _session: Any,
                    _changed: int) -> Any:
        """Active alerts (Acknowledge for a signed-in operator) and recently cleared ones."""
        if tab != "alerts":
            return no_update
        signs = vital_signs()
        if signs is None:
            return html.P(t("alerts.not_configured", language), className="cb-hint")
        signs.current()
        titles = {i.name: i.title(language) for i in signs.indicators}
        return alerts_panel(signs.book.active(), signs.book.cleared(),
                            can_ack=may_change(signed_in()), language=language,
                            zone=zone, indicator_titles=titles)

    @app.callback(
        Output(ids.ALERT_MESSAGE, "children"),
        Output(ids.OPS_CHANGED, "data", allow_duplicate=True),
        Input({"type": ids.ALERT_ACK, "alert": ALL}, "n_clicks"),
        State(ids.LANGUAGE, "data"),
        State(ids.OPS_CHANGED, "data"),
        prevent_initial_call=True,
    )
    def acknowledge(_clicks: list[int], language: str, changed: int | None) -> tuple[Any, Any]:
        """An operator acknowledges an alert; the role is checked again here."""
        target = ctx.triggered_id
        signs = vital_signs()
        if not triggered_value() or not isinstance(target, Mapping) or signs is None:
            return no_update, no_update
        outcome = perform_ack(signs, signed_in(), str(target["alert"]))
        return (html.Span(outcome.text(language), className="ops-ok" if outcome.ok else "ops-bad",
                          **data_attrs({"data-outcome": outcome.key})), (changed or 0) + 1)

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


__all__ = ["ACTIVE_STATUSES", "OPS_OVERLAYS", "Outcome", "SIGNS_KEY", "alerts_fingerprint",
           "detail_key", "events_fingerprint", "next_fingerprint", "overlay_traces",
           "perform_ack", "perform_transition", "register", "signs_fingerprint"]
