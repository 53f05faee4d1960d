"""Events as Dash components and map traces, from plain records.

Everything here is a pure function of records from :mod:`ops.events.model` (no pipeline,
no Flask session): :mod:`callbacks.events` reads the pipeline and the signed-in user,
then calls these to build the Events tab, the events section of a cell's profile and
the events overlay of the map.

Text from the public (descriptions, categories, notes, department names) is only
ever passed as a Dash *text child*, which React escapes, so nothing a caller typed
is interpreted as HTML or markdown. In map hovers, which plotly renders with its own
small HTML subset, the same text is escaped first (:func:`hover_text`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dash import dcc, html

from callbacks import ids
from callbacks.common import data_attrs, format_span, format_time, label, span_parts
from config.i18n import t
from ops.events.model import (
    CHANGE_ROLES,
    STATUSES,
    SYSTEM,
    TRANSITIONS,
    AuditEntry,
    Event,
    Report,
)
from render.text import data_text

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


def hours_overdue(event: Event, now: datetime) -> float:
    return (now - event.due_at).total_seconds() / 3600.0


def status_text(status: str, language: str) -> str:
    return t(f"status.{status}", language)


def hover_text(text: str | None) -> str:
    """Public text made inert for plotly's hover labels: :func:`render.text.data_text`."""
    return data_text(text)


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


# ------------------------------------------------------------------ events tab
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
        return html.Div(label("events.read_only", language, html.P, className="cb-hint"),
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
