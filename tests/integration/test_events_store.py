"""The event store on real SQLite files and a real PostgreSQL: concurrency and restarts.

Each PostgreSQL test works in its own tables (a unique prefix) and drops them after.
Two :class:`EventPipeline` objects on one database stand for two app workers.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest

from ops.events import (
    ConflictError,
    EventPipeline,
    EventsSettings,
    TransitionError,
    open_store,
    parse_events_settings,
)
from ops.events.model import apply_transition

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BASE = h3.latlng_to_cell(40.7500, -73.9900, 9)
DSN_ENV = "CITYBRAIN_TEST_EVENTS_DSN"


def _frame(n: int, start: int = 0) -> pd.DataFrame:
    """``n`` reports far enough apart (cells) that each is its own event."""
    rows = []
    for i in range(start, start + n):
        cell9 = sorted(h3.grid_ring(BASE, 3 * (i + 1)))[0]
        lat, lon = h3.cell_to_latlng(cell9)
        rows.append({"id": str(i), "time": pd.Timestamp(T0 + timedelta(minutes=i)), "lat": lat,
                     "lon": lon, "cell": h3.str_to_int(h3.latlng_to_cell(lat, lon, 10)),
                     "source": "hotline", "name": None, "category": "Illegal Parking",
                     "agency": None, "status": "Open", "closed_time": pd.NaT,
                     "descriptor": f"report {i} <b>bold?</b>", "channel": "app",
                     "is_open": True})
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["closed_time"] = pd.to_datetime(frame["closed_time"], utc=True)
    return frame


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[EventsSettings]:
    table: dict[str, Any] = {"departments": {"Illegal Parking": "NYPD"},
                             "sla": {"Illegal Parking": "4h"}}
    if request.param == "sqlite":
        table |= {"store": "sqlite", "path": str(tmp_path / "events.sqlite3")}
    else:
        monkeypatch.setenv(DSN_ENV, request.getfixturevalue("postgres_dsn"))
        table |= {"store": "postgresql", "dsn_env": DSN_ENV,
                  "table_prefix": f"test_{uuid.uuid4().hex[:10]}_"}
    events_settings = parse_events_settings(table, tmp_path)
    yield events_settings
    if request.param == "postgresql":
        store = open_store(events_settings)
        store.drop_tables()
        store.close()


@pytest.fixture()
def workers(settings: EventsSettings) -> Iterator[tuple[EventPipeline, EventPipeline]]:
    first, second = EventPipeline(settings), EventPipeline(settings)
    yield first, second
    first.close()
    second.close()


def _race(calls: list[Callable[[], Any]]) -> list[str]:
    """Run the calls in threads released together; each outcome as ok/conflict/refused."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(call: Callable[[], Any]) -> None:
        barrier.wait(timeout=20)
        try:
            call()
            outcome = "ok"
        except ConflictError:
            outcome = "conflict"
        except TransitionError:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == len(calls), "a worker did not finish"
    return sorted(outcomes)


def test_two_operators_one_event_exactly_one_wins(workers) -> None:
    first, second = workers
    first.ingest(_frame(4))
    for event in first.store.all_events():
        outcomes = _race([
            partial(pipeline.transition, event.id, "in_progress", actor=name, role="operator",
                    expected_version=event.version)
            for pipeline, name in ((first, "li"), (second, "wang"))])
        assert outcomes == ["conflict", "ok"]
        audit = second.detail(event.id)[2]
        taken = [a for a in audit if a.to_status == "in_progress"]
        assert len(taken) == 1 and taken[0].actor in {"li", "wang"}
        assert [a.seq for a in audit] == [1, 2, 3]
        assert first.get(event.id).version == event.version + 1


def test_without_expected_version_still_exactly_one_change(workers) -> None:
    first, second = workers
    first.ingest(_frame(3))
    for event in first.store.all_events():
        outcomes = _race([
            partial(pipeline.transition, event.id, "in_progress", actor=name, role="operator")
            for pipeline, name in ((first, "li"), (second, "wang"))])
        # The loser either lost the version race or found the event already in progress.
        assert outcomes.count("ok") == 1 and len(outcomes) == 2
        audit = first.detail(event.id)[2]
        assert [a.to_status for a in audit] == ["received", "dispatched", "in_progress"]


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_both_read_before_either_writes_postgresql(workers) -> None:
    """Force the race into the compare-and-set: both transactions hold the same version.

    (SQLite takes its write lock before reading, so there a second reader waits
    instead of racing; the other tests cover it.)
    """
    first, second = workers
    first.ingest(_frame(1))
    both_read = threading.Barrier(2)

    def change(name: str) -> Callable[[Any], Any]:
        def apply(event: Any) -> Any:
            both_read.wait(timeout=20)
            return apply_transition(event, "in_progress", actor=name, role="operator",
                                    now=datetime.now(UTC))
        return apply

    outcomes = _race([lambda: first.store.update(1, change("li")),
                      lambda: second.store.update(1, change("wang"))])
    assert outcomes == ["conflict", "ok"]
    assert [a.seq for a in first.detail(1)[2]] == [1, 2, 3]


def test_concurrent_ingests_do_not_double_count(workers) -> None:
    first, second = workers
    frame = pd.concat([_frame(20), _frame(20)[::-1]], ignore_index=True).drop_duplicates("id")
    outcomes = _race([lambda: first.ingest(frame), lambda: second.ingest(frame)])
    assert outcomes == ["ok", "ok"]
    events = first.store.all_events()
    assert len(events) == 20 and first.store.count_reports() == 20
    assert sorted(e.source_id for e in events) == sorted(str(i) for i in range(20))
    assert all(len(first.detail(e.id)[2]) == 2 for e in events)


def test_nothing_is_lost_on_restart(settings: EventsSettings) -> None:
    pipeline = EventPipeline(settings)
    pipeline.ingest(_frame(5))
    pipeline.transition(1, "in_progress", actor="li", role="operator", note="<i>crew</i> sent",
                        now=T0 + timedelta(hours=1))
    pipeline.transition(2, "dispatched", actor="li", role="operator", department="DOT",
                        now=T0 + timedelta(hours=1))
    pipeline.supervise(T0 + timedelta(hours=6))
    before = [pipeline.detail(e.id) for e in pipeline.store.all_events()]
    stats = pipeline.stats(T0 + timedelta(hours=6))
    pipeline.close()

    restarted = EventPipeline(settings)
    try:
        after = [restarted.detail(e.id) for e in restarted.store.all_events()]
        assert after == before and len(after) == 5
        assert restarted.stats(T0 + timedelta(hours=6)) == stats
        assert after[0][2][-2].note == "<i>crew</i> sent"
        assert after[0][0].description == "report 0 <b>bold?</b>"
        assert restarted.ingest(_frame(5)).skipped == {"already ingested": 5}
        assert restarted.ingest(_frame(2, start=5)).created == 2
    finally:
        restarted.close()


def test_real_311_stats_agree_with_sqlite(settings: EventsSettings, tmp_path: Path,
                                          demo_data) -> None:
    """The same rows give the same events and statistics on either back-end."""
    frame = demo_data.frame("government", "requests")
    reference = EventPipeline(parse_events_settings(
        {"path": str(tmp_path / "reference.sqlite3"), "departments": {"Illegal Parking": "NYPD"},
         "sla": {"Illegal Parking": "4h"}}, tmp_path))
    pipeline = EventPipeline(settings)
    try:
        now = datetime(2025, 3, 12, tzinfo=UTC)
        assert pipeline.ingest(frame) == reference.ingest(frame)
        assert pipeline.stats(now) == reference.stats(now)
        assert pipeline.store.all_events() == reference.store.all_events()
        assert len(pipeline.supervise(now)) == len(reference.supervise(now)) > 0
    finally:
        pipeline.close()
        reference.close()


def _reports_at(indices: list[int], times: list[datetime]) -> pd.DataFrame:
    """Reports ``indices`` (each its own event, as in :func:`_frame`) received at ``times``."""
    frame = pd.concat([_frame(1, start=i) for i in indices], ignore_index=True)
    frame["time"] = pd.to_datetime(pd.Series(times), utc=True)
    return frame


def test_cursor_pages_lose_and_repeat_nothing_while_events_arrive(settings: EventsSettings,
                                                                  monkeypatch) -> None:
    """Walk ``/api/events`` page by page while reports arrive between the pages.

    Every event stored before the walk is served exactly once, in the store's order;
    one that arrives behind the walk's position (older) is served when the walk gets
    there, one that arrives ahead of it (newer) is not served and pushes nothing.
    The expected list is the store's full list at the end, ordered here in plain
    Python, without the events that arrived ahead of the walk.
    """
    from flask import Flask

    from api.events import create_events_blueprint
    from ops.events import parse_users

    monkeypatch.setenv("TEST_PAGING_TOKEN", "paging-token-0123456789")
    pipeline = EventPipeline(settings, parse_users(
        [{"name": "wang", "role": "viewer", "token_env": "TEST_PAGING_TOKEN"}]))
    # 23 events, in groups of three received in the same second: ties on received_at.
    pipeline.ingest(_reports_at(list(range(23)),
                                [T0 + timedelta(seconds=i // 3) for i in range(23)]))
    app = Flask(__name__)
    app.register_blueprint(create_events_blueprint(pipeline))
    client = app.test_client()
    headers = {"Authorization": "Bearer paging-token-0123456789"}
    served: list[int] = []
    ahead: set[str] = set()
    url = "/api/events?limit=4"
    for page in range(40):
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        assert len(body) <= 4
        served.extend(e["id"] for e in body)
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in response.headers
            break
        assert response.headers["Link"] == f'</api/events?limit=4&cursor={cursor}>; rel="next"'
        url = f"/api/events?limit=4&cursor={cursor}"
        # One report older than everything (the walk will reach it), one newer (it is
        # behind the walk), and one tied with the last event served (its id is larger,
        # so it sorts before it: behind the walk too).
        last = pipeline.get(served[-1]).received_at
        new = [100 + 3 * page, 101 + 3 * page, 102 + 3 * page]
        pipeline.ingest(_reports_at(new, [T0 - timedelta(minutes=page + 1),
                                          T0 + timedelta(hours=1, seconds=page), last]))
        ahead |= {str(new[1]), str(new[2])}
    else:
        pytest.fail("the pages did not end")
    stored = sorted(pipeline.store.all_events(), key=lambda e: (e.received_at, e.id),
                    reverse=True)
    expected = [e.id for e in stored if e.source_id not in ahead]
    assert len(stored) > 23 + 2 * 5 and len(expected) > 23
    assert served == expected
    assert len(set(served)) == len(served)
    pipeline.close()


def test_text_the_database_refuses_is_repaired_counted_and_the_round_lands(
        workers: tuple[EventPipeline, EventPipeline]) -> None:
    """A NUL byte (PostgreSQL refuses it in text) or a lone surrogate in one row: every
    row of the round is stored, the bad characters removed, the repaired rows counted once."""
    pipeline, _ = workers
    frame = _frame(12)
    # Python objects, as a JSON decoder gives them: a string dtype cannot hold a surrogate.
    frame["descriptor"] = pd.Series(frame["descriptor"].tolist(), dtype=object)
    frame.loc[3, "descriptor"] = "Resident\x00 reports a blocked hydrant"
    frame.loc[7, "channel"] = "a\x00pp"
    frame.loc[9, "descriptor"] = "broken \ud800 text"
    dirty = frame[["descriptor", "channel"]].apply(
        lambda col: col.map(lambda v: any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in v))
    ).any(axis=1)
    result = pipeline.ingest(frame)
    assert result.created == len(frame) and not result.skipped
    assert result.repaired == {"text repaired (NUL or unpaired surrogate removed)": int(dirty.sum())}
    stored = {r.source_id: r for e in pipeline.events(limit=None)
              for r in pipeline.detail(e.id)[1]}
    assert len(stored) == len(frame)
    assert stored["3"].description == "Resident reports a blocked hydrant"
    assert stored["7"].channel == "app" and stored["9"].description == "broken  text"
    again = pipeline.ingest(frame)  # the next round sees the same rows: stored, not counted again
    assert again.created == 0 and not again.repaired
    assert pipeline.repaired == result.repaired
