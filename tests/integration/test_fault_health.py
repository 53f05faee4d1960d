"""Faults are visible: stop a private Redis, PostgreSQL or Mosquitto under a running app.

Each test builds the real app in this process on a small synthetic city (the
shared-live test city: replayed requests and service points, or MQTT devices),
stops the service, and checks that ``/api/health`` names it ``down`` within
seconds, that every ``/api`` route answers JSON (never Flask's HTML) during the
outage, and that health says ``ok`` again soon after the service is back. The
times to detect and to recover are printed (``pytest -s``) for the closing figures.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h3
import pytest

from app import create_app, parse_config
from tests.conftest import free_port, require, start_private_redis
from tests.integration.test_mqtt import MOSQUITTO, PrivateBroker, device_table
from tests.integration.test_shared_live import CITY, city_table, write_city_files
from tests.pgtools import PrivatePostgres

pytestmark = pytest.mark.service

TOKEN = "fault-test-token-" + "x" * 16
TOKEN_ENV = "CITYBRAIN_TEST_FAULT_TOKEN"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout``)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out after {timeout:g} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - started


def dependency(client: Any, name: str) -> dict[str, Any]:
    answer = client.get("/api/health")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    found = {d["name"]: d for d in answer.get_json()["dependencies"]}
    assert name in found, sorted(found)
    return found[name]


def every_api_route(app: Any) -> list[tuple[str, str]]:
    """(method, path) for each ``/api`` rule of the app, its parameters filled in."""
    cell = h3.latlng_to_cell(40.75, -73.98, 8)
    values = {"event_id": "1", "cell_id": cell, "layer_id": "government", "rest": "no/such/thing"}
    calls = []
    for rule in app.server.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", values[argument])
            for converter in ("int", "path", "string"):
                path = path.replace(f"<{converter}:{argument}>", values[argument])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            calls.append((method, path))
    return calls


def all_json(app: Any) -> dict[str, int]:
    """Call every API route (anonymous and with a token); each answer must be JSON.

    Returns how many answers had each status class, e.g. ``{"2xx": 9, "5xx": 2}``.
    """
    counts: dict[str, int] = {}
    client = app.server.test_client()
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        for method, path in every_api_route(app):
            body = {"to": "in_progress"} if path.endswith("/transition") else \
                {"name": "x", "password": "y"} if path.endswith("/login") else None
            answer = client.open(path, method=method, json=body, headers=headers)
            assert answer.mimetype == "application/json", (method, path, answer.status_code,
                                                           answer.get_data(as_text=True)[:200])
            json.loads(answer.get_data(as_text=True))
            key = f"{answer.status_code // 100}xx"
            counts[key] = counts.get(key, 0) + 1
    return counts


def report(what: str, detect: float, recover: float, counts: dict[str, int]) -> None:
    print(f"\nFAULT {what}: detected in {detect:.1f} s, recovered in {recover:.1f} s, "
          f"API answers during the outage {counts} (all JSON)")


@pytest.fixture()
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def events_city(folder: Path, **events: Any) -> dict[str, Any]:
    write_city_files(folder)
    table = city_table("unused:", folder, speed=600)
    table.pop("cache")
    table["events"] = events
    table["users"] = [{"name": "ops", "role": "operator", "token_env": TOKEN_ENV}]
    return table


# ------------------------------------------------------------------ PostgreSQL
def test_postgresql_outage_is_named_and_every_api_answers_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: None) -> None:
    ok, why = PrivatePostgres.available()
    require(ok, why)
    with PrivatePostgres(free_port()) as server:
        monkeypatch.setenv("CITYBRAIN_TEST_FAULT_EVENTS_DSN", server.dsn)
        monkeypatch.setenv("CITYBRAIN_SECRET_KEY", "fault-test")
        table = events_city(tmp_path, store="postgresql", dsn_env="CITYBRAIN_TEST_FAULT_EVENTS_DSN",
                            table_prefix=f"fault_{uuid.uuid4().hex[:8]}_")
        app = create_app(parse_config(table, tmp_path))
        client = app.server.test_client()
        try:
            assert dependency(client, "postgresql:events")["state"] == "ok"
            assert client.get("/api/events", headers={"Authorization": f"Bearer {TOKEN}"}) \
                .status_code == 200
            server.stop("immediate")
            detect = wait_for(lambda: dependency(client, "postgresql:events")["state"] == "down",
                              10, "health names PostgreSQL down")
            down = dependency(client, "postgresql:events")
            assert down["why"] and down["since"]
            assert client.get("/api/health").get_json()["status"] == "degraded"
            # The page's stale banner says so too (its last data stay on screen).
            from zoneinfo import ZoneInfo

            from callbacks.panels import dependency_lines

            watch = app.services.dependencies
            banner = dependency_lines(watch.report(), "en", ZoneInfo("UTC"))
            assert any(line.startswith("postgresql:events down since") for line in banner)
            counts = all_json(app)
            assert counts.get("5xx", 0) >= 1  # the event routes that need the database
            lost = client.get("/api/events", headers={"Authorization": f"Bearer {TOKEN}"})
            assert lost.status_code == 503 and lost.headers["Retry-After"] == "5"
            server.start()
            recover = wait_for(lambda: dependency(client, "postgresql:events")["state"] == "ok",
                               15, "health sees PostgreSQL back")
            assert client.get("/api/events", headers={"Authorization": f"Bearer {TOKEN}"}) \
                .status_code == 200
            report("PostgreSQL (events store)", detect, recover, counts)
        finally:
            app.services.ingest.stop()
            if app.services.events is not None:
                app.services.events.close()


# ----------------------------------------------------------------------- Redis
@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    port = free_port()
    process: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process.append(start_private_redis(port, tmp_path))

    def kill() -> None:
        process[-1].kill()
        process[-1].wait()

    start()
    yield f"redis://127.0.0.1:{port}/0", kill, start
    if process[-1].poll() is None:
        kill()


def test_redis_outage_is_named_and_every_api_answers_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_redis: Any) -> None:
    url, kill, start = private_redis
    monkeypatch.setenv("CITYBRAIN_TEST_SHARED_REDIS_URL", url)
    write_city_files(tmp_path)
    app = create_app(parse_config(city_table("fault:", tmp_path, speed=600), tmp_path))
    client = app.server.test_client()
    try:
        assert dependency(client, "redis")["state"] == "ok"
        kill()
        detect = wait_for(lambda: dependency(client, "redis")["state"] == "down", 10,
                          "health names Redis down")
        assert "redis" in client.get("/api/health").get_json()["down"]
        counts = all_json(app)
        start()
        recover = wait_for(lambda: dependency(client, "redis")["state"] == "ok", 15,
                           "health sees Redis back")
        report("Redis (cache and shared live state)", detect, recover, counts)
    finally:
        if app.services.replication is not None:
            app.services.replication.stop()
        app.services.ingest.stop()


# -------------------------------------------------------------------- Mosquitto
def test_broker_outage_is_named_with_its_source_and_recovers(tmp_path: Path) -> None:
    require(MOSQUITTO.exists(), f"mosquitto not found at {MOSQUITTO}")
    broker = PrivateBroker(tmp_path, free_port(), "allow_anonymous true\n")
    broker.start()
    source = device_table(["city/devices/#"], host="127.0.0.1", port=broker.port)
    city = {"city": {**CITY, "name": "Broker Town"}, "sources": [source],
            "live": {"ingest_interval": 0.5, "stale_after": "60s"}}
    app = create_app(parse_config(city, tmp_path))
    client = app.server.test_client()
    name = f"mqtt:127.0.0.1:{broker.port}"
    try:
        wait_for(lambda: dependency(client, name)["state"] == "ok", 10, "the broker is seen")
        broker.kill()
        detect = wait_for(lambda: dependency(client, name)["state"] == "down", 10,
                          "health names the broker down")
        assert dependency(client, name)["why"]
        counts = all_json(app)
        broker.start()
        recover = wait_for(lambda: dependency(client, name)["state"] == "ok", 15,
                           "health sees the broker back")
        report("Mosquitto (MQTT broker)", detect, recover, counts)
    finally:
        app.services.ingest.stop()
        broker.stop()
