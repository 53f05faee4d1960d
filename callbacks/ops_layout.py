"""The operations panel: events as Dash components and map traces, from plain records.

Everything here is a pure function of records from :mod:`ops.events.model` (no pipeline,
no Flask session): :mod:`callbacks.ops` reads the pipeline and the signed-in user,
then calls these to build the Events tab, the events section of a cell's profile and
the events overlay of the map.

Text from the public (descriptions, categories, notes, department names) is only
ever passed as a Dash *text child*, which React escapes, so nothing a caller typed
is interpreted as HTML or markdown. In map hovers, which plotly renders with its own
small HTML subset, the same text is escaped first (:func:`hover_text`).
"""

from __future__ import annotations

import base64
import html as html_text
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dash import dcc, html

from callbacks import ids
from config.city import CityConfig
from config.i18n import t
from geo.hexes import cell_ring
from ops.events.model import (
    CHANGE_ROLES,
    STATUSES,
    SYSTEM,
    TRANSITIONS,
    AuditEntry,
    Event,
    Report,
)
from ops.signs.alerts import Alert
from ops.signs.forecast import Forecast
from ops.signs.indicators import IndicatorReading
from ops.signs.settings import Thresholds

MarkerKind = Literal["open", "overdue", "closed"]
#: Map colours of event markers: open amber, overdue red, recently closed grey.
EVENT_COLOURS: dict[MarkerKind, str] = {"open": "#f5a524", "overdue": "#ef3b4f",
                                        "closed": "#8b95a7"}
EVENT_SIZES: dict[MarkerKind, float] = {"open": 8.0, "overdue": 9.5, "closed": 6.0}
#: Closed (and resolved) events stay on the map this long after they were done.
RECENT_CLOSED = timedelta(hours=24)
#: Longest event list in the panel (the rest is counted, not drawn).
LIST_LIMIT = 50
CELL_LIMIT = 20
REPORT_LIMIT = 20
#: As the JSON API: longer notes are refused there, cut here.
MAX_NOTE = 2000
EVENTS_TRACE_UID = "overlay-events"
TIME_FORMAT = "%Y-%m-%d %H:%M"


def _label(key: str, language: str, tag: Any = html.Span, **kwargs: Any) -> Any:
    """A fixed text that the app's translate callback switches with the language."""
    return tag(t(key, language), id={"type": ids.LABELS, "key": key}, **kwargs)


# ----------------------------------------------------------------------- helpers
def data_attrs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``data-*`` attributes for a component (stable hooks for tests and wall scripts)."""
    return dict(values)


def allowed_actions(status: str, role: str | None) -> tuple[str, ...]:
    """The next statuses a user of ``role`` may move an event in ``status`` to.

    Only people with a role that may change events (the operator) get any; the
    viewer, the exhibition wall and anonymous users get none.

    >>> allowed_actions("dispatched", "operator"), allowed_actions("dispatched", "viewer")
    (('in_progress', 'dispatched'), ())
    """
    if role is None or role == SYSTEM or role not in CHANGE_ROLES:
        return ()
    return tuple(TRANSITIONS.get(status, ()))


def action_key(current: str, to: str) -> str:
    """The i18n key of the button that moves an event from ``current`` to ``to``."""
    if to == "dispatched":
        return {"received": "events.action.dispatch", "dispatched": "events.action.redispatch"
                }.get(current, "events.action.hand_back")
    if to == "in_progress":
        return "events.action.reopen" if current == "resolved" else "events.action.start"
    return {"resolved": "events.action.resolve", "closed": "events.action.close"}.get(
        to, f"status.{to}")


def marker_kind(event: Event, now: datetime) -> MarkerKind:
    if event.is_overdue(now):
        return "overdue"
    return "open" if event.is_open else "closed"


def done_at(event: Event) -> datetime:
    """When a finished (resolved or closed) event was last finished."""
    return event.closed_at or event.resolved_at or event.updated_at


def format_time(moment: datetime | None, zone: ZoneInfo) -> str:
    return "—" if moment is None else moment.astimezone(zone).strftime(TIME_FORMAT)


def format_span(hours: float | None, language: str) -> str:
    """A duration for people: minutes under an hour, hours under two days, then days."""
    if hours is None:
        return "—"
    if hours < 1:
        return t("events.minutes", language, n=max(0, int(round(hours * 60))))
    if hours < 48:
        number = f"{hours:.1f}".removesuffix(".0") if hours < 10 else f"{hours:.0f}"
        return t("events.hours", language, n=number)
    return t("events.days", language, n=f"{hours / 24:,.0f}")


def hours_overdue(event: Event, now: datetime) -> float:
    return (now - event.due_at).total_seconds() / 3600.0


def status_text(status: str, language: str) -> str:
    return t(f"status.{status}", language)


def hover_text(text: str | None) -> str:
    """Public text made inert for plotly's hover labels (which understand a little HTML)."""
    return html_text.escape(text or "", quote=False)


def closed_since(events: Iterable[Event], since: datetime) -> int:
    return sum(1 for e in events if e.closed_at is not None and e.closed_at >= since)


def start_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def priority_order(events: Iterable[Event], now: datetime) -> list[Event]:
    """Overdue first (most overdue first), then open by due time, then done, latest first."""
    def key(event: Event) -> tuple[int, float]:
        if event.is_overdue(now) or event.is_open:
            return (0 if event.is_overdue(now) else 1, event.due_at.timestamp())
        return (2, -done_at(event).timestamp())

    return sorted(events, key=key)


# ------------------------------------------------------------------ map overlay
def overlay_events(events: Iterable[Event], now: datetime,
                   recent: timedelta = RECENT_CLOSED) -> list[tuple[Event, MarkerKind]]:
    """Events to draw and how: every open one, and those finished within ``recent``.

    Ordered closed → open → overdue, so that overdue markers are drawn on top.
    """
    rank = {"closed": 0, "open": 1, "overdue": 2}
    chosen = []
    for event in events:
        kind = marker_kind(event, now)
        if kind == "closed" and done_at(event) < now - recent:
            continue
        chosen.append((event, kind))
    chosen.sort(key=lambda pair: (rank[pair[1]], pair[0].due_at, pair[0].id))
    return chosen


def events_trace(events: Iterable[Event], now: datetime, zone: ZoneInfo, language: str,
                 limit: int | None = None, recent: timedelta = RECENT_CLOSED) -> dict[str, Any]:
    """The events overlay: one ``scattermap`` trace, a circle per event coloured by state.

    ``customdata`` rows are plain lists ``["event:<id>", category, department, status,
    reported, due]`` (a click on a marker selects the event). With more than
    ``limit`` events the finished ones go first, then the least urgent open ones.
    """
    chosen = overlay_events(events, now, recent)
    if limit is not None and len(chosen) > limit:
        chosen = chosen[len(chosen) - limit:]
    overdue_word = t("events.overdue", language)
    customdata = []
    for event, kind in chosen:
        state = status_text(event.status, language)
        if kind == "overdue":
            state += f" · {overdue_word}"
        customdata.append([f"event:{event.id}", hover_text(event.category),
                           hover_text(event.department), state,
                           format_time(event.received_at, zone), format_time(event.due_at, zone)])
    hover = (f"<b>政 %{{customdata[1]}}</b><br>{t('events.department', language)}: "
             f"%{{customdata[2]}}<br>%{{customdata[3]}}<br>{t('events.reported', language)}: "
             f"%{{customdata[4]}}<br>{t('events.due', language)}: %{{customdata[5]}}"
             "<extra></extra>")
    return {
        "type": "scattermap",
        "uid": EVENTS_TRACE_UID,
        "name": t("overlay.events", language),
        "mode": "markers",
        "lat": [round(event.lat, 5) for event, _ in chosen],
        "lon": [round(event.lon, 5) for event, _ in chosen],
        "customdata": customdata,
        "marker": {"size": [EVENT_SIZES[kind] for _, kind in chosen],
                   "color": [EVENT_COLOURS[kind] for _, kind in chosen], "opacity": 0.92},
        "hovertemplate": hover,
        "showlegend": False,
    }


def event_id_from_click(click: Mapping[str, Any] | None) -> int | None:
    """The event id behind a map click on the events overlay, else None."""
    if not click or not click.get("points"):
        return None
    custom = click["points"][0].get("customdata")
    if isinstance(custom, list) and custom and isinstance(custom[0], str) \
            and custom[0].startswith("event:"):
        try:
            return int(custom[0].split(":", 1)[1])
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------- the tabs
def ops_stores() -> list[Any]:
    """Per-user state of the operations panel (in the browser, never in the server)."""
    return [
        dcc.Store(id=ids.OPS_FINGERPRINT, data=None),
        dcc.Store(id=ids.OPS_CHANGED, data=0),
        dcc.Store(id=ids.SESSION_USER, data=None),
        dcc.Store(id=ids.SELECTED_EVENT, data=None),
        dcc.Store(id=ids.QUEUE_FILTER, data=None),
        dcc.Store(id=ids.DETAIL_KEY, data=None),
    ]


def login_form(language: str) -> html.Div:
    """Sign-in (name + password) and sign-out; the callback shows one or the other."""
    return html.Div(className="ops-login", children=[
        html.Div(id=ids.LOGIN_STATUS, className="ops-login-status"),
        html.Div(id=ids.LOGIN_FORM, className="ops-login-fields", children=[
            dcc.Input(id=ids.LOGIN_NAME, type="text", placeholder=t("login.name", language),
                      autoComplete="username", className="ops-input", n_submit=0),
            dcc.Input(id=ids.LOGIN_PASSWORD, type="password",
                      placeholder=t("login.password", language),
                      autoComplete="current-password", className="ops-input", n_submit=0),
            html.Button(_label("login.submit", language), id=ids.LOGIN_BUTTON, n_clicks=0,
                        className="cb-button ops-login-button"),
        ]),
        html.Button(_label("login.logout", language), id=ids.LOGOUT_BUTTON, n_clicks=0,
                    className="cb-button ops-logout ops-hidden"),
    ])


def events_tab_children(config: CityConfig, language: str) -> list[Any]:
    hint = [] if config.events is not None else [
        _label("events.not_configured", language, html.P, className="cb-hint")]
    return [
        *hint,
        login_form(language),
        html.Div(id=ids.EVENTS_STATS, className="ops-stats"),
        html.Div(id=ids.EVENT_MESSAGE, className="ops-message", role="status"),
        html.Div(id=ids.EVENT_DETAIL, className="ops-detail-wrap"),
        html.Div(id=ids.EVENTS_QUEUES, className="ops-queues"),
        html.Div(id=ids.EVENTS_LIST, className="ops-list"),
    ]


def _tab(key: str, value: str, language: str, children: list[Any]) -> dcc.Tab:
    return dcc.Tab(label=_label(key, language), value=value, className="cb-tab",
                   selected_className="cb-tab-selected", children=children)


def ops_tabs(config: CityConfig, language: str) -> list[dcc.Tab]:
    """The Vital signs, Alerts and Events tabs of the right panel (Place is the layout's)."""
    return [
        _tab("tab.signs", "signs", language,
             [html.Div(id=ids.SIGNS_PANEL, className="ops-signs")]),
        _tab("tab.alerts", "alerts", language,
             [html.Div(id=ids.ALERT_MESSAGE, className="ops-message", role="status"),
              html.Div(id=ids.ALERTS_PANEL, className="ops-alerts")]),
        _tab("tab.events", "events", language,
             [html.Div(id=ids.EVENTS_PANEL, className="ops-events",
                       children=events_tab_children(config, language))]),
    ]


# ------------------------------------------------------------------ events tab
def signed_in_text(name: str | None, role: str | None, language: str) -> str:
    if not name:
        return ""
    return t("login.as", language, name=name, role=t(f"role.{role}", language))


def span_parts(hours: float | None, language: str) -> tuple[str, str]:
    """:func:`format_span` as (number, unit), for tiles that show the unit small."""
    text = format_span(hours, language)
    number, _, unit = text.partition(" ")
    return number, unit


def _stat(key: str, value: str | tuple[str, str], label_key: str, language: str,
          tone: str = "") -> html.Div:
    number, unit = (value, "") if isinstance(value, str) else value
    return html.Div(className=f"ops-stat {tone}".strip(), children=[
        html.Span([number, html.Small(unit, className="ops-stat-unit") if unit else None],
                  className="ops-stat-value", **data_attrs({"data-stat": key})),
        html.Span(t(label_key, language), className="ops-stat-label"),
    ])


def stats_header(summary: Mapping[str, Any], closed_today: int, language: str) -> html.Div:
    """Open, overdue, closed today, median and 90th percentile time to close."""
    close = summary.get("time_to_close", {})
    overdue = int(summary.get("overdue", 0))
    return html.Div(className="ops-stat-row", children=[
        _stat("open", f"{int(summary.get('open', 0)):,}", "events.open", language),
        _stat("overdue", f"{overdue:,}", "events.overdue", language,
              "ops-bad" if overdue else ""),
        _stat("closed_today", f"{closed_today:,}", "events.closed_today", language),
        _stat("median_close", span_parts(close.get("median_hours"), language),
              "events.median_close", language),
        _stat("p90_close", span_parts(close.get("p90_hours"), language),
              "events.p90_close", language),
    ])


def _status_bar(by_status: Mapping[str, int], language: str) -> html.Div:
    return html.Div(className="ops-bar", children=[
        html.Span(className=f"ops-bar-part ops-status-{status}",
                  style={"flexGrow": by_status[status]},
                  title=f"{status_text(status, language)}: {by_status[status]:,}")
        for status in STATUSES if by_status.get(status)
    ])


def queues_table(queues: Sequence[Mapping[str, Any]], selected: str | None,
                 language: str) -> list[Any]:
    """A queue per department: open and overdue counts and a bar of counts by status.

    A row is clickable: the event list then shows that department's open events.
    """
    head = html.Tr([html.Th(t("events.department", language)),
                    html.Th(t("events.open", language), className="cb-num"),
                    html.Th(t("events.overdue", language), className="cb-num"),
                    html.Th(t("status.closed", language), className="cb-num"), html.Th("")])
    rows = []
    for queue in queues:
        department = str(queue["department"])
        rows.append(html.Tr(
            id={"type": ids.QUEUE_PICK, "department": department}, n_clicks=0,
            className="ops-queue-row" + (" ops-selected" if department == selected else ""),
            children=[
                html.Td(department, className="ops-queue-name"),
                html.Td(f"{queue['open']:,}", className="cb-num"),
                html.Td(f"{queue['overdue']:,}",
                        className="cb-num" + (" ops-bad" if queue["overdue"] else "")),
                html.Td(f"{queue['by_status'].get('closed', 0):,}", className="cb-num"),
                html.Td(_status_bar(queue["by_status"], language), className="ops-bar-cell"),
            ]))
    return [html.H2(t("events.queues", language)),
            html.Table([html.Thead(head), html.Tbody(rows)], className="ops-queue-table")]


def event_button(event: Event, now: datetime, zone: ZoneInfo, language: str,
                 list_name: str, selected: int | None = None) -> html.Button:
    """One event in a list; clicking it selects it (pattern id ``EVENT_PICK``)."""
    kind = marker_kind(event, now)
    if kind == "overdue":
        when = t("events.overdue_by", language, span=format_span(hours_overdue(event, now),
                                                                 language))
    elif kind == "open":
        when = f"{t('events.due', language)} {format_time(event.due_at, zone)}"
    else:
        when = format_time(done_at(event), zone)
    return html.Button(
        id={"type": ids.EVENT_PICK, "list": list_name, "event": event.id}, n_clicks=0,
        className=f"ops-event ops-{kind}" + (" ops-selected" if event.id == selected else ""),
        **data_attrs({"data-event": str(event.id), "data-status": event.status}),
        children=[
            html.Span(f"#{event.id}", className="ops-event-id"),
            html.Span(status_text(event.status, language),
                      className=f"ops-chip ops-status-{event.status}"),
            html.Span(event.category, className="ops-event-category"),
            html.Span(event.department, className="ops-event-dept"),
            html.Span(when, className="ops-event-when"),
        ])


def event_list(events: Sequence[Event], total: int, title: str, now: datetime,
               zone: ZoneInfo, language: str, list_name: str,
               selected: int | None = None) -> list[Any]:
    """A titled list of at most :data:`LIST_LIMIT` events, saying how many more exist."""
    shown = list(events[:LIST_LIMIT])
    body: list[Any] = [event_button(e, now, zone, language, list_name, selected) for e in shown]
    if not shown:
        body = [html.P(t("events.none", language), className="cb-hint")]
    elif total > len(shown):
        body.append(html.P(t("events.more", language, n=f"{total - len(shown):,}"),
                           className="cb-muted"))
    return [html.H2(title), html.Div(body, className="ops-event-list",
                                     **data_attrs({"data-list": list_name, "data-total": str(total)}))]


def _audit_line(entry: AuditEntry, zone: ZoneInfo, language: str) -> html.Li:
    change = t(f"audit.{entry.action}", language)
    if entry.from_status and entry.from_status != entry.to_status:
        change += (f" {status_text(entry.from_status, language)} → "
                   f"{status_text(entry.to_status, language)}")
    elif entry.action in ("receive", "import"):
        change += f" → {status_text(entry.to_status, language)}"
    return html.Li(className="ops-audit-entry",
                   **data_attrs({"data-seq": str(entry.seq), "data-action": entry.action,
                      "data-to": entry.to_status}),
                   children=[
        html.Div(className="ops-audit-head", children=[
            html.Span(format_time(entry.at, zone), className="ops-time"),
            html.Span(f"{entry.actor} ({entry.role})", className="ops-actor"),
        ]),
        html.Div([html.Span(change), *([html.Span(f" · {entry.department}",
                                                  className="cb-muted")]
                                       if entry.department else [])]),
        html.Div(entry.note, className="ops-text ops-audit-note") if entry.note else None,
    ])


def action_form(event: Event, role: str | None, departments: Sequence[str],
                language: str) -> html.Div:
    """Buttons for the allowed next states (operators only), a department for a dispatch
    and a note; everyone else reads that the event is read-only for them.

    Each button's id carries the version shown, so a change made meanwhile by someone
    else is refused as a conflict instead of being overwritten.
    """
    actions = allowed_actions(event.status, role)
    if not actions:
        if role is not None and role in CHANGE_ROLES:
            return html.Div(className="ops-actions ops-final")  # closed: nothing left to do
        return html.Div(_label("events.read_only", language, html.P, className="cb-hint"),
                        className="ops-actions ops-read-only")
    def button(to: str) -> html.Button:
        return html.Button(t(action_key(event.status, to), language),
                           id={"type": ids.EVENT_ACTION, "event": event.id, "to": to,
                               "version": event.version},
                           n_clicks=0, className=f"cb-button ops-action ops-to-{to}",
                           **data_attrs({"data-to": to}))

    controls: list[Any] = [
        dcc.Textarea(id={"type": ids.EVENT_NOTE, "event": event.id},
                     placeholder=t("events.note", language), maxLength=MAX_NOTE,
                     className="ops-note", value=""),
        html.Div([button(to) for to in actions if to != "dispatched"], className="ops-buttons"),
    ]
    if "dispatched" in actions:
        # A re-dispatch must name another department; a first dispatch may keep the routed one.
        choices = [d for d in departments if d != event.department] \
            if event.status == "dispatched" else list(departments)
        default = event.department if event.department in choices else \
            (choices[0] if choices else None)
        controls.append(html.Div(className="ops-dispatch", children=[
            html.Label(t("events.dispatch_to", language), className="ops-field"),
            dcc.Dropdown(id={"type": ids.EVENT_DEPARTMENT, "event": event.id},
                         options=[{"label": d, "value": d} for d in choices], value=default,
                         clearable=False, className="cb-dropdown ops-department"),
            button("dispatched"),
        ]))
    return html.Div(controls, className="ops-actions")


def event_detail(event: Event, reports: Sequence[Report], audit: Sequence[AuditEntry], *,
                 now: datetime, zone: ZoneInfo, language: str, role: str | None,
                 departments: Sequence[str]) -> html.Div:
    """One event: its state, description, merged reports, audit trail and actions."""
    kind = marker_kind(event, now)
    chips: list[Any] = [html.Span(status_text(event.status, language),
                                  className=f"ops-chip ops-status-{event.status}",
                                  id="event-status", **data_attrs({"data-status": event.status}))]
    if kind == "overdue":
        chips.append(html.Span(t("events.overdue_by", language,
                                 span=format_span(hours_overdue(event, now), language)),
                               className="ops-chip ops-bad"))
    if event.escalation:
        chips.append(html.Span(t("events.escalation", language, n=event.escalation),
                               className="ops-chip ops-warn"))
    facts = [
        ("events.department", event.department),
        ("events.reported", format_time(event.received_at, zone)),
        ("events.due", format_time(event.due_at, zone)),
        ("events.channel", event.channel),
    ]
    shown_reports = list(reports[:REPORT_LIMIT])
    report_items: list[Any] = [html.Li(className="ops-report", children=[
        html.Span(format_time(r.reported_at, zone), className="ops-time"),
        html.Span(f" {r.channel} · {r.category}", className="cb-muted"),
        html.Div(r.description, className="ops-text"),
    ]) for r in shown_reports]
    if len(reports) > len(shown_reports):
        report_items.append(html.Li(t("events.more", language,
                                      n=f"{len(reports) - len(shown_reports):,}"),
                                    className="cb-muted"))
    return html.Div(className=f"ops-detail ops-{kind}", id="event-card",
                    **data_attrs({"data-event": str(event.id), "data-version": str(event.version),
                       "data-status": event.status}),
                    children=[
        html.H3([html.Span(f"#{event.id} ", className="ops-event-id"),
                 html.Span(event.category, className="ops-event-category")]),
        html.Div(chips, className="ops-chips"),
        html.Table(html.Tbody([html.Tr([html.Th(t(key, language)), html.Td(value)])
                               for key, value in facts]), className="cb-metrics ops-facts"),
        html.H4(t("events.description", language)),
        html.P(event.description or "—", className="ops-text ops-description",
               id="event-description"),
        action_form(event, role, departments, language),
        html.H4(t("events.reports", language, n=event.report_count)),
        html.Ul(report_items, className="ops-reports"),
        html.H4(t("events.audit", language)),
        html.Ol([_audit_line(a, zone, language) for a in audit], className="ops-audit",
                id="event-audit"),
    ])


# ---------------------------------------------------------------- cell profile
def cell_events_section(events: Sequence[Event], now: datetime, zone: ZoneInfo,
                        language: str) -> html.Section:
    """The events of one place, for the cell profile: counts, then the most urgent."""
    ordered = priority_order(events, now)
    open_count = sum(1 for e in events if e.is_open)
    overdue = sum(1 for e in events if e.is_overdue(now))
    shown = ordered[:CELL_LIMIT]
    items: list[Any] = [event_button(e, now, zone, language, "cell") for e in shown]
    if len(ordered) > len(shown):
        items.append(html.P(t("events.more", language, n=f"{len(ordered) - len(shown):,}"),
                            className="cb-muted"))
    return html.Section(className="cb-layer-section layer-government ops-cell-section",
                        id="profile-events", children=[
        html.H3([html.B("政", className="layer-symbol"), f" {t('events.in_cell', language)}"]),
        html.P(t("events.in_cell_counts", language, open=f"{open_count:,}",
                 overdue=f"{overdue:,}", total=f"{len(events):,}"),
               className="cb-muted", **data_attrs({"data-open": str(open_count),
                                        "data-overdue": str(overdue),
                                        "data-total": str(len(events))})),
        html.Div(items or [html.P(t("events.none", language), className="cb-hint")],
                 className="ops-event-list"),
    ])


# ------------------------------------------------------------------ vital signs
#: Colours of the sparkline image (an <img> cannot see the page's CSS variables).
SPARK_COLOURS: dict[str, dict[str, str]] = {
    "dark": {"line": "#38bdf8", "band": "rgba(56,189,248,0.22)", "mean": "#7dd3fc",
             "now": "rgba(138,160,191,0.55)", "ok": "#34d399", "warn": "#fbbf24",
             "alarm": "#f87171", "unknown": "#8b95a7"},
    "light": {"line": "#0369a1", "band": "rgba(3,105,161,0.18)", "mean": "#0284c7",
              "now": "rgba(76,93,117,0.5)", "ok": "#047857", "warn": "#b45309",
              "alarm": "#b91c1c", "unknown": "#64748b"},
}
SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 240, 52, 3.0


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def sparkline_svg(times: Sequence[datetime], values: Sequence[float], *,
                  forecast: Forecast | None = None, thresholds: Thresholds | None = None,
                  status: str = "ok", theme: str = "dark", width: int = SPARK_WIDTH,
                  height: int = SPARK_HEIGHT) -> str:
    """A sparkline as SVG text: the series, its forecast band and mean ahead, the
    thresholds as dashed lines and the current value as a dot in the status colour.

    Unknown values (NaN) break the line instead of being drawn as zero. The SVG holds
    numbers only (no text), so it is safe to show as an image.
    """
    colours = SPARK_COLOURS.get(theme, SPARK_COLOURS["dark"])
    stamps = [_ns(t) for t in times]
    ahead = [_ns(t) for t in forecast.times] if forecast is not None else []
    xs = stamps + ahead
    ys = [v for v in values if _finite(v)]
    if forecast is not None:
        ys += [v for v in (*forecast.lower, *forecast.upper, *forecast.mean) if _finite(v)]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" preserveAspectRatio="none">')
    if not xs or not ys:
        mid = height / 2
        return (head + f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" '
                f'stroke="{colours["unknown"]}" stroke-dasharray="3 3"/></svg>')
    low, high = min(ys), max(ys)
    spread = (high - low) or max(abs(high), 1.0)
    levels = []
    if thresholds is not None:
        for name in ("warn", "alarm"):
            level = getattr(thresholds, name)
            # A level far outside the data would flatten the line: drawn only when near.
            if _finite(level) and low - spread <= level <= high + spread:
                levels.append((name, float(level)))
                low, high = min(low, level), max(high, level)
    if high == low:
        low, high = low - 1.0, high + 1.0
    x0, x1 = min(xs), max(xs)
    span_x = (x1 - x0) or 1.0

    def x(stamp: float) -> float:
        return round(SPARK_PAD + (stamp - x0) / span_x * (width - 2 * SPARK_PAD), 1)

    def y(value: float) -> float:
        return round(height - SPARK_PAD - (value - low) / (high - low) * (height - 2 * SPARK_PAD), 1)

    parts = [head]
    for name, level in levels:
        parts.append(f'<line x1="0" y1="{y(level)}" x2="{width}" y2="{y(level)}" '
                     f'stroke="{colours[name]}" stroke-width="1" stroke-dasharray="4 3"/>')
    last = next(((s, v) for s, v in zip(reversed(stamps), reversed(values), strict=True)
                 if _finite(v)), None)
    if forecast is not None and ahead:
        band = [(a, lo, up) for a, lo, up in zip(ahead, forecast.lower, forecast.upper,
                                                 strict=True) if _finite(lo) and _finite(up)]
        start = [(last[0], last[1], last[1])] if last else []
        band = start + band
        if len(band) > 1:
            outline = [f"{x(a)},{y(up)}" for a, _, up in band] + \
                [f"{x(a)},{y(lo)}" for a, lo, _ in reversed(band)]
            parts.append(f'<polygon points="{" ".join(outline)}" fill="{colours["band"]}"/>')
        means = ([(last[0], last[1])] if last else []) + \
            [(a, m) for a, m in zip(ahead, forecast.mean, strict=True) if _finite(m)]
        if len(means) > 1:
            parts.append(f'<polyline points="{" ".join(f"{x(a)},{y(m)}" for a, m in means)}" '
                         f'fill="none" stroke="{colours["mean"]}" stroke-width="1.5" '
                         'stroke-dasharray="3 2"/>')
    if last is not None and ahead:
        parts.append(f'<line x1="{x(last[0])}" y1="0" x2="{x(last[0])}" y2="{height}" '
                     f'stroke="{colours["now"]}" stroke-width="1"/>')
    segment: list[str] = []
    segments: list[list[str]] = []
    for stamp, value in zip(stamps, values, strict=True):
        if _finite(value):
            segment.append(f"{x(stamp)},{y(value)}")
        elif segment:
            segments.append(segment)
            segment = []
    if segment:
        segments.append(segment)
    for points in segments:
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{colours["line"]}"/>')
        else:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" '
                         f'stroke="{colours["line"]}" stroke-width="1.8" '
                         'stroke-linejoin="round"/>')
    if last is not None:
        parts.append(f'<circle cx="{x(last[0])}" cy="{y(last[1])}" r="3" '
                     f'fill="{colours.get(status, colours["unknown"])}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _ns(moment: datetime) -> float:
    return moment.timestamp() * 1e9


def svg_data_uri(svg: str) -> str:
    """An SVG as a ``data:`` URL for an <img> (which never runs scripts or fetches)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def format_value(value: float | None, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if _finite(value) else "—"


def change_text(change_pct: float | None, baseline_kind: str, language: str
                ) -> tuple[str, str]:
    """(text, CSS class) of the change against the baseline: ``↑ 15% vs rolling mean``."""
    if baseline_kind == "none" or not _finite(change_pct):
        return "", ""
    assert change_pct is not None
    against = t(f"signs.baseline.{baseline_kind}", language)
    if abs(change_pct) < 0.05:
        return f"→ 0% {against}", "ops-flat"
    arrow, tone = ("↑", "ops-up") if change_pct > 0 else ("↓", "ops-down")
    return f"{arrow} {abs(change_pct):.0f}% {against}", tone


def sign_card(reading: IndicatorReading, language: str, theme: str) -> html.Div:
    """One vital sign: value and unit, status colour, sparkline with forecast, change."""
    unit = reading.unit(language)
    change, tone = change_text(reading.change_pct, reading.baseline_kind, language)
    flags: list[Any] = []
    if reading.simulated:
        flags.append(html.Span(t("health.simulated", language), className="ops-chip ops-warn"))
    if reading.stale:
        flags.append(html.Span(t("map.stale", language), className="ops-chip ops-bad"))
    foot: list[Any] = [html.Span(change, className=tone)]
    predicted = reading.forecast
    if predicted is not None and predicted.times and _finite(predicted.mean[-1]):
        hours = (predicted.times[-1] - reading.time).total_seconds() / 3600.0
        foot.append(html.Span(t("signs.forecast", language, span=format_span(hours, language),
                                mean=format_value(predicted.mean[-1], reading.decimals),
                                lower=format_value(predicted.lower[-1], reading.decimals),
                                upper=format_value(predicted.upper[-1], reading.decimals))))
    spark = sparkline_svg(reading.series_times, reading.series_values, forecast=predicted,
                          thresholds=reading.thresholds, status=reading.status, theme=theme)
    return html.Div(
        className=f"ops-sign ops-sign-{reading.status}", id=f"sign-{reading.name}",
        **data_attrs({"data-status": reading.status, "data-value": "" if not _finite(reading.value)
           else str(round(reading.value, 6))}),
        children=[
            html.Div([html.Span(reading.title(language)), *flags], className="ops-sign-title"),
            html.Div([format_value(reading.value, reading.decimals),
                      html.Span(unit, className="ops-sign-unit") if unit else None],
                     className="ops-sign-value",
                     title=t(f"signs.status.{reading.status}", language)),
            html.Img(src=svg_data_uri(spark), className="ops-sign-spark", alt=""),
            html.Div(foot, className="ops-sign-foot"),
            html.Div(t("signs.failed", language, error=reading.error),
                     className="ops-sign-foot ops-bad") if reading.error else None,
        ])


def signs_panel(readings: Sequence[IndicatorReading], language: str, theme: str,
                zone: ZoneInfo) -> list[Any]:
    if not readings:
        return [html.P(t("signs.none", language), className="cb-hint")]
    moment = format_time(readings[0].time, zone)
    return [html.P(t("signs.as_of", language, time=moment), className="cb-muted ops-as-of"),
            html.Div([sign_card(r, language, theme) for r in readings],
                     className="ops-signs-grid")]


# ---------------------------------------------------------------------- alerts
ALERT_COLOURS = {"alarm": "#ef3b4f", "warn": "#f5a524", "info": "#38bdf8"}
ALERTS_TRACE_UID = "overlay-alerts"
CLEARED_LIMIT = 20


def _cells_text(cells: Sequence[int], limit: int = 3) -> str:
    shown = ", ".join(format(c, "x") for c in cells[:limit])
    return shown + (f" +{len(cells) - limit}" if len(cells) > limit else "")


def alert_item(alert: Alert, *, can_ack: bool, language: str, zone: ZoneInfo,
               indicator_titles: Mapping[str, str] | None = None) -> html.Div:
    """One alert: severity, rule, what it is about, when it was seen and how often."""
    cleared = alert.state == "cleared"
    about: list[str] = []
    if alert.indicator:
        name = (indicator_titles or {}).get(alert.indicator, alert.indicator)
        about.append(t("alerts.indicator", language, name=name))
    if alert.cells:
        about.append(t("alerts.cells", language, cells=_cells_text(alert.cells)))
    status: Any = None
    if cleared:
        status = html.Span(t("alerts.cleared_at", language,
                             when=format_time(alert.cleared_at, zone)), className="cb-muted")
    elif alert.acknowledged:
        status = html.Span(t("alerts.acked_by", language, who=alert.acked_by,
                             when=format_time(alert.acked_at, zone)), className="ops-ok")
    elif can_ack:
        status = html.Button(t("alerts.ack", language), n_clicks=0, className="cb-button",
                             id={"type": ids.ALERT_ACK, "alert": alert.id})
    return html.Div(
        className=f"ops-alert ops-alert-{alert.severity}" + (" ops-alert-cleared" if cleared
                                                             else ""),
        **data_attrs({"data-alert": alert.id, "data-state": alert.state,
           "data-severity": alert.severity}),
        children=[
            html.Div(className="ops-alert-head", children=[
                html.Span([html.Span(t(f"alerts.severity.{alert.severity}", language),
                                     className=f"ops-chip ops-sev-{alert.severity}"), " ",
                           html.Span(alert.title_zh if language.startswith("zh")
                                     else alert.title_en, className="ops-alert-title")]),
                status if isinstance(status, html.Button) else None,
            ]),
            html.Div(alert.message(language), className="ops-text"),
            html.Div(status, className="ops-alert-meta")
            if status is not None and not isinstance(status, html.Button) else None,
            html.Div(" · ".join([alert.rule, *about]), className="ops-alert-meta"),
            html.Div(t("alerts.seen", language, first=format_time(alert.first_seen, zone),
                       last=format_time(alert.last_seen, zone), count=alert.count),
                     className="ops-alert-meta"),
        ])


def alerts_panel(active: Sequence[Alert], cleared: Sequence[Alert], *, can_ack: bool,
                 language: str, zone: ZoneInfo,
                 indicator_titles: Mapping[str, str] | None = None) -> list[Any]:
    """Active alerts (most severe first) with Acknowledge for operators; recent cleared greyed."""
    def item(alert: Alert) -> html.Div:
        return alert_item(alert, can_ack=can_ack, language=language, zone=zone,
                          indicator_titles=indicator_titles)

    children: list[Any] = [html.H2(t("alerts.active", language, n=len(active)))]
    children.append(html.Div([item(a) for a in active], id="alerts-active") if active
                    else html.P(t("alerts.none", language), className="cb-hint"))
    if cleared:
        children.append(html.H2(t("alerts.cleared", language)))
        children.append(html.Div([item(a) for a in cleared[:CLEARED_LIMIT]],
                                 id="alerts-cleared"))
    return children


def alerts_traces(alerts: Iterable[Alert], language: str) -> list[dict[str, Any]]:
    """Outlines of the cells of active alerts, one trace per severity (plotly draws a line
    trace in one colour); a cell in several alerts takes its most severe colour.

    The three traces are always there (maybe empty), so live updates can patch them.
    """
    rank = {"info": 0, "warn": 1, "alarm": 2}
    worst: dict[int, str] = {}
    for alert in alerts:
        if alert.state != "active":
            continue
        for cell in alert.cells:
            if cell not in worst or rank[alert.severity] > rank[worst[cell]]:
                worst[cell] = alert.severity
    traces = []
    for severity in ("info", "warn", "alarm"):  # the most severe drawn last, on top
        lats: list[float | None] = []
        lons: list[float | None] = []
        for cell in sorted(c for c, s in worst.items() if s == severity):
            ring = cell_ring(cell)
            lons.extend([round(p[0], 5) for p in ring] + [None])
            lats.extend([round(p[1], 5) for p in ring] + [None])
        traces.append({"type": "scattermap", "uid": f"{ALERTS_TRACE_UID}-{severity}",
                       "mode": "lines", "lat": lats, "lon": lons,
                       "line": {"color": ALERT_COLOURS[severity],
                                "width": 3.5 if severity == "alarm" else 2.5},
                       "hoverinfo": "skip", "name": t("overlay.alerts", language),
                       "showlegend": False})
    return traces


__all__ = [
    "data_attrs", "ALERTS_TRACE_UID", "alert_item", "alerts_panel", "alerts_traces", "change_text",
    "sign_card", "signs_panel", "sparkline_svg", "svg_data_uri",
    "EVENT_COLOURS", "EVENTS_TRACE_UID", "LIST_LIMIT", "RECENT_CLOSED", "action_form",
    "action_key", "allowed_actions", "cell_events_section", "closed_since",
    "event_button", "event_detail", "event_id_from_click", "event_list", "events_tab_children",
    "events_trace", "format_span", "format_time", "hover_text", "login_form", "marker_kind",
    "ops_stores", "ops_tabs", "overlay_events", "priority_order", "queues_table",
    "signed_in_text", "start_of_day", "stats_header",
]
