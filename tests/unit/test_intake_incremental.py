"""Event intake costs per new row, not per stored row (``EventPipeline.ingest_city``).

A synthetic city (near Cape Town, not the demo) holds N stored requests in a snapshot
source and N in a streaming window; each round brings 10 new rows to each. The rows
intake looks at in a round are the new ones, the same for N = 1,000 and N = 950,000,
and what it stores equals a set difference computed here in plain Python.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import parse_config
from data import Batch
from data.base import normalise
from layers import LAYERS
from ops.events import EventPipeline, parse_events_settings
from store.city import CityData

CITY = {"name": "Intake Bay", "center": {"lat": -33.92, "lon": 18.42}, "timezone": "Africa/Johannesburg"}
T0 = pd.Timestamp("2026-03-01 08:00", tz="UTC")


def _raw(prefix: str, first: int, count: int) -> pd.DataFrame:
    i = np.arange(first, first + count)
    return pd.DataFrame({
        "rid": [f"{prefix}{n}" for n in i.tolist()],
        "at": T0 + pd.to_timedelta(i % 1440, unit="min"),
        "y": -33.95 + 0.0007 * (i % 97), "x": 18.38 + 0.0009 * (i % 89),
        "kind": np.where(i % 3 == 0, "noise", "pothole"),
    })


def _city(tmp_path: Path) -> tuple[CityData, dict[str, object]]:
    mapping = {"id": "rid", "time": "at", "lat": "y", "lon": "x", "category": "kind"}
    (tmp_path / "archive.csv").write_text("rid,at,y,x,kind\n")
    config = parse_config({
        "city": CITY, "cache": {"directory": str(tmp_path / "cache")},
        "live": {"window": "30d", "history": "30d", "max_rows": 2_000_000,
                 "start": "2026-03-02T08:00:00Z"},
        "sources": [{"name": "archive", "layer": "government", "adapter": "csv",
                     "path": str(tmp_path / "archive.csv"), **mapping},
                    {"name": "stream", "layer": "government", "adapter": "mqtt",
                     "host": "127.0.0.1", "topics": ["requests/#"], **mapping}],
    }, tmp_path)
    data = CityData(config)
    sources = {s.name: s for s in config.sources}
    data.open_window(sources["stream"])  # a streaming window, fed below as MQTT would
    return data, sources


def _batch(data: CityData, source: object, raw: pd.DataFrame, replace: bool) -> Batch:
    role = LAYERS["government"].roles["requests"]
    batch = normalise(raw, source, role, data.context, versions_supersede=not replace)  # type: ignore[arg-type]
    batch.replace = replace
    return batch


def _round(tmp_path: Path, stored: int) -> tuple[list[int], list[int], float]:
    """(rows scanned per round, reports stored per round, seconds of the last round)."""
    data, sources = _city(tmp_path)
    archive, stream = sources["archive"], sources["stream"]
    archive_rows = _raw("a", 0, stored)
    data.apply_batch(archive, _batch(data, archive, archive_rows, replace=True))
    data.apply_batch(stream, _batch(data, stream, _raw("s", 0, stored), replace=False))
    pipeline = EventPipeline(parse_events_settings({"path": "events.sqlite3"}, tmp_path))
    # The stored rows were taken by an earlier round (not repeated here: at 950k a first
    # intake writes 950k events); from here on each round brings 10 new rows per source.
    for name in ("archive", "stream"):
        frame, cursor, whole = data.rows_since(name)
        pipeline._cursors[name] = cursor
        if whole:
            pipeline._seen[name] = frame["id"]
    scanned, stored_reports = [], []
    seconds = 0.0
    for n in range(3):
        first = stored + 10 * n
        archive_rows = pd.concat([archive_rows, _raw("a", first, 10)], ignore_index=True)
        data.apply_batch(archive, _batch(data, archive, archive_rows, replace=True))
        data.apply_batch(stream, _batch(data, stream, _raw("s", first, 10), replace=False))
        before = pipeline.store.count_reports()
        started = time.perf_counter()
        result = pipeline.ingest_city(data)
        seconds = time.perf_counter() - started
        scanned.append(result.scanned)
        stored_reports.append(pipeline.store.count_reports() - before)
    # A round with nothing new looks at nothing.
    assert pipeline.ingest_city(data).scanned == 0
    # Stored: exactly the ids that were not there before the first round.
    expected = {f"{p}{i}" for p in "as" for i in range(stored, stored + 30)}
    import sqlite3
    with sqlite3.connect(tmp_path / "events.sqlite3") as db:
        ids = {r[0] for r in db.execute("SELECT source_id FROM reports")}
    assert ids == expected
    pipeline.close()
    return scanned, stored_reports, seconds


@pytest.mark.parametrize("stored", [1_000, 950_000], ids=["1k", "950k"])
def test_intake_cost_is_per_new_row(tmp_path: Path, stored: int) -> None:
    scanned, stored_reports, seconds = _round(tmp_path, stored)
    assert scanned == [20, 20, 20]
    assert stored_reports == [20, 20, 20]
    print(f"\nintake round with {stored:,} stored rows per source: {seconds * 1000:.1f} ms, "
          f"scanned {scanned[-1]} rows")
