"""The live history in PostgreSQL: identical replays, restarts, retention, outages.

A replay of the recorded 311 requests on a fast clock (10 city hours per second)
writes its history to a table in a throwaway schema of the shared server; the
outage test stops and restarts a private server of its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pytest

from api.health import health_document
from app import parse_config
from config.city import ConfigError
from layers import LAYERS
from store.city import CityData
from store.history import PostgresHistory
from tests.conftest import free_port, require
from tests.pgtools import PrivatePostgres, throwaway_schema
from tests.unit.test_live import CITY, REQUESTS_311

ENV = "CITYBRAIN_TEST_HISTORY_DSN"
METRICS = [LAYERS["government"].metric(name) for name in ("requests", "open", "hours_to_close")]


def city_config(tmp_path: Path, table: str, **live: Any) -> Any:
    settings = {"speed": 36000, "window": "2h", "history": "30d", "history_store": "postgresql",
                "history_dsn_env": ENV, "history_table": table, **live}
    return parse_config({"city": CITY, "live": settings, "sources": [REQUESTS_311]}, tmp_path)


def ingest(data: CityData, rounds: int, pause: float = 0.15) -> None:
    source = data.config.sources[0]
    for _ in range(rounds):
        time.sleep(pause)
        data.refresh_source(source, incremental=True)


def stored_rows(dsn: str, table: str) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(*table.split(".")))).fetchone()
    assert row is not None
    return int(row[0])


def replays(data: CityData, moments: list[pd.Timestamp], using: str) -> list[list[pd.Series]]:
    return [[data.cells_at("government", metric, res, moment, using=using)  # type: ignore[arg-type]
             for metric in METRICS for res in (8, 10)] for moment in moments]


def assert_same_cells(got: list[list[pd.Series]], expected: list[list[pd.Series]]) -> None:
    for got_at, expected_at in zip(got, expected, strict=True):
        for values, reference in zip(got_at, expected_at, strict=True):
            pd.testing.assert_series_equal(values.sort_index(), reference.sort_index(),
                                           check_exact=True)


def same_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by id, times on PostgreSQL's microsecond grid, missing values as None."""
    frame = frame.sort_values("id").reset_index(drop=True)
    frame["time"] = frame["time"].dt.floor("us")
    for column in frame.columns:
        if isinstance(frame[column].dtype, np.dtype) and frame[column].dtype.kind == "O":
            frame[column] = frame[column].where(frame[column].notna(), None)
    return frame


@pytest.fixture()
def history_table(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch):
    with throwaway_schema(postgres_dsn, "cb_history") as (_conn, schema):
        monkeypatch.setenv(ENV, postgres_dsn)
        yield f"{schema}.history"


def test_postgres_replays_as_memory_does_then_what_memory_forgot_and_after_restart(
        tmp_path: Path, history_table: str, postgres_dsn: str) -> None:
    config = city_config(tmp_path, history_table)
    data = CityData.load(config)
    try:
        ingest(data, 8)
        assert data.history_store is not None and data.history_store.flush(20)
        live = data._live["r"]
        assert stored_rows(postgres_dsn, history_table) == len(live.log) > 100
        first, last = live.history_span()  # type: ignore[misc]
        assert data.history_span() == (first, last)
        # Moments across the run, and exactly at a batch's arrival (received <= moment).
        moments = [first + (last - first) * f for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
        moments.append(pd.Timestamp(live.log["received"].unique()[3]))

        memory = replays(data, moments, "memory")
        assert sum(len(v[0]) for v in memory) > 0
        assert_same_cells(replays(data, moments, "history"), memory)
        assert_same_cells(replays(data, moments, "auto"), memory)
        for moment in moments:
            from_memory = live.state_at(moment)
            stored = data.history_store.state_at("r", moment, live.window)
            assert list(stored.columns) == list(from_memory.columns)
            assert stored.dtypes.to_dict() == from_memory.dtypes.to_dict()
            pd.testing.assert_frame_equal(same_rows(stored), same_rows(from_memory))

        # A tiny memory history: the log forgets the early moments, PostgreSQL does not.
        # (The clock runs 10 city hours a second: a minute of history keeps none of them.)
        live.history = 60.0
        data.expire()
        trimmed = live.history_span()
        assert trimmed is None or trimmed[0] > max(moments)
        assert all(live.state_at(moment).empty for moment in moments)
        assert_same_cells(replays(data, moments, "auto"), memory)
        assert data.history_span() == (first, last)
    finally:
        if data.history_store is not None:
            data.history_store.close()

    # A new process on the same table replays the past it never saw itself. (Its
    # sources are opened but not read: an accelerated clock restarts at the wall time,
    # so what it read would land in the first run's city hours.)
    restarted = CityData(config)
    try:
        restarted.adapter(config.sources[0])
        assert restarted._live["r"].history_span() is None
        assert restarted.history_span() == (first, last)
        assert_same_cells(replays(restarted, moments, "auto"), memory)
    finally:
        assert restarted.history_store is not None
        restarted.history_store.close()


def small_frame(ids: list[str], minutes: list[float], start: pd.Timestamp) -> pd.DataFrame:
    """Columns of every kind the encoding must bring back: text, flags, floats, times."""
    cell = np.int64(h3.str_to_int(h3.latlng_to_cell(40.75, -73.98, 10)))
    n = len(ids)
    return pd.DataFrame({
        "id": pd.Series(ids, dtype="str"),
        "time": [start + pd.Timedelta(minutes=m) for m in minutes],
        "lat": 40.75, "lon": -73.98, "cell": cell, "source": pd.Series(["s"] * n, dtype="str"),
        "label": pd.Series(["a", None, "c", "d"][:n], dtype=object),
        "kind": pd.Series(["x", pd.NA, "z", "w"][:n], dtype="string"),
        "flag": [True, False, True, False][:n],
        "value": [1.5, np.nan, np.inf, -0.1][:n],
        "count": pd.Series([1, None, 3, 4][:n], dtype="Int64"),
        "closed": pd.Series([start, pd.NaT, start + pd.Timedelta(seconds=1.123456789), pd.NaT][:n],
                            dtype="datetime64[ns, UTC]"),
    })


def test_retention_deletes_old_versions_and_every_dtype_comes_back(
        history_table: str, postgres_dsn: str) -> None:
    from store.live import LiveStore

    start = pd.Timestamp("2024-05-01 08:00", tz="UTC")
    clock = {"now": start}
    history = PostgresHistory(ENV, history_table, retention=3600.0, now=lambda: clock["now"],
                              retention_every=0.2)
    memory = LiveStore(window=86400.0, history=86400.0, max_rows=1000)
    try:
        for hour in range(4):
            received = start + pd.Timedelta(hours=hour, minutes=5)
            frame = small_frame([f"a{hour}", "b", "c", "d"], [hour * 60, 1, 2, 3], start)
            memory.add(frame, received)
            history.append("s", frame, received)
            if hour == 1:
                # PostgreSQL refuses NUL characters: this batch alone is rejected, counted.
                bad = small_frame(["z"], [0], start).assign(label="nul\x00")
                history.append("s", bad, received + pd.Timedelta(minutes=1))
        assert history.flush(20)
        assert stored_rows(postgres_dsn, history_table) == 16
        status = history.status()
        assert status["dropped_by_reason"] == {"rejected by PostgreSQL": 1}
        assert "DataError" in status["last_error"] or "Untranslatable" in status["last_error"]
        hole = start + pd.Timedelta(hours=1, minutes=6)
        assert not history.complete_for("s", hole, 3600.0)
        assert history.complete_for("s", hole + pd.Timedelta(hours=1, minutes=1), 3600.0)
        for moment in (start + pd.Timedelta(hours=1, minutes=30), start + pd.Timedelta(hours=4)):
            stored = history.state_at("s", moment, 86400.0)
            expected = memory.state_at(moment)
            assert stored.dtypes.to_dict() == expected.dtypes.to_dict()
            pd.testing.assert_frame_equal(same_rows(stored), same_rows(expected))

        # The writer's periodic pass deletes what fell out of the retention.
        clock["now"] = start + pd.Timedelta(hours=3, minutes=30)
        deadline = time.monotonic() + 20
        while history.status()["deleted_rows"] < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert history.status()["deleted_rows"] == 12
        assert stored_rows(postgres_dsn, history_table) == 4
        assert history.span() == (start + pd.Timedelta(hours=3, minutes=5),) * 2
        assert history.purge(start + pd.Timedelta(hours=10)) == 4
        assert history.span() is None
    finally:
        history.close()


def test_ingest_goes_on_through_an_outage_and_the_backlog_is_written_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    available, reason = PrivatePostgres.available()
    require(available, reason)
    with PrivatePostgres(free_port()) as server:
        monkeypatch.setenv(ENV, server.dsn)
        data = CityData.load(city_config(tmp_path, "citybrain_history"))
        history = data.history_store
        assert history is not None
        try:
            ingest(data, 3)
            assert history.flush(20)
            live = data._live["r"]
            written = len(live.log)
            assert stored_rows(server.dsn, "citybrain_history") == written

            server.stop()
            ingest(data, 4)
            assert len(live.log) > written  # ingest went on
            assert not history.flush(2)  # the writer tried, and is waiting to retry
            doc = health_document(data)
            assert doc["sources"][0]["last_error"] is None and doc["status"] == "degraded"
            assert doc["history"]["status"] == "unavailable"
            assert doc["history"]["backlog_rows"] > 0 and doc["history"]["dropped_rows"] == 0
            assert "connect" in doc["history"]["last_error"]
            # Replays meanwhile come from memory, without waiting on the database.
            moment = live.log["received"].iloc[-1]
            assert_same_cells(replays(data, [moment], "auto"), replays(data, [moment], "memory"))

            server.start()
            assert history.flush(30)
            assert stored_rows(server.dsn, "citybrain_history") == len(live.log)
            after = health_document(data)["history"]
            assert after["status"] == "ok" and after["backlog_rows"] == 0
            assert after["written_rows"] == len(live.log)
        finally:
            history.close()


def test_a_full_backlog_drops_counts_and_replays_from_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on this port: every attempt is refused at once.
    monkeypatch.setenv(ENV, f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    data = CityData.load(city_config(tmp_path, "citybrain_history", history_backlog=50))
    history = data.history_store
    assert history is not None
    try:
        ingest(data, 4)
        deadline = time.monotonic() + 10
        while history.status()["status"] != "unavailable" and time.monotonic() < deadline:
            history.flush(0.2)  # hurries the writer's next attempt
        status = history.status()
        assert status["dropped_rows"] > 0 and status["dropped_batches"] > 0
        assert status["backlog_rows"] <= 50 and status["status"] == "unavailable"
        live = data._live["r"]
        moment = live.log["received"].iloc[-1]
        assert_same_cells(replays(data, [moment], "auto"), replays(data, [moment], "memory"))
        assert data.history_span() == live.history_span()
    finally:
        history.close(timeout=0.5)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("history_store", "redis", "valid history stores are: memory, postgresql"),
    ("history_dsn_env", "postgresql://u:p@db/city", "name of an environment variable"),
    ("history_table", "drop table; --", "expected a table name"),
    ("history_retention", "0d", "must be positive"),
])
def test_history_settings_are_validated(tmp_path: Path, key: str, value: str,
                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"city": CITY, "live": {key: value}}, tmp_path)
