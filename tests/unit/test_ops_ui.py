"""The operations panel: what each role may do, the events overlay, tick fingerprints,
public text as text, operator actions on a real SQLite store, vital signs and alerts.

Rendering is checked on the Dash component trees the callbacks return; operator
actions go through :class:`ops.events.pipeline.EventPipeline` on a real SQLite file; the
server-side role check is exercised through the app's real Dash endpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pandas as pd
import plotly.io
import pytest
from dash import dcc, html, no_update
from werkzeug.security import generate_password_hash

from callbacks import ids
from callbacks.alerts import alerts_fingerprint, alerts_panel, alerts_traces, perform_ack
from callbacks.common import format_span
from callbacks.events import detail_key, events_fingerprint, perform_transition
from callbacks.events_view import (
    EVENT_COLOURS,
    action_form,
    action_key,
    cell_events_section,
    event_button,
    event_detail,
    event_id_from_click,
    events_trace,
    priority_order,
    stats_header,
)
from callbacks.ops_panel import next_fingerprint
from callbacks.signs import change_text, sign_card, signs_fingerprint, sparkline_svg
from ops.events import EventPipeline, parse_events_settings
from ops.events.model import TRANSITIONS, AuditEntry, Event, Report
from ops.events.settings import User
from ops.events.stats import summary
from ops.signs.alerts import Alert
from ops.signs.backtest import backtest
from ops.signs.forecast import Forecast
from ops.signs.indicators import IndicatorReading
from ops.signs.settings import Thresholds

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("America/New_York")
XSS = "<script>alert(1)</script>"
OPERATOR = User("duty", "operator", password_hash_env="X")
VIEWER = User("analyst", "viewer", password_hash_env="Y")
WALL = User("hall", "exhibition", token_env="Z")
CELL = h3.latlng_to_cell(40.75, -73.99, 10)
#: Vital signs and rules that hold on the snapshot city (as of its newest row).
OPS_TOML = """
[[indicators]]
name = "open_requests"
title_zh = "未办结诉求"
title_en = "Open requests"
layer = "government"
role = "requests"
kind = "count"
where = { is_open = [true] }
thresholds = { warn = 200, alarm = 500 }

[[rules]]
name = "open-requests-high"
kind = "threshold"
indicator = "open_requests"
title_zh = "未办结诉求积压"
title_en = "Open requests backlog"
"""


# ------------------------------------------------------------------- helpers
def walk(node: Any) -> Iterator[Any]:
    """Every Dash component in a tree (children and component-valued props)."""
    if isinstance(node, list | tuple):
        for item in node:
            yield from walk(item)
        return
    if not hasattr(node, "to_plotly_json"):
        return
    yield node
    for name in node._prop_names:
        value = getattr(node, name, None)
        if hasattr(value, "to_plotly_json") or isinstance(value, list | tuple):
            yield from walk(value)


def by_id(tree: Any, wanted: Any) -> Any:
    return next(c for c in walk(tree) if getattr(c, "id", None) == wanted)


def ids_of_type(tree: Any, kind: str) -> list[dict[str, Any]]:
    return [c.id for c in walk(tree) if isinstance(getattr(c, "id", None), dict)
            and c.id.get("type") == kind]


def event(event_id: int = 1, *, status: str = "dispatched", due_in: float = 4.0,
          category: str = "Illegal Parking", description: str = "Blocked hydrant",
          closed_hours_ago: float | None = None, version: int = 2) -> Event:
    """An event as the store returns it; ``due_in`` hours from NOW (negative: overdue)."""
    received = NOW - timedelta(hours=6)
    closed_at = NOW - timedelta(hours=closed_hours_ago) if closed_hours_ago is not None else None
    return Event(id=event_id, category=category, description=description, channel="311",
                 lat=40.75, lon=-73.99, cell=h3.str_to_int(CELL),
                 merge_cell=h3.str_to_int(h3.cell_to_parent(CELL, 9)), received_at=received,
                 last_report_at=received, report_count=1, status=status,  # type: ignore[arg-type]
                 department="NYPD", due_at=NOW + timedelta(hours=due_in), updated_at=received,
                 version=version, source="hotline", source_id=str(event_id),
                 closed_at=closed_at)


def rows(*specs: tuple[str, str, datetime, str]) -> pd.DataFrame:
    """Normalised ``requests`` rows: (source id, category, time, descriptor)."""
    records = []
    for source_id, category, at, descriptor in specs:
        lat, lon = h3.cell_to_latlng(CELL)
        records.append({"id": source_id, "time": pd.Timestamp(at), "lat": lat, "lon": lon,
                        "cell": h3.str_to_int(CELL), "source": "hotline", "name": None,
                        "category": category, "agency": None, "status": "Open",
                        "closed_time": pd.NaT, "descriptor": descriptor, "channel": None,
                        "is_open": True})
    frame = pd.DataFrame(records)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["closed_time"] = pd.to_datetime(frame["closed_time"], utc=True)
    return frame


@pytest.fixture()
def pipeline(tmp_path: Path) -> Iterator[EventPipeline]:
    settings = parse_events_settings({"path": "events.sqlite3", "use_source_agency": False,
                                      "departments": {"Illegal Parking": "NYPD",
                                                      "Street Condition": "DOT"},
                                      "default_department": "Hotline triage"}, tmp_path)
    events = EventPipeline(settings)
    events.clock = lambda: NOW
    events.ingest(rows(("a1", "Illegal Parking", NOW - timedelta(hours=1), XSS),
                       ("b1", "Street Condition", NOW - timedelta(days=20), "Pothole")))
    yield events
    events.close()


# ------------------------------------------------------------- roles & actions
@pytest.mark.parametrize("status", list(TRANSITIONS))
def test_only_an_operator_is_offered_the_next_states(status: str) -> None:
    from callbacks.events_view import allowed_actions

    assert allowed_actions(status, "operator") == TRANSITIONS[status]
    for role in ("viewer", "exhibition", "system", None, "admin"):
        assert allowed_actions(status, role) == ()


def test_action_form_per_role_carries_the_version_shown() -> None:
    shown = event(7, status="dispatched", version=5)
    form = action_form(shown, "operator", ["DOT", "NYPD"], "en")
    buttons = ids_of_type(form, ids.EVENT_ACTION)
    assert sorted(b["to"] for b in buttons) == ["dispatched", "in_progress"]
    assert {(b["event"], b["version"]) for b in buttons} == {(7, 5)}
    # A re-dispatch must name another department: the current one is not offered.
    department = next(c for c in walk(form) if isinstance(c, dcc.Dropdown))
    assert [o["value"] for o in department.options] == ["DOT"] and department.value == "DOT"
    for role in ("viewer", "exhibition", None):
        read_only = action_form(shown, role, ["DOT", "NYPD"], "en")
        assert ids_of_type(read_only, ids.EVENT_ACTION) == []
        assert ids_of_type(read_only, ids.EVENT_NOTE) == []
        assert "ops-read-only" in read_only.className
    assert ids_of_type(action_form(event(status="closed"), "operator", [], "en"),
                       ids.EVENT_ACTION) == []
    assert action_key("received", "dispatched") == "events.action.dispatch"
    assert action_key("resolved", "in_progress") == "events.action.reopen"


# ----------------------------------------------------------------- map overlay
def test_events_trace_colours_by_state_and_keeps_recent_closed_only() -> None:
    events = [event(1, due_in=-3), event(2, due_in=5), event(3, status="closed",
                                                             closed_hours_ago=2),
              event(4, status="closed", closed_hours_ago=30),
              event(5, status="resolved", due_in=-50, category=XSS)]
    trace = events_trace(events, NOW, ZONE, "en")
    assert trace["uid"] == "overlay-events" and trace["type"] == "scattermap"
    # Finished first, overdue last (drawn on top); closed 30 h ago is not drawn.
    ids_drawn = [row[0] for row in trace["customdata"]]
    assert sorted(ids_drawn[:2]) == ["event:3", "event:5"] and ids_drawn[2:] == ["event:2",
                                                                                   "event:1"]
    assert trace["marker"]["color"] == [EVENT_COLOURS["closed"]] * 2 + \
        [EVENT_COLOURS["open"], EVENT_COLOURS["overdue"]]
    assert all(isinstance(row, list) and all(isinstance(v, str) for v in row)
               for row in trace["customdata"])
    # Public text is made inert for plotly's hover HTML subset.
    categories = {row[0]: row[1] for row in trace["customdata"]}
    assert categories["event:5"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "Overdue" in trace["customdata"][-1][3]
    json.dumps(trace)  # plain JSON, no numpy or datetimes
    capped = events_trace(events, NOW, ZONE, "en", limit=2)
    assert [row[0] for row in capped["customdata"]] == ["event:2", "event:1"]
    assert event_id_from_click({"points": [{"customdata": ["event:12", "x"]}]}) == 12
    assert event_id_from_click({"points": [{"customdata": ["1234", "name"]}]}) is None
    assert event_id_from_click({"points": [{"location": "8a2a1072b59ffff"}]}) is None
    assert event_id_from_click(None) is None


# ---------------------------------------------------------------- fingerprints
def test_fingerprint_changes_only_when_something_shown_changes() -> None:
    active = [event(1, due_in=2), event(2, due_in=-1)]
    first = events_fingerprint(active, 10, NOW)
    assert events_fingerprint(list(reversed(active)), 10, NOW + timedelta(minutes=20)) == first
    assert events_fingerprint([event(1, due_in=2, version=3), active[1]], 10, NOW) != first
    assert events_fingerprint(active, 11, NOW) != first  # a merged report
    assert events_fingerprint(active[:1], 10, NOW) != first  # one was closed
    assert events_fingerprint(active, 10, NOW + timedelta(hours=3)) != first  # fell due
    current = {"events": first}
    assert next_fingerprint(current, {"events": first}) is no_update
    assert next_fingerprint(None, {"events": first}) == {"events": first}
    assert next_fingerprint(current, {"events": first, "alerts": "x"}) == \
        {"events": first, "alerts": "x"}
    shown = event(1)
    assert detail_key(shown, NOW, OPERATOR, "en") == detail_key(shown, NOW, OPERATOR, "en")
    assert detail_key(shown, NOW, OPERATOR, "en") != detail_key(shown, NOW, VIEWER, "en")
    assert detail_key(shown, NOW, None, "en") != detail_key(event(1, version=3), NOW, None, "en")
    # An operator's pane (maybe holding a note being typed) waits for the event to change;
    # a read-only pane follows "overdue by", hour by hour.
    late, later = NOW + timedelta(hours=5), NOW + timedelta(hours=7)
    assert detail_key(shown, late, OPERATOR, "en") == detail_key(shown, later, OPERATOR, "en")
    assert detail_key(shown, late, VIEWER, "en") != detail_key(shown, later, VIEWER, "en")


# --------------------------------------------------------- public text is text
def test_public_text_is_rendered_as_a_text_child_never_as_html() -> None:
    shown = event(9, category=f"<b>{XSS}</b>", description=f"{XSS}\n**bold** [x](javascript:1)")
    report = Report(9, "hotline", "9", NOW, shown.category, 40.75, -73.99, shown.cell, "311",
                    XSS, None, None, None)
    audit = [AuditEntry(9, 1, "receive", None, "received", "", "intake", "system", NOW, XSS)]
    tree = [event_detail(shown, [report], audit, now=NOW, zone=ZONE, language="en",
                         role="operator", departments=["NYPD"]),
            event_button(shown, NOW, ZONE, "zh-CN", "overdue"),
            cell_events_section([shown], NOW, ZONE, "en")]
    assert by_id(tree, "event-description").children == shown.description
    texts = [c.children for c in walk(tree) if isinstance(getattr(c, "children", None), str)]
    assert texts.count(XSS) == 2 and shown.category in texts  # report and audit note
    for component in walk(tree):
        assert not isinstance(component, dcc.Markdown)
        assert not getattr(component, "dangerously_allow_html", False)
        assert not isinstance(component, html.Iframe)
    # What travels to the browser: the text is a JSON string, not markup.
    payload = plotly.io.json.to_json_plotly(tree)
    assert "<script>" not in payload  # the encoder even escapes "<" (as \\u003c)

    def props(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, list):
            for item in node:
                yield from props(item)
        elif isinstance(node, dict) and "props" in node:
            yield node["props"]
            yield from props(node["props"].get("children"))
    description = next(p for p in props(json.loads(payload)) if p.get("id") == "event-description")
    assert description["children"] == shown.description


def test_stats_and_lists_from_a_summary() -> None:
    events = [event(1, due_in=-30), event(2, due_in=-2), event(3, due_in=3),
              event(4, status="closed", closed_hours_ago=1)]
    stats = summary(events, NOW)
    header = stats_header(stats, 1, "en")
    values = {c.to_plotly_json()["props"]["data-stat"]: c.children[0] for c in walk(header)
              if "data-stat" in c.to_plotly_json()["props"]}
    assert (values["open"], values["overdue"], values["closed_today"]) == ("3", "2", "1")
    assert values["median_close"] == "5"  # reported 6 h before NOW, closed 1 h before
    assert [e.id for e in priority_order(events, NOW)] == [1, 2, 3, 4]
    assert format_span(0.5, "en") == "30 min" and format_span(30, "en") == "30 h"
    assert format_span(24 * 40, "zh-CN") == "40 天" and format_span(None, "en") == "—"


# ------------------------------------------------- actions on a real store
def test_operator_moves_an_event_and_others_cannot(pipeline: EventPipeline) -> None:
    target = next(e for e in pipeline.events() if e.category == "Illegal Parking")
    assert target.status == "dispatched"
    for user in (VIEWER, WALL, None):
        outcome = perform_transition(pipeline, user, target.id, "in_progress", target.version)
        assert (outcome.ok, outcome.key) == (False, "events.forbidden")
    assert pipeline.get(target.id).version == target.version  # nothing changed
    done = perform_transition(pipeline, OPERATOR, target.id, "in_progress", target.version,
                              note="  crew on the way  ")
    assert done.ok and done.text("en") == f"Event #{target.id}: Dispatched → In progress"
    _, _, audit = pipeline.detail(target.id)
    assert (audit[-1].actor, audit[-1].role, audit[-1].note) == ("duty", "operator",
                                                                 "crew on the way")
    # The page still showed the old version: refused as a conflict, nothing overwritten.
    stale = perform_transition(pipeline, OPERATOR, target.id, "resolved", target.version)
    assert stale.key == "events.conflict" and not stale.ok
    assert "reloaded" in stale.text("en")
    refused = perform_transition(pipeline, OPERATOR, target.id, "closed",
                                 pipeline.get(target.id).version)
    assert refused.key == "events.refused" and "allowed next states" in refused.text("en")
    assert perform_transition(pipeline, OPERATOR, 999, "closed", 1).key == "events.missing"
    other = next(e for e in pipeline.events() if e.category == "Street Condition")
    moved = perform_transition(pipeline, OPERATOR, other.id, "dispatched", other.version,
                               department="NYPD")
    assert moved.ok and pipeline.get(other.id).department == "NYPD"


def test_concurrent_clicks_leave_exactly_one_result(pipeline: EventPipeline) -> None:
    target = next(e for e in pipeline.events() if e.category == "Illegal Parking")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def click(to: str) -> None:
        barrier.wait()
        outcomes.append(perform_transition(pipeline, OPERATOR, target.id, to,
                                           target.version,
                                           department="DOT" if to == "dispatched" else None
                                           ).key)

    threads = [threading.Thread(target=click, args=(to,))
               for to in ("in_progress", "in_progress", "dispatched", "in_progress")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("events.done") == 1
    assert sorted(outcomes).count("events.conflict") == 3
    assert pipeline.get(target.id).version == target.version + 1


def test_cell_section_lists_the_events_inside_a_coarser_cell(pipeline: EventPipeline) -> None:
    parent = h3.str_to_int(h3.cell_to_parent(CELL, 7))
    inside = pipeline.events(cell=parent)
    assert len(inside) == 2
    assert all(h3.cell_to_parent(e.as_dict(NOW)["cell"], 7) == h3.int_to_str(parent)
               for e in inside)
    section = cell_events_section(inside, NOW, ZONE, "en")
    counts = section.children[1].to_plotly_json()["props"]
    assert (counts["data-open"], counts["data-overdue"], counts["data-total"]) == ("2", "1", "2")
    picks = ids_of_type(section, ids.EVENT_PICK)
    assert [p["list"] for p in picks] == ["cell", "cell"]
    # The overdue pothole (20 days old, 72 h SLA) comes first.
    assert picks[0]["event"] == next(e.id for e in inside if e.category == "Street Condition")
    far = h3.str_to_int(h3.latlng_to_cell(40.60, -74.10, 7))
    assert pipeline.events(cell=far) == []


# ---------------------------------------------------------------- vital signs
def reading(values: list[float], status: str = "ok", **changes: Any) -> IndicatorReading:
    times = tuple(pd.Timestamp(NOW) - pd.Timedelta(hours=len(values) - 1 - i)
                  for i in range(len(values)))
    ahead = tuple(pd.Timestamp(NOW) + pd.Timedelta(hours=h) for h in (1, 2, 3))
    base = {"name": "requests_per_hour", "title_zh": "每小时诉求", "title_en": "Requests per hour",
            "layer": "government", "kind": "rate", "unit_zh": "件/小时", "unit_en": "req/h",
            "decimals": 0, "time": pd.Timestamp(NOW), "value": values[-1],
            "series_times": times, "series_values": tuple(values),
            "baseline_kind": "rolling_mean", "baseline": 10.0, "change": values[-1] - 10,
            "change_pct": (values[-1] - 10) * 10.0, "status": status,
            "thresholds": Thresholds(warn=15, alarm=20),
            "forecast": Forecast("ets", "test", ahead, (12, 13, 14), (9, 9, 9), (15, 17, 19))}
    base.update(changes)
    return IndicatorReading(**base)


def test_sparkline_draws_series_gaps_forecast_band_and_thresholds() -> None:
    svg = sparkline_svg(*(lambda r: (r.series_times, r.series_values))(
        reading([8, 9, math.nan, 11, 12])), forecast=reading([1]).forecast,
        thresholds=Thresholds(warn=15, alarm=20), status="warn", theme="light")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<polyline") == 3  # two series segments around the gap + forecast mean
    assert svg.count("<polygon") == 1  # the band
    assert svg.count('stroke-dasharray="4 3"') == 2  # warn and alarm
    assert "#b45309" in svg  # the dot in the light theme's warn colour
    empty = sparkline_svg([], [], theme="dark")
    assert "<polyline" not in empty and "stroke-dasharray" in empty
    assert change_text(15.0, "rolling_mean", "en") == ("↑ 15% vs rolling mean", "ops-up")
    assert change_text(-3.2, "same_hour_yesterday", "zh-CN")[0] == "↓ 3% 较昨日同时"
    assert change_text(5.0, "none", "en") == ("", "")
    assert change_text(math.nan, "rolling_mean", "en") == ("", "")


def test_sign_card_shows_the_forecast_skill_and_its_baseline() -> None:
    ahead = reading([1]).forecast
    assert ahead is not None
    tested = backtest(np.r_[np.arange(30.0), 29 - np.arange(10.0)], 3, None)
    assert tested is not None
    skilful = dataclasses.replace(ahead, skill=(-0.1, 0.05, 0.234),
                                  baseline=("persistence",) * 3, backtest=tested)
    card = sign_card(reading([8, 9, 10], forecast=skilful), "en", "dark")
    chip = next(c for c in walk(card) if "ops-sign-skill" in str(getattr(c, "className", "")))
    assert chip.children == "skill +23% vs persistence" and "ops-up" in chip.className
    assert chip.to_plotly_json()["props"]["data-skill"] == "0.234"
    assert chip.title.startswith(f"Backtest ({len(tested.origins)} origins), MAE at +3 h: "
                                 f"persistence {tested.mae['persistence'][-1]:.1f}")
    zh = sign_card(reading([8, 9, 10], forecast=dataclasses.replace(
        skilful, skill=(0.1, 0.0, 0.0), baseline=("persistence", "persistence", "seasonal_naive"))),
        "zh-CN", "dark")
    texts = [c.children for c in walk(zh) if isinstance(getattr(c, "children", None), str)]
    assert "无预测技能：不优于季节朴素法" in texts
    assert signs_fingerprint([reading([1], forecast=skilful)]) != signs_fingerprint(
        [reading([1], forecast=dataclasses.replace(skilful, skill=(0.0, 0.0, 0.1)))])


def test_sign_card_shows_value_status_change_and_forecast() -> None:
    card = sign_card(reading([8, 9, 10, 11, 16], status="warn"), "en", "dark")
    props = card.to_plotly_json()["props"]
    assert props["data-status"] == "warn" and "ops-sign-warn" in card.className
    text = " ".join(str(c.children) for c in walk(card) if isinstance(c.children, str))
    assert "Requests per hour" in text and "req/h" in text
    assert "↑ 60% vs rolling mean" in text and "Forecast +3 h: 14 (9–19)" in text
    image = next(c for c in walk(card) if isinstance(c, html.Img))
    assert image.src.startswith("data:image/svg+xml;base64,")
    failed = sign_card(reading([math.nan], status="unknown", error="ValueError: boom",
                               forecast=None, change_pct=math.nan), "zh-CN", "dark")
    assert "无法计算：ValueError: boom" in [c.children for c in walk(failed)]
    # The forecast's skill at its last step, against its baseline; none claimed untested.
    assert "forecast not backtested" in text
    one, other = reading([1, 2, 3]), reading([1, 2, 4])
    assert signs_fingerprint([one]) == signs_fingerprint([reading([1, 2, 3])])
    assert signs_fingerprint([one]) != signs_fingerprint([other])


# ---------------------------------------------------------------------- alerts
def alert(alert_id: str, severity: str = "alarm", state: str = "active",
          cells: tuple[int, ...] = (), **changes: Any) -> Alert:
    fields = {"id": alert_id, "rule": "requests-hotspot", "kind": "cell_count", "key": "k",
              "severity": severity, "title_zh": "诉求热点", "title_en": "Requests hotspot",
              "message_zh": XSS, "message_en": XSS, "value": 12.0, "limit": 8.0,
              "cells": cells, "first_seen": pd.Timestamp(NOW), "last_seen": pd.Timestamp(NOW),
              "state": state}
    fields.update(changes)
    return Alert(**fields)


def test_alerts_panel_acknowledge_for_operators_and_cleared_greyed() -> None:
    cells = tuple(h3.str_to_int(c) for c in h3.grid_disk(h3.cell_to_parent(CELL, 8), 1))[:2]
    active = [alert("a-1", cells=cells), alert("a-2", "warn", acked_by="duty",
                                               acked_at=pd.Timestamp(NOW))]
    cleared = [alert("a-0", "warn", state="cleared", cleared_at=pd.Timestamp(NOW))]
    panel = alerts_panel(active, cleared, can_ack=True, language="en", zone=ZONE)
    assert ids_of_type(panel, ids.ALERT_ACK) == [{"type": ids.ALERT_ACK, "alert": "a-1"}]
    greyed = [c for c in walk(panel) if "ops-alert-cleared" in (getattr(c, "className", "")
                                                                or "")]
    assert len(greyed) == 1 and greyed[0].to_plotly_json()["props"]["data-alert"] == "a-0"
    assert XSS in [c.children for c in walk(panel)]  # the message, as text
    read_only = alerts_panel(active, cleared, can_ack=False, language="en", zone=ZONE)
    assert ids_of_type(read_only, ids.ALERT_ACK) == []
    traces = alerts_traces([*active, *cleared], "en")
    assert [t["uid"] for t in traces] == ["overlay-alerts-info", "overlay-alerts-warn",
                                          "overlay-alerts-alarm"]
    alarm = traces[2]
    assert sum(1 for v in alarm["lat"] if v is None) == len(cells)  # one ring per cell
    assert traces[1]["lat"] == [] and traces[0]["lat"] == []  # cleared alerts are not drawn
    assert alerts_fingerprint(active, cleared) != alerts_fingerprint(active[:1], cleared)


def test_only_an_operator_acknowledges_a_real_alert(demo_data: Any) -> None:
    from ops.signs.service import VitalSigns

    signs = VitalSigns.from_config(demo_data, tomllib.loads(OPS_TOML), with_forecast=False)
    signs.refresh()
    target = signs.book.active()[0]
    for user in (VIEWER, WALL, None):
        assert perform_ack(signs, user, target.id).key == "alerts.forbidden"
    assert not signs.book.get(target.id).acknowledged
    assert perform_ack(signs, OPERATOR, target.id).ok
    assert signs.book.get(target.id).acked_by == "duty"
    assert perform_ack(signs, OPERATOR, "no-such-alert").key == "alerts.missing"


# ------------------------------------------- the role is checked on the server
def _forge_action(client: Any, app: Any, event_id: int, version: int) -> dict[str, Any]:
    """POST the transition callback as a browser would, with a button that was never shown."""
    key = next(k for k in app.callback_map if "store-ops-changed.data" in k
               and ids.EVENT_MESSAGE in k)
    button = {"type": ids.EVENT_ACTION, "event": event_id, "to": "in_progress",
              "version": version}
    outputs = [{"id": ids.EVENT_MESSAGE, "property": "children"},
               {"id": ids.OPS_CHANGED, "property": "data"}]
    body = {"output": key, "outputs": outputs,
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "state": [[], [], {"id": ids.LANGUAGE, "property": "data", "value": "en"},
                      {"id": ids.OPS_CHANGED, "property": "data", "value": 0}],
            "changedPropIds": [json.dumps(button, separators=(",", ":"),
                                          sort_keys=True) + ".n_clicks"]}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def test_forged_transition_requests_are_refused_on_the_server(
        demo_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYBRAIN_ANALYST_PASSWORD_HASH", generate_password_hash("viewer-pw"))
    events = demo_app.services.events
    target = events.events(status=["dispatched"], limit=1)[0]
    anonymous = demo_app.server.test_client()
    answer = _forge_action(anonymous, demo_app, target.id, target.version)
    assert json.dumps(answer).count("events.forbidden") == 1
    viewer = demo_app.server.test_client()
    login = viewer.post("/api/events/login", json={"name": "analyst", "password": "viewer-pw"})
    assert login.status_code == 200 and login.get_json()["role"] == "viewer"
    answer = _forge_action(viewer, demo_app, target.id, target.version)
    assert "events.forbidden" in json.dumps(answer)
    assert events.get(target.id).version == target.version
    assert events.get(target.id).status == "dispatched"


# ------------------------------------ the features read the typed services object
class FakeAuth:
    """An :class:`ops.auth.Auth` stand-in that records sign-ins (no Flask session)."""

    def __init__(self, users: dict[str, tuple[str, User]]) -> None:
        self.users = users
        self.logged_in: list[str] = []

    def authenticate(self, name: str, password: str) -> User | None:
        known = self.users.get(name)
        return known[1] if known is not None and known[0] == password else None

    attempt = authenticate  # no limits here: tests/unit/test_sessions.py tries the real ones

    def login(self, user: User) -> None:
        self.logged_in.append(user.name)

    def logout(self) -> None:
        self.logged_in.append("<out>")


def test_sign_in_and_out_go_through_auth_and_say_what_to_show() -> None:
    from callbacks.signin import session_view, sign_in, sign_out

    auth: Any = FakeAuth({"duty": ("pw", OPERATOR)})
    assert sign_in(auth, " duty ", "wrong") == {"user": None, "failed": True}
    assert auth.logged_in == []
    state = sign_in(auth, " duty ", "pw")
    assert state == {"user": {"name": "duty", "role": "operator"}, "failed": False}
    assert auth.logged_in == ["duty"]
    assert sign_out(auth) == {"user": None, "failed": False} and auth.logged_in[-1] == "<out>"
    status, form, logout, *_ = session_view(state, "en", has_events=True)
    assert status.id == "signed-in-as" and "ops-hidden" in form and "ops-hidden" not in logout
    _, form, _, *_ = session_view(None, "en", has_events=False)
    assert form == "ops-login-fields ops-hidden"  # no event pipeline: nothing to sign in to
    _, form, _, *_ = session_view(None, "en", has_events=True)
    assert form == "ops-login-fields"


def test_queue_and_event_picks() -> None:
    from callbacks.events import next_queue, picked_event

    assert next_queue("NYPD", None) == "NYPD"
    assert next_queue("NYPD", "NYPD") is None  # the shown queue clicked again: back
    assert next_queue("", "NYPD") is None  # "show all"
    click = {"points": [{"customdata": ["event:42", "x"]}]}
    assert picked_event(ids.MAP, click) == 42
    assert picked_event(ids.MAP, {"points": [{"location": "8a2a1072b59ffff"}]}) is None


def fake_services(events: Any = None, signs: Any = None, auth: Any = None,
                  audience: str = "detail") -> Any:
    from types import SimpleNamespace

    config = SimpleNamespace(city=SimpleNamespace(timezone="America/New_York"),
                             map=SimpleNamespace(max_points=1000))
    return SimpleNamespace(config=config, events=events, signs=signs, auth=auth,
                           audience=lambda: audience)


def test_the_tick_fingerprint_reads_only_what_the_page_shows(pipeline: EventPipeline) -> None:
    from callbacks.ops_panel import next_fingerprint, page_fingerprint

    services = fake_services(events=pipeline)
    held = {"events": "old"}
    # Place tab, no cell, no overlays: the events are not read, the old part is kept.
    assert page_fingerprint(services, held, "place", [], None) == held
    for tab, overlays, cell in (("events", [], None), ("place", ["events"], None),
                                ("place", [], CELL)):
        shown = page_fingerprint(services, held, tab, overlays, cell)
        assert shown["events"] != "old" and shown["events"].startswith("2:2:")
    assert page_fingerprint(fake_services(), held, "events", ["events", "alerts"], CELL) == held
    now = page_fingerprint(services, None, "events", [], None)
    assert next_fingerprint(now, page_fingerprint(services, now, "events", [], None)) \
        is no_update


def test_overlay_traces_come_from_the_services_that_exist(pipeline: EventPipeline) -> None:
    from callbacks.ops_panel import overlay_traces

    assert overlay_traces(fake_services(), ["events", "alerts"], "en") == []
    services = fake_services(events=pipeline)
    traces = overlay_traces(services, ["events", "alerts"], "en")
    assert [t["uid"] for t in traces] == ["overlay-events"] and len(traces[0]["lat"]) == 2
    assert overlay_traces(services, ["events"], "en", bbox=(0.0, 0.0, 1.0, 1.0))[0]["lat"] == []
    assert overlay_traces(services, ["alerts"], "en") == []
    # The public (anonymous, exhibition) gets the trace, with no event in it.
    public = overlay_traces(fake_services(events=pipeline, audience="public"), ["events"], "en")
    assert [t["uid"] for t in public] == ["overlay-events"]
    assert public[0]["lat"] == public[0]["lon"] == public[0]["customdata"] == []

