"""Faults are visible: JSON for every /api failure, and health naming each dependency.

The outages themselves (a private Redis, PostgreSQL and Mosquitto stopped under a
running app) are in tests/integration/test_fault_health.py; here the pieces run on
a bare Flask app and on a small synthetic city with an event pipeline in SQLite.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from api.errors import ApiError, install_catch_all
from services import Heartbeat
from services.dependencies import PROBE_EVERY
from tests.integration.test_shared_live import city_table, write_city_files


@pytest.fixture()
def bare() -> Any:
    app = Flask(__name__)
    install_catch_all(app)

    @app.get("/api/boom")
    def boom() -> Any:
        raise RuntimeError("the database went away")

    @app.get("/api/deep")
    def deep() -> Any:
        def down(n: int) -> int:
            return down(n + 1)
        return down(0)

    @app.get("/api/refused")
    def refused() -> Any:
        raise ApiError(418, "no tea", kind="teapot")

    @app.get("/api/lost")
    def lost() -> Any:
        import psycopg

        raise psycopg.OperationalError("connection refused")

    @app.get("/page/boom")
    def page_boom() -> Any:
        raise RuntimeError("not an API path")

    return app.test_client()


def test_every_api_failure_is_json(bare: Any) -> None:
    for path, status in (("/api/boom", 500), ("/api/deep", 500), ("/api/nothing-here", 404),
                         ("/api/refused", 418)):
        answer = bare.get(path)
        assert (answer.status_code, answer.mimetype) == (status, "application/json"), path
        body = answer.get_json()
        assert body["status"] == status and body["error"]
    assert "RuntimeError" in bare.get("/api/boom").get_json()["error"]
    lost = bare.get("/api/lost")
    assert (lost.status_code, lost.mimetype, lost.headers["Retry-After"]) == \
        (503, "application/json", "5")
    assert "the database went away" not in bare.get("/api/boom").get_json()["error"]
    wrong_method = bare.post("/api/boom")
    assert (wrong_method.status_code, wrong_method.mimetype) == (405, "application/json")
    assert set(wrong_method.headers["Allow"].split(", ")) >= {"GET"}
    page = bare.get("/page/boom")
    assert page.status_code == 500 and page.mimetype == "text/html"  # not ours to change


def test_a_heartbeat_records_failures_and_recovery() -> None:
    beat = Heartbeat()
    calls: list[bool] = []

    def task(changed: bool) -> None:
        calls.append(changed)
        if len(calls) == 1:
            raise ValueError("NUL byte in a text field")

    watched = beat.watch(task)
    with pytest.raises(ValueError):
        watched(True)
    assert beat.failing and beat.last_error == "ValueError: NUL byte in a text field"
    watched(False)
    assert not beat.failing and beat.last_ok is not None and calls == [True, False]


def test_health_names_sources_store_and_tasks_with_state_since_and_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import create_app, parse_config

    monkeypatch.setenv("CITYBRAIN_SECRET_KEY", "unit")
    write_city_files(tmp_path)
    table = city_table("unused:", tmp_path, speed=600)
    table.pop("cache")
    table["events"] = {"store": "sqlite", "path": str(tmp_path / "events.sqlite3")}
    app = create_app(parse_config(table, tmp_path), start_ingest=False)
    client = app.server.test_client()
    try:
        doc = client.get("/api/health").get_json()
        by_name = {d["name"]: d for d in doc["dependencies"]}
        expected = {"sqlite:events", "source:requests", "source:service-points", "event-intake"}
        assert set(by_name) == expected
        for entry in by_name.values():
            assert set(entry) == {"name", "kind", "state", "since", "why"} and entry["since"]
        assert by_name["sqlite:events"]["state"] == "ok"

        app.services.intake.failed(RuntimeError("psycopg.DataError: NUL byte"))
        doc = client.get("/api/health").get_json()
        intake = {d["name"]: d for d in doc["dependencies"]}["event-intake"]
        assert intake["state"] == "down" and "NUL byte" in intake["why"]
        assert "event-intake" in doc["down"] and doc["status"] == "degraded"
        since = intake["since"]
        assert {d["name"]: d for d in client.get("/api/health").get_json()["dependencies"]}[
            "event-intake"]["since"] == since  # unchanged while the state holds
        app.services.intake.beat()
        intake = {d["name"]: d for d in client.get("/api/health").get_json()["dependencies"]}[
            "event-intake"]
        assert intake["state"] == "ok" and intake["why"] is None

        (tmp_path / "events.sqlite3").rename(tmp_path / "moved.sqlite3")
        time.sleep(PROBE_EVERY + 0.1)  # past the probe's reuse interval
        store = {d["name"]: d for d in client.get("/api/health").get_json()["dependencies"]}[
            "sqlite:events"]
        assert store["state"] == "down" and store["why"]
    finally:
        if app.services.events is not None:
            app.services.events.close()


def test_the_page_banner_names_dependencies_that_are_down() -> None:
    from zoneinfo import ZoneInfo

    from callbacks.panels import dependency_lines

    found = [
        {"name": "redis", "kind": "redis", "state": "down", "since": "2026-03-01T12:00:05+00:00",
         "why": "ConnectionError: refused"},
        {"name": "source:buses", "kind": "source", "state": "stale", "since": None, "why": "x"},
        {"name": "event-intake", "kind": "task", "state": "ok", "since": None, "why": None},
        {"name": "alert-evaluation", "kind": "task", "state": "stale",
         "since": "2026-03-01T12:00:05+00:00", "why": None},
    ]
    lines = dependency_lines(found, "en", ZoneInfo("Asia/Shanghai"))
    assert lines == ["redis down since 20:00:05 — ConnectionError: refused",
                     "alert-evaluation stale since 20:00:05"]
    assert dependency_lines(found, "zh-CN", ZoneInfo("UTC"))[0].startswith("redis 自 12:00:05 起不可用")
