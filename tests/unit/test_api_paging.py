"""Cursor paging (:mod:`api.paging`) on the alert and cell lists, and its refusals.

The event list is walked against real SQLite and PostgreSQL stores in
``tests/integration/test_events_store.py``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask

from api.signs import create_signs_blueprint
from ops.signs.service import VitalSigns
from tests.unit.test_indicators import T0, ManualClock, device_reports, feed, live_city

PM = {"name": "pm", "kind": "reading", "layer": "things", "above": 35, "max_alerts": 1000}


def _walk(client, url: str) -> tuple[list[dict], list[str]]:
    """Every page of ``url`` (a list or an ``alerts`` object), following the cursors."""
    rows: list[dict] = []
    cursors: list[str] = []
    for _ in range(100):
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        rows.extend(body if isinstance(body, list) else body["alerts"])
        cursor = response.headers.get("X-Next-Cursor")
        if isinstance(body, dict):
            assert body["next_cursor"] == cursor
        if cursor is None:
            return rows, cursors
        cursors.append(cursor)
        url = response.headers["Link"].split(">")[0].lstrip("<")
    raise AssertionError("the pages did not end")


def test_alert_pages_serve_each_alert_once_while_alerts_are_raised_and_cleared(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    ids = [f"d{i}" for i in range(11)]
    feed(data, source, device_reports(T0, [True] * 11, [50.0 + i for i in range(11)], ids))
    signs = VitalSigns.from_config(data, {"rules": [PM]}, max_age=0)
    app = Flask(__name__)
    app.register_blueprint(create_signs_blueprint(signs))
    client = app.test_client()
    # Three rounds at different times: alerts with distinct and with equal first_seen.
    for new in (["e0", "e1", "e2"], ["e3"]):
        clock.advance(minutes=1)
        feed(data, source, device_reports(clock.now(), [True] * len(new), [90.0] * len(new),
                                          new))
        client.get("/api/alerts")
    before = signs.book.listed("all")
    # The order, computed here: newest first_seen first, then the higher running number.
    expected = [a.id for a in sorted(before, key=lambda a: (a.first_seen,
                                                            int(a.id.rsplit("-", 1)[1])),
                                     reverse=True)]
    assert len(expected) == 15

    served: list[str] = []
    response = client.get("/api/alerts?state=all&limit=4")
    for step in range(10):
        body = response.get_json()
        served.extend(a["id"] for a in body["alerts"])
        if body["next_cursor"] is None:
            break
        # Between pages: a new device alarms (a new alert, newer than the walk), and one
        # already served falls quiet (its alert moves from active to cleared).
        clock.advance(minutes=1)
        feed(data, source, device_reports(clock.now(), [True, True], [99.0, 1.0],
                                          [f"n{step}", f"d{10 - step}"]))
        response = client.get(f"/api/alerts?state=all&limit=4&cursor={body['next_cursor']}")
    assert served == expected
    assert len(signs.book.listed("all")) > len(expected)
    assert any(a.state == "cleared" for a in signs.book.listed("all"))
    # Unpaged, the same order and everything.
    everything = client.get("/api/alerts?state=all").get_json()
    assert everything["next_cursor"] is None
    assert [a["id"] for a in everything["alerts"]][-len(expected):] == expected


def test_cell_pages_put_together_are_the_whole_list(api) -> None:
    whole = api.get("/api/layers/government/cells?res=9").get_json()
    assert len(whole) > 250
    rows, cursors = _walk(api, "/api/layers/government/cells?res=9&limit=100")
    assert rows == sorted(whole, key=lambda r: r["cell"]) == whole
    assert len(cursors) == (len(whole) - 1) // 100
    # Another resolution's or layer's cursor is not this list's.
    other = api.get("/api/layers/people/cells?res=9&limit=1").headers["X-Next-Cursor"]
    answer = api.get(f"/api/layers/government/cells?res=9&cursor={other}")
    assert answer.status_code == 400 and "cursor" in answer.get_json()["error"]


def _forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=ten", "cursor=not-a-cursor", "cursor=%%%",
    f"cursor={_forged({'r': 'events', 'k': ['2025-01-01T00:00:00+00:00', 1]})}",
    f"cursor={_forged({'r': 'alerts', 'k': [1]})}",
    f"cursor={_forged({'r': 'alerts', 'k': ['x', 1]})}",
    f"cursor={_forged({'r': 'alerts', 'k': [True, 1]})}",
    f"cursor={_forged([1, 2])}",
])
def test_bad_cursor_or_limit_is_a_json_400(tmp_path: Path, query: str) -> None:
    data, _ = live_city(tmp_path, ManualClock(T0))
    app = Flask(__name__)
    app.register_blueprint(create_signs_blueprint(VitalSigns.from_config(data, {"rules": [PM]})))
    response = app.test_client().get(f"/api/alerts?{query}")
    assert response.status_code == 400 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == 400 and ("cursor" in body["error"] or "limit" in body["error"])


def test_bad_event_cursor_is_a_json_400(tmp_path: Path, monkeypatch) -> None:
    from api.events import create_events_blueprint
    from ops.events import EventPipeline, parse_events_settings, parse_users

    monkeypatch.setenv("TEST_PAGING_TOKEN", "paging-token-0123456789")
    pipeline = EventPipeline(parse_events_settings({"path": "e.sqlite3"}, tmp_path), parse_users(
        [{"name": "wang", "role": "viewer", "token_env": "TEST_PAGING_TOKEN"}]))
    app = Flask(__name__)
    app.register_blueprint(create_events_blueprint(pipeline))
    headers = {"Authorization": "Bearer paging-token-0123456789"}
    for cursor in (_forged({"r": "events", "k": ["yesterday", 1]}),
                   _forged({"r": "events", "k": ["2025-01-01T00:00:00", 1]}),
                   _forged({"r": "alerts", "k": [1, 1]}), "x"):
        response = app.test_client().get(f"/api/events?cursor={cursor}", headers=headers)
        assert response.status_code == 400 and "cursor" in response.get_json()["error"]
    good = _forged({"r": "events", "k": [pd.Timestamp(T0).isoformat(), 1]})
    assert app.test_client().get(f"/api/events?cursor={good}", headers=headers).get_json() == []
    pipeline.close()
