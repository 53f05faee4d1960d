"""The event pipeline on a SQLite store: intake, merging, dispatch, supervision, API, roles.

Expected values for the real 311 data are computed here from the Parquet file with
plain pandas and h3's string API — none of citybrain's own functions.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from api.events import create_events_blueprint
from config.city import ConfigError
from ops.events import (
    ConflictError,
    EventPipeline,
    PermissionDenied,
    TransitionError,
    parse_events_settings,
    parse_users,
)
from ops.events.calendar import Sla
from ops.events.policy import CategoryRules
from ops.events.store import cell_ranges

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "cities" / "nyc" / "data"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BASE = h3.latlng_to_cell(40.7500, -73.9900, 9)
TOKENS = {"op": "operator-token-0123456789", "view": "viewer-token-0123456789",
          "hall": "exhibition-token-0123456789"}
XSS = "<script>alert(1)</script>"


def _settings(tmp_path: Path, **table: object):
    return parse_events_settings({"path": "events.sqlite3", **table}, tmp_path)


def _point(cell9: str) -> tuple[float, float]:
    return h3.cell_to_latlng(cell9)


def _row(source_id: str, category: str, at: datetime, cell9: str = BASE, *,
         agency: str | None = None, closed: datetime | None = None, descriptor: str = "",
         channel: str | None = None, source: str = "hotline") -> dict[str, object]:
    lat, lon = _point(cell9)
    return {"id": source_id, "time": pd.Timestamp(at), "lat": lat, "lon": lon,
            "cell": h3.str_to_int(h3.latlng_to_cell(lat, lon, 10)), "source": source,
            "name": None, "category": category, "agency": agency,
            "status": "Closed" if closed else "Open",
            "closed_time": pd.Timestamp(closed) if closed else pd.NaT,
            "descriptor": descriptor, "channel": channel, "is_open": closed is None}


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["closed_time"] = pd.to_datetime(frame["closed_time"], utc=True)
    return frame


@pytest.fixture()
def pipeline(tmp_path: Path):
    events = EventPipeline(_settings(
        tmp_path, default_department="Hotline triage", default_sla="72h",
        use_source_agency=False, departments={"Illegal Parking": "NYPD", "Noise*": "NYPD",
                                              "Street Condition": "DOT"},
        sla={"Illegal Parking": "4h", "Noise*": "8h"}))
    yield events
    events.close()


# ----------------------------------------------------------------------- config
def test_settings_defaults_and_durations(tmp_path: Path) -> None:
    settings = parse_events_settings({}, tmp_path)
    assert settings.store == "sqlite" and settings.path == (tmp_path / "var/events.sqlite3")
    assert settings.merge_window == 7200 and settings.merge_res == 9
    custom = _settings(tmp_path, merge_window="30m", default_sla="2d", sla={"Rodent": "14d"})
    assert custom.merge_window == 1800 and custom.default_sla == Sla(172800)
    assert custom.sla == {"Rodent": Sla(14 * 86400)}


@pytest.mark.parametrize(("table", "message"), [
    ({"merge_windw": "2h"}, "unknown key(s) 'merge_windw'; valid keys are: agencies, "),
    ({"store": "mysql"}, "unknown store 'mysql'; valid stores are: sqlite, postgresql"),
    ({"merge_window": "soon"}, "expected a duration"),
    ({"sla": {"Rodent": "0h"}}, "must be positive"),
    ({"table_prefix": "x; DROP TABLE events"}, "must be lower-case letters"),
    ({"departments": {"Rodent": ""}}, "expected a non-empty string"),
])
def test_settings_refuse_bad_tables(tmp_path: Path, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        parse_events_settings(table, tmp_path)
    assert message in str(caught.value)


def test_users_need_a_role_and_a_secret_variable() -> None:
    users = parse_users([{"name": "ops", "role": "operator", "token_env": "OPS_TOKEN"}])
    assert users[0].role == "operator" and users[0].password_hash_env is None
    with pytest.raises(ConfigError, match="valid roles are: operator, viewer, exhibition"):
        parse_users([{"name": "x", "role": "admin", "token_env": "X"}])
    with pytest.raises(ConfigError, match="needs password_hash_env or token_env"):
        parse_users([{"name": "x", "role": "viewer"}])
    with pytest.raises(ConfigError, match="valid keys are: name, password_hash_env, role"):
        parse_users([{"name": "x", "role": "viewer", "password": "hunter2"}])
    with pytest.raises(ConfigError, match="duplicate user name"):
        parse_users([{"name": "x", "role": "viewer", "token_env": "A"}] * 2)


def test_nyc_config_parses_and_routes_sensibly() -> None:
    raw = tomllib.loads((REPO / "cities/nyc/snapshot.toml").read_text(encoding="utf-8"))
    settings = parse_events_settings(raw["events"], REPO / "cities/nyc")
    users = parse_users(raw["users"])
    assert {u.role for u in users} == {"operator", "viewer", "exhibition"}
    assert settings.path == REPO / "var" / "events-nyc.sqlite3"
    rules = CategoryRules.build(settings.departments, settings.default_department)
    expected = {"Noise - Residential": "NYPD", "Noise - Helicopter": "EDC", "Noise": "DEP",
                "HEAT/HOT WATER": "HPD", "Illegal Parking": "NYPD", "Street Condition": "DOT",
                "Street Sign - Missing": "DOT", "Unsanitary Animal Pvt Property": "DOHMH",
                "Animal-Abuse": "NYPD", "Dead Animal": "DSNY", "Damaged Tree": "DPR",
                "Taxi Complaint": "TLC", "Something new": "311 Customer Service Center"}
    assert {c: rules.match(c)[0] for c in expected} == expected
    # On the real data the rules agree with the agency 311 itself assigned, nearly always.
    real = pd.read_parquet(DATA / "service_requests_311.parquet",
                           columns=["complaint_type", "agency"]).drop_duplicates()
    agree = sum(rules.match(c)[0] == a for c, a in zip(real.complaint_type, real.agency,
                                                       strict=True))
    assert agree >= len(real) - 1  # "Encampment" goes to DHS or NYPD


# ---------------------------------------------------------------------- merging
def test_duplicates_merge_by_category_place_and_time(pipeline: EventPipeline) -> None:
    neighbour = sorted(h3.grid_ring(BASE, 1))[0]
    far = sorted(h3.grid_ring(BASE, 3))[0]
    result = pipeline.ingest(_frame([
        _row("1", "Illegal Parking", T0),
        _row("2", "Illegal Parking", T0 + timedelta(minutes=50), neighbour),   # merges into 1
        _row("3", "Illegal Parking", T0 + timedelta(hours=2, minutes=5)),      # outside 2 h
        _row("4", "Noise - Street/Sidewalk", T0 + timedelta(minutes=10)),      # other category
        _row("5", "Illegal Parking", T0 + timedelta(minutes=20), far),         # too far away
    ]))
    assert (result.rows, result.created, result.merged) == (5, 4, 1)
    events = {e.source_id: e for e in pipeline.store.all_events()}
    assert set(events) == {"1", "3", "4", "5"}
    assert events["1"].report_count == 2
    assert all(events[k].report_count == 1 for k in ("3", "4", "5"))
    event, reports, audit = pipeline.detail(events["1"].id)
    assert [r.source_id for r in reports] == ["1", "2"]
    assert [a.action for a in audit] == ["receive", "dispatch", "merge"]
    assert "hotline:2" in audit[-1].note and event.version == 3 == audit[-1].seq


def test_reingest_is_idempotent_and_order_does_not_matter(tmp_path: Path,
                                                          pipeline: EventPipeline) -> None:
    rows = [_row(str(i), "Illegal Parking" if i % 3 else "Noise - Vehicle",
                 T0 + timedelta(minutes=17 * i), sorted(h3.grid_disk(BASE, 1))[i % 7])
            for i in range(30)]
    first = pipeline.ingest(_frame(rows))
    before = [e.as_dict(T0) for e in pipeline.store.all_events()]
    again = pipeline.ingest(_frame(rows))
    assert again.created == again.merged == 0 and again.skipped == {"already ingested": 30}
    assert [e.as_dict(T0) for e in pipeline.store.all_events()] == before
    assert pipeline.store.count_reports() == 30
    assert first.created + first.merged == 30 and first.merged > 0

    shuffled = EventPipeline(_settings(tmp_path / "other", **{
        k: getattr(pipeline.settings, k) for k in ("default_department", "use_source_agency")}
        | {"departments": dict(pipeline.settings.departments),
           "sla": {k: v.seconds for k, v in pipeline.settings.sla.items()}}))
    try:
        shuffled.ingest(_frame(rows[::-1] + rows[:5]))
        assert [e.as_dict(T0) for e in shuffled.store.all_events()] == before
    finally:
        shuffled.close()


def test_bad_rows_are_counted_not_dropped_silently(pipeline: EventPipeline) -> None:
    rows = [_row("1", "Illegal Parking", T0), _row("1", "Illegal Parking", T0),
            _row("", "Illegal Parking", T0)]
    rows[2]["id"] = None
    result = pipeline.ingest(_frame(rows))
    assert result.created == 1
    assert result.skipped == {"duplicate id in batch": 1, "missing id": 1}


# --------------------------------------------------------------------- dispatch
def test_dispatch_rules_exact_pattern_and_default(pipeline: EventPipeline) -> None:
    far = [sorted(h3.grid_ring(BASE, 4 * k))[0] for k in range(1, 5)]
    pipeline.ingest(_frame([
        _row("a", "Illegal Parking", T0, far[0]),
        _row("b", "noise - STREET/sidewalk", T0, far[1]),
        _row("c", "Mystery smell", T0, far[2]),
        _row("d", None, T0, far[3]),  # type: ignore[arg-type]
    ]))
    events = {e.source_id: e for e in pipeline.store.all_events()}
    assert {k: e.department for k, e in events.items()} == {
        "a": "NYPD", "b": "NYPD", "c": "Hotline triage", "d": "Hotline triage"}
    assert events["d"].category == "uncategorised"
    assert all(e.status == "dispatched" and e.dispatched_by == "auto-dispatch"
               for e in events.values())
    notes = {k: pipeline.detail(e.id)[2][1].note for k, e in events.items()}
    assert notes == {"a": "rule 'Illegal Parking'", "b": "rule 'Noise*'",
                     "c": "default department", "d": "default department"}


def test_source_agency_wins_when_configured(tmp_path: Path) -> None:
    events = EventPipeline(_settings(tmp_path, departments={"Rodent": "Health"},
                                     agencies={"DOHMH": "Health dept."}))
    try:
        events.ingest(_frame([_row("1", "Rodent", T0, agency="DOHMH"),
                              _row("2", "Rodent", T0, sorted(h3.grid_ring(BASE, 5))[0])]))
        assert [e.department for e in events.store.all_events()] == ["Health dept.", "Health"]
    finally:
        events.close()


def test_operator_redispatch(pipeline: EventPipeline) -> None:
    pipeline.ingest(_frame([_row("1", "Illegal Parking", T0)]))
    moved = pipeline.transition(1, "dispatched", actor="li", role="operator", department="DOT",
                                note="it is a street defect", now=T0 + timedelta(minutes=5))
    assert (moved.department, moved.dispatched_by) == ("DOT", "li")
    with pytest.raises(TransitionError, match="already dispatched to 'DOT'"):
        pipeline.transition(1, "dispatched", actor="li", role="operator", department="DOT")
    audit = pipeline.detail(1)[2][-1]
    assert (audit.actor, audit.role, audit.department, audit.at) == \
        ("li", "operator", "DOT", T0 + timedelta(minutes=5))


# ------------------------------------------------------------------ supervision
def test_overdue_escalation_is_idempotent(pipeline: EventPipeline) -> None:
    pipeline.ingest(_frame([_row("1", "Illegal Parking", T0),           # SLA 4 h
                            _row("2", "Street Condition", T0, sorted(h3.grid_ring(BASE, 6))[0])]))
    assert pipeline.supervise(T0 + timedelta(hours=3)) == []
    assert pipeline.stats(T0 + timedelta(hours=3))["overdue"] == 0
    first = pipeline.supervise(T0 + timedelta(hours=5))
    assert [(e.id, e.escalation) for e in first] == [(1, 1)]
    assert pipeline.supervise(T0 + timedelta(hours=5)) == []
    assert pipeline.supervise(T0 + timedelta(hours=7)) == []           # level 2 from 8 h
    assert [e.escalation for e in pipeline.supervise(T0 + timedelta(hours=9))] == [2]
    assert [e.escalation for e in pipeline.supervise(T0 + timedelta(days=30))] == [3, 3]
    assert pipeline.supervise(T0 + timedelta(days=60)) == []           # max_escalation 3
    escalations = [a for a in pipeline.detail(1)[2] if a.action == "escalate"]
    assert [a.note.split(":")[0] for a in escalations] == [
        "escalated to level 1", "escalated to level 2", "escalated to level 3"]
    stats = pipeline.stats(T0 + timedelta(hours=5))
    assert (stats["open"], stats["overdue"]) == (2, 1)
    assert stats["overdue_events"][0]["id"] == 1


def test_resolved_events_are_not_escalated(pipeline: EventPipeline) -> None:
    pipeline.ingest(_frame([_row("1", "Illegal Parking", T0)]))
    for to in ("in_progress", "resolved"):
        pipeline.transition(1, to, actor="li", role="operator", now=T0 + timedelta(hours=1))
    assert pipeline.supervise(T0 + timedelta(days=3)) == []
    assert pipeline.stats(T0 + timedelta(days=3))["overdue"] == 0


# -------------------------------------------------------------------- lifecycle
def test_lifecycle_path_refusals_and_audit(pipeline: EventPipeline) -> None:
    pipeline.ingest(_frame([_row("1", "Illegal Parking", T0)]))
    steps = ["in_progress", "resolved", "in_progress", "resolved", "closed"]
    for i, to in enumerate(steps, start=1):
        event = pipeline.transition(1, to, actor="li", role="operator", note=f"step {i}",
                                    now=T0 + timedelta(hours=i))
        assert event.status == to and event.version == 2 + i
    assert event.closed_at == T0 + timedelta(hours=5)
    assert event.resolved_at == T0 + timedelta(hours=4)
    before = pipeline.detail(1)
    with pytest.raises(TransitionError) as refused:
        pipeline.transition(1, "dispatched", actor="li", role="operator")
    assert "allowed next states: none" in str(refused.value)
    assert pipeline.detail(1) == before

    pipeline.ingest(_frame([_row("2", "Noise - Vehicle", T0)]))
    with pytest.raises(TransitionError, match="allowed next states: in_progress, dispatched"):
        pipeline.transition(2, "closed", actor="li", role="operator")
    with pytest.raises(TransitionError, match="unknown status 'done'"):
        pipeline.transition(2, "done", actor="li", role="operator")
    with pytest.raises(TransitionError, match="only be given when dispatching"):
        pipeline.transition(2, "in_progress", actor="li", role="operator", department="DOT")
    with pytest.raises(PermissionDenied):
        pipeline.transition(2, "in_progress", actor="kiosk", role="exhibition")
    with pytest.raises(ConflictError, match="expected version 1, it is now at version 2"):
        pipeline.transition(2, "in_progress", actor="li", role="operator", expected_version=1)
    assert pipeline.get(2).version == 2

    audit = pipeline.detail(1)[2]
    assert [a.seq for a in audit] == list(range(1, 8))
    assert [a.to_status for a in audit] == ["received", "dispatched", *steps]
    assert all(a.from_status == b.to_status for b, a in zip(audit, audit[1:], strict=False))
    assert [(a.actor, a.role, a.note) for a in audit[2:]] == \
        [("li", "operator", f"step {i}") for i in range(1, 6)]


# ---------------------------------------------------------------- the real data
def _utc(text: pd.Series) -> pd.Series:
    local = pd.to_datetime(text, format="mixed")
    return local.dt.tz_localize("America/New_York", ambiguous="NaT",
                                nonexistent="shift_forward").dt.tz_convert("UTC")


def _expected_311(now: pd.Timestamp) -> dict[str, Any]:
    """Independent numbers from the Parquet file: plain pandas, h3, a naive merge loop."""
    raw = pd.read_parquet(DATA / "service_requests_311.parquet")
    raw = raw[raw.latitude.notna() & raw.longitude.notna()
              & ~((raw.latitude == 0) & (raw.longitude == 0))].copy()
    raw["created"] = _utc(raw.created_date)
    raw["closed"] = _utc(raw.closed_date)
    is_closed = raw.closed.notna() | raw.status.str.strip().str.lower().eq("closed")
    hours = (raw.closed - raw.created).dt.total_seconds() / 3600.0
    hours = hours[hours >= 0]
    by_category = hours.groupby(raw.loc[hours.index, "complaint_type"])

    opened = raw[~is_closed].copy()
    opened["cell9"] = [h3.latlng_to_cell(a, b, 9)
                       for a, b in zip(opened.latitude, opened.longitude, strict=True)]
    opened["key"] = opened.unique_key.astype(str)
    events: list[dict[str, Any]] = []  # in creation order = earliest first
    for row in opened.sort_values(["created", "key"]).itertuples():
        near = set(h3.grid_disk(row.cell9, 1))
        target = next((e for e in events if e["category"] == row.complaint_type
                       and e["cell9"] in near
                       and abs(row.created - e["first"]) <= pd.Timedelta(hours=2)), None)
        if target is None:
            events.append({"category": row.complaint_type, "cell9": row.cell9,
                           "first": row.created, "reports": 1})
        else:
            target["reports"] += 1

    def sla(category: str) -> pd.Timedelta:
        if category.lower().startswith("noise"):
            return pd.Timedelta(hours=8)
        return pd.Timedelta(hours=24 if category == "HEAT/HOT WATER" else 72)

    return {
        "rows": len(raw), "closed": int(is_closed.sum()), "open_rows": int((~is_closed).sum()),
        "median": hours.median(), "p90": hours.quantile(0.9), "closed_with_time": len(hours),
        "by_category": {c: (len(h), h.median(), h.quantile(0.9)) for c, h in by_category},
        "open_events": len(events),
        "overdue": sum(now > e["first"] + sla(str(e["category"])) for e in events),
    }


def test_real_311_import_matches_independent_pandas(tmp_path: Path, demo_data) -> None:
    now = pd.Timestamp("2025-03-12T00:00:00Z")
    expected = _expected_311(now)
    events = EventPipeline(_settings(tmp_path, sla={"Noise*": "8h", "HEAT/HOT WATER": "24h"},
                                     default_sla="72h"))
    try:
        frame = demo_data.frame("government", "requests")
        result = events.ingest(frame)
        assert result.rows == expected["rows"] and not result.skipped
        stats = events.stats(now.to_pydatetime())
        assert stats["reports"] == expected["rows"] == events.store.count_reports()
        assert stats["by_status"]["closed"] == expected["closed"]
        assert stats["open"] == expected["open_events"]
        assert stats["total"] - stats["by_status"]["closed"] + stats["merged_reports"] \
            == expected["open_rows"]
        assert stats["overdue"] == expected["overdue"]
        ttc = stats["time_to_close"]
        assert ttc["count"] == expected["closed_with_time"]
        assert ttc["median_hours"] == pytest.approx(expected["median"], rel=1e-9)
        assert ttc["p90_hours"] == pytest.approx(expected["p90"], rel=1e-9)
        by_category = {r["category"]: (r["count"], r["median_hours"], r["p90_hours"])
                       for r in ttc["by_category"]}
        assert by_category.keys() == expected["by_category"].keys()
        for category, (n, median, p90) in expected["by_category"].items():
            assert by_category[category] == (n, pytest.approx(median), pytest.approx(p90))

        # Historical rows keep their real times; open ones sit with their 311 agency.
        closed = events.events(status=["closed"], limit=1)[0]
        _, reports, audit = events.detail(closed.id)
        assert closed.received_at == reports[0].reported_at == audit[0].at
        assert audit[-1].at == closed.closed_at and audit[-1].actor == "import"
        raw = pd.read_parquet(DATA / "service_requests_311.parquet")
        agency = dict(zip(raw.unique_key.astype(str), raw.agency, strict=True))
        opened = events.events(status=["dispatched"], limit=1000)
        assert opened and all(e.department == agency[e.source_id] for e in opened)

        again = events.ingest(frame)
        assert again.created == 0 and again.skipped == {"already ingested": expected["rows"]}
        assert events.stats(now.to_pydatetime())["reports"] == expected["rows"]
        escalated = events.supervise(now.to_pydatetime())
        assert len(escalated) == expected["overdue"]
        assert events.supervise(now.to_pydatetime()) == []
    finally:
        events.close()


def test_cell_ranges_select_exactly_the_descendants(demo_data) -> None:
    cells = demo_data.frame("government", "requests")["cell"].to_numpy()[:3000]
    for res in (7, 8, 9, 10):
        parent = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(cells[0])), res))
        ranges = cell_ranges(parent)
        inside = np.zeros(len(cells), dtype=bool)
        for lo, hi in ranges:
            inside |= (cells >= lo) & (cells <= hi)
        truth = np.array([h3.cell_to_parent(h3.int_to_str(int(c)), res) == h3.int_to_str(parent)
                          for c in cells])
        assert truth.any() and (inside == truth).all()


# ------------------------------------------------------------------ API & roles
@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key, token in TOKENS.items():
        monkeypatch.setenv(f"TEST_EVENTS_{key.upper()}_TOKEN", token)
    monkeypatch.setenv("TEST_EVENTS_OP_HASH", generate_password_hash("correct horse"))
    users = parse_users([
        {"name": "li", "role": "operator", "token_env": "TEST_EVENTS_OP_TOKEN",
         "password_hash_env": "TEST_EVENTS_OP_HASH"},
        {"name": "wang", "role": "viewer", "token_env": "TEST_EVENTS_VIEW_TOKEN"},
        {"name": "hall", "role": "exhibition", "token_env": "TEST_EVENTS_HALL_TOKEN"},
    ])
    events = EventPipeline(_settings(tmp_path, departments={"Illegal Parking": "NYPD"}), users)
    events.ingest(_frame([
        _row("1", "Illegal Parking", T0, descriptor=XSS),
        _row("2", "Street Condition", T0, sorted(h3.grid_ring(BASE, 8))[0]),
    ]))
    app = Flask(__name__)
    app.secret_key = "test-only"
    app.register_blueprint(create_events_blueprint(events))
    yield app.test_client()
    events.close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[key]}"}


def test_api_reads_for_every_role(client) -> None:
    assert client.get("/api/events").status_code == 401
    assert client.get("/api/events", headers={"Authorization": "Bearer wrong"}).status_code \
        == 401
    for key in ("op", "view"):
        listed = client.get("/api/events?status=open&limit=10", headers=_auth(key))
        assert listed.status_code == 200 and len(listed.get_json()) == 2
    # Events are people: the exhibition wall reads none of them (privacy by role).
    for path in ("/api/events?status=open", "/api/events/stats", "/api/events/1"):
        assert client.get(path, headers=_auth("hall")).status_code == 403
    body = client.get("/api/events?department=NYPD", headers=_auth("view")).get_json()
    assert [e["source_id"] for e in body] == ["1"]
    near = h3.cell_to_parent(body[0]["cell"], 8)
    assert [e["source_id"] for e in client.get(f"/api/events?cell={near}",
                                               headers=_auth("view")).get_json()] == ["1"]
    stats = client.get("/api/events/stats", headers=_auth("view")).get_json()
    assert stats["by_status"]["dispatched"] == 2 and stats["open"] == 2
    assert client.get("/api/events/99", headers=_auth("view")).status_code == 404
    for bad in ("status=nope", "limit=0", "limit=x", "cell=zz"):
        response = client.get(f"/api/events?{bad}", headers=_auth("view"))
        assert response.status_code == 400 and response.get_json()["error"]


def test_public_text_round_trips_as_literal_json(client) -> None:
    response = client.get("/api/events/1", headers=_auth("view"))
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_json()
    assert body["event"]["description"] == XSS and body["reports"][0]["description"] == XSS
    assert [a["to"] for a in body["audit"]] == ["received", "dispatched"]


def test_api_transitions_need_the_operator_role(client) -> None:
    move = {"to": "in_progress", "expected_version": 2, "note": "on it"}
    assert client.post("/api/events/1/transition", json=move).status_code == 401
    for key in ("view", "hall"):
        refused = client.post("/api/events/1/transition", json=move, headers=_auth(key))
        assert refused.status_code == 403 and "allowed roles: operator" in \
            refused.get_json()["error"]
    assert client.get("/api/events/1", headers=_auth("view")).get_json()["event"]["version"] == 2

    done = client.post("/api/events/1/transition", json=move, headers=_auth("op"))
    assert done.status_code == 200
    assert (done.get_json()["status"], done.get_json()["version"]) == ("in_progress", 3)
    stale = client.post("/api/events/1/transition", json={**move, "to": "resolved"},
                        headers=_auth("op"))
    assert stale.status_code == 409 and stale.get_json()["current_version"] == 3
    invalid = client.post("/api/events/1/transition", json={"to": "closed"},
                          headers=_auth("op"))
    assert invalid.status_code == 400
    assert invalid.get_json()["allowed"] == ["resolved", "dispatched"]
    assert client.post("/api/events/9/transition", json=move, headers=_auth("op")).status_code \
        == 404
    assert client.post("/api/events/1/transition", json={"to": "resolved", "x": 1},
                       headers=_auth("op")).status_code == 400
    assert client.post("/api/events/1/transition", data="to=resolved",
                       headers=_auth("op")).status_code == 415
    audit = client.get("/api/events/1", headers=_auth("op")).get_json()["audit"]
    assert [(a["to"], a["actor"], a["role"], a["note"]) for a in audit[2:]] == \
        [("in_progress", "li", "operator", "on it")]


def test_session_login_with_a_password_hash(client) -> None:
    assert client.post("/api/events/login",
                       json={"name": "li", "password": "wrong"}).status_code == 401
    assert client.post("/api/events/login",
                       json={"name": "nobody", "password": "x"}).status_code == 401
    logged = client.post("/api/events/login", json={"name": "li", "password": "correct horse"})
    assert logged.status_code == 200 and logged.get_json() == {"name": "li", "role": "operator"}
    assert client.get("/api/events/me").get_json()["name"] == "li"
    moved = client.post("/api/events/2/transition", json={"to": "in_progress"})
    assert moved.status_code == 200
    client.post("/api/events/logout")
    assert client.get("/api/events/me").status_code == 401
