"""One alert book per deployment: several books on one ledger (real Redis, PostgreSQL, SQLite).

Each "worker" is its own :class:`AlertBook` on the same ledger. The alerts one raises
are the cells a pandas/h3 count finds, every book lists the same ones, an
acknowledgement made through one is seen (who, when) by the others, a new book (a
restart) finds them all, and books evaluating at once never raise a (rule, key) twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest

from ops.events.store import PostgresStore, SqliteStore
from ops.signs.alerts import AlertBook
from ops.signs.ledger import RedisLedger
from ops.signs.settings import parse_rule
from services import _DocumentLedger
from tests.unit.test_indicators import T0, requests_city, synthetic_requests

pytestmark = pytest.mark.service

RULE = {"name": "hot", "kind": "cell_count", "layer": "government", "role": "requests",
        "res": 8, "window": "3h", "above": 2, "max_alerts": 10_000}


@pytest.fixture(params=["redis", "postgresql", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh ledger of each kind; its key or tables are removed afterwards."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        shared = RedisLedger(url, f"citybrain-test-{uuid.uuid4().hex[:10]}:alerts")
        yield shared
        shared._client.delete(shared.key)
        return
    if request.param == "postgresql":
        store: Any = PostgresStore(request.getfixturevalue("postgres_dsn"),
                                   f"t{uuid.uuid4().hex[:8]}_")
    else:
        store = SqliteStore(tmp_path / "events.sqlite3")
    store.create_schema()
    yield _DocumentLedger(store, "alerts", store.kind)
    store.drop_tables()
    store.close()


def expected_cells(raw: pd.DataFrame, now: pd.Timestamp) -> set[str]:
    """Res-8 cells with more than 2 requests created in the 3 h up to ``now`` (pandas, h3)."""
    created = pd.to_datetime(raw["created"], utc=True, format="ISO8601")
    recent = raw.loc[(created > now - pd.Timedelta(hours=3)) & (created <= now)]
    counts = pd.Series([h3.latlng_to_cell(lat, lon, 8) for lat, lon in
                        zip(recent["lat"], recent["lon"], strict=True)]).value_counts()
    return {format(h3.str_to_int(c), "x") for c, n in counts.items() if n > 2}


def test_books_on_one_ledger_share_alerts_and_acknowledgements(ledger: Any,
                                                               tmp_path: Path) -> None:
    raw = synthetic_requests(n=20_000, days=2)
    data = requests_city(tmp_path, raw)
    rules = [parse_rule(RULE, [])]
    first, second = AlertBook(rules, ledger=ledger), AlertBook(rules, ledger=ledger)

    now = T0 + pd.Timedelta(days=1, hours=7, minutes=30)
    raised = first.evaluate(data, now).raised
    expected = expected_cells(raw, now)
    assert expected and {a.key for a in raised} == expected
    assert [a.as_dict() for a in second.active()] == [a.as_dict() for a in first.active()]

    target = second.active()[0]
    acked_at = now + pd.Timedelta(minutes=1)
    second.ack(target.id, "duty-officer", acked_at)
    seen = first.get(target.id)
    assert (seen.acked_by, seen.acked_at) == ("duty-officer", acked_at)
    assert first.ack(target.id, "someone-else", acked_at).acked_by == "duty-officer"

    # Both evaluate the next moment at once: each (rule, key) stays one alert.
    later = now + pd.Timedelta(minutes=20)
    threads = [threading.Thread(target=book.evaluate, args=(data, later))
               for book in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    active = second.active()
    assert {a.key for a in active} == expected_cells(raw, later)
    assert len({(a.rule, a.key) for a in active}) == len(active)
    assert len({a.id for a in active}) == len(active)
    cleared = expected - expected_cells(raw, later)
    assert {a.key for a in second.cleared()} == cleared

    restarted = AlertBook(rules, ledger=ledger)  # a new process: nothing evaluated yet
    assert [a.as_dict() for a in restarted.listed("all")] == \
        [a.as_dict() for a in first.listed("all")]
    kept = restarted.get(target.id)
    if target.key in expected_cells(raw, later):
        assert kept.state == "active" and kept.count == 3  # raised, then two evaluations
    assert (kept.acked_by, kept.acked_at) == ("duty-officer", acked_at)
    with pytest.raises(KeyError):
        restarted.ack("no-such-alert", "x", later)


def test_without_a_ledger_books_are_separate(tmp_path: Path) -> None:
    raw = synthetic_requests(n=5_000, days=2)
    data = requests_city(tmp_path, raw)
    rules = [parse_rule(RULE, [])]
    first, second = AlertBook(rules), AlertBook(rules)
    now = T0 + pd.Timedelta(days=1, hours=7, minutes=30)
    assert first.evaluate(data, now).raised and not second.active()


# ------------------------------------------------------------ two gunicorn workers
def test_two_gunicorn_workers_serve_one_alert_book_that_survives_a_restart(
        tmp_path: Path, redis_url: str) -> None:
    from werkzeug.security import generate_password_hash

    from tests.conftest import free_port, wait_for_http
    from tests.integration.test_sessions_workers import (
        HASH_ENV,
        PASSWORD,
        Browser,
        city_file,
        gunicorn,
        stop,
    )
    from tests.integration.test_shared_live import URL_ENV, delete_keys

    prefix = f"citybrain-test-{uuid.uuid4().hex[:10]}:"
    config = city_file(tmp_path, prefix, shared=True)
    with open(config, "a", encoding="utf-8") as out:
        out.write('[[rules]]\nname = "busy"\nkind = "cell_count"\nlayer = "government"\n'
                  'role = "requests"\nres = 6\nwindow = "1h"\nabove = 1\n')
    env = {URL_ENV: redis_url, HASH_ENV: generate_password_hash(PASSWORD),
           "CITYBRAIN_SECRET_KEY": "test-" + "k" * 40}

    def serve() -> tuple[Any, Browser]:
        port = free_port()
        server = gunicorn(config, port, tmp_path / "gunicorn.log", **env)
        wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=90, process=server)
        return server, Browser(f"http://127.0.0.1:{port}")

    def by_worker(browser: Browser, timeout: float = 60.0) -> dict[int, list[dict[str, Any]]]:
        """One answer of /api/alerts?state=all from each worker, both taken back to back."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers: dict[int, list[dict[str, Any]]] = {}
            for _ in range(8):
                status, pid, body = browser.call("GET", "/api/alerts?state=all")
                assert status == 200, body
                answers[pid] = body["alerts"]
            if len(answers) == 2 and all(answers.values()):
                return answers
            time.sleep(0.5)
        raise AssertionError(f"no alerts from two workers in {timeout} s: {answers}")

    server, browser = serve()
    try:
        # The same book from both workers (an evaluation may land between two reads: retry).
        deadline = time.monotonic() + 60
        while True:
            answers = by_worker(browser)
            first, second = answers.values()
            if first == second or time.monotonic() > deadline:
                break
        assert first == second
        target = first[0]["id"]
        status, _, _ = browser.call("POST", "/api/events/login",
                                    {"name": "duty", "password": PASSWORD})
        assert status == 200
        status, acked_pid, body = browser.call("POST", f"/api/alerts/{target}/ack", {})
        assert status == 200 and body["acked_by"] == "duty", body
        for pid, alerts in by_worker(browser).items():
            mine = [a for a in alerts if a["id"] == target]
            assert mine and mine[0]["acked_by"] == "duty" and mine[0]["acked_at"], (pid, acked_pid)
    finally:
        stop(server)

    server, browser = serve()  # a restart: new workers, the same book
    try:
        for alerts in by_worker(browser).values():
            mine = [a for a in alerts if a["id"] == target]
            assert mine and mine[0]["acked_by"] == "duty"
    finally:
        stop(server)
        delete_keys(redis_url, prefix)


def test_only_the_writer_changes_a_shared_book(ledger: Any, tmp_path: Path) -> None:
    """A follower's VitalSigns reads the shared book but never evaluates into it."""
    from ops.signs.service import VitalSigns

    raw = synthetic_requests(n=20_000, days=2)
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=1, hours=7, minutes=30)
    follower = VitalSigns(data, (), [parse_rule(RULE, [])], ledger=ledger,
                          writes_alerts=lambda: False)
    follower.refresh(now)
    assert follower.book.active() == [] and ledger.read() is None
    leader = VitalSigns(data, (), [parse_rule(RULE, [])], ledger=ledger)
    leader.refresh(now)
    assert {a.key for a in follower.book.active()} == expected_cells(raw, now)
