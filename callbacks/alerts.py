"""The Alerts feature: active alerts with Acknowledge for an operator, recently cleared
ones greyed, and the alert-cell outlines overlay of the map.

The list and the traces are pure functions of :class:`ops.signs.alerts.Alert`;
acknowledging is :func:`perform_ack`, a plain function that checks the role on every
request. The callbacks read ``services.signs`` (None without vital signs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from callbacks import ids
from callbacks.common import Outcome, data_attrs, format_time, tab, triggered_value
from callbacks.signin import may_change, signed_in
from config.i18n import pick, t
from geo.hexes import cell_ring
from ops.signs.alerts import Alert

if TYPE_CHECKING:
    from ops.events.settings import User
    from ops.signs.service import VitalSigns
    from services import Services

#: The value of the alert-cells overlay in the overlays checklist.
OVERLAY = "alerts"
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
                           html.Span(pick(language, alert.title_zh, alert.title_en),
                                     className="ops-alert-title")]),
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


def alerts_fingerprint(active: Sequence[Alert], cleared: Sequence[Alert]) -> str:
    """Changes when an alert appears, clears, is seen again, changes severity or is acknowledged."""
    digest = hashlib.blake2b(digest_size=8)
    for alert in (*active, *cleared):
        digest.update(repr((alert.id, alert.state, alert.severity, alert.count,
                            alert.acked_by, alert.cells)).encode())
    return f"{len(active)}:{len(cleared)}:{digest.hexdigest()}"


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


def alerts_view(signs: VitalSigns, user: User | None, language: str, zone: ZoneInfo
                ) -> list[Any]:
    """The Alerts tab as it is now (the rules are evaluated when their result is old)."""
    signs.current()
    titles = {i.name: i.title(language) for i in signs.indicators}
    return alerts_panel(signs.book.active(), signs.book.cleared(), can_ack=may_change(user),
                        language=language, zone=zone, indicator_titles=titles)


def overlay_traces(signs: VitalSigns, language: str) -> list[dict[str, Any]]:
    """The alert-cells overlay of the map, after evaluating the rules if their result is old."""
    signs.current()
    return alerts_traces(signs.book.active(), language)


# ---------------------------------------------------------------------- layout
def alerts_tab(language: str) -> dcc.Tab:
    return tab("tab.alerts", "alerts", language,
               [html.Div(id=ids.ALERT_MESSAGE, className="ops-message", role="status"),
                html.Div(id=ids.ALERTS_PANEL, className="ops-alerts")])


def overlay_option(language: str) -> dict[str, Any]:
    """The alert-cells entry of the overlays checklist."""
    return {"label": f"⚠ {t('overlay.alerts', language)}", "value": OVERLAY}


# -------------------------------------------------------------------- callbacks
def register(app: Dash, services: Services) -> None:
    zone = ZoneInfo(services.config.city.timezone)

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
        if services.signs is None:
            return html.P(t("alerts.not_configured", language), className="cb-hint")
        return alerts_view(services.signs, signed_in(services), language, zone)

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
        signs = services.signs
        if not triggered_value() or not isinstance(target, Mapping) or signs is None:
            return no_update, no_update
        outcome = perform_ack(signs, signed_in(services), str(target["alert"]))
        return outcome.message(language), (changed or 0) + 1
