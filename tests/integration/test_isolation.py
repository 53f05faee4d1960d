"""One slow source never stops another: a real HTTP server trickling bytes beside a file.

The city (a synthetic one near Cape Town, not the demo) has a requests file that keeps
growing and an Open311 API that answers, then trickles one byte of its answer every
0.2 s. The file's layer stays fresh and its rows keep arriving, event intake and alert
evaluation keep running, and health names the API as slow while its read runs on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app import parse_config
from tests.http_fixtures import Open311Server, open311_request

CITY = {"name": "Trickle Bay", "center": {"lat": -33.92, "lon": 18.42}, "timezone": "Africa/Johannesburg"}


def _requests_csv(path: Path, first: int, count: int) -> None:
    """Write (first == 0) or extend the requests file, atomically as a careful producer does."""
    now = datetime.now(UTC)
    frame = pd.DataFrame({
        "rid": [f"q{i}" for i in range(first, first + count)],
        "at": [(now - timedelta(minutes=i)).isoformat() for i in range(first, first + count)],
        "y": [-33.92 + 0.001 * (i % 50) for i in range(first, first + count)],
        "x": [18.42 + 0.001 * (i % 37) for i in range(first, first + count)],
        "kind": ["pothole" if i % 3 else "noise" for i in range(first, first + count)],
    })
    if first:
        frame = pd.concat([pd.read_csv(path, dtype=str), frame.astype(str)], ignore_index=True)
    partial = path.with_suffix(".partial")
    frame.to_csv(partial, index=False)
    os.replace(partial, path)


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server() -> Any:
    now = datetime.now(UTC).replace(microsecond=0)
    with Open311Server([open311_request("api-1", now - timedelta(hours=1), -33.93, 18.43)]) as api:
        yield api


def test_a_trickling_api_does_not_stop_the_file_intake_or_alerts(
        tmp_path: Path, server: Open311Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import store.ingest
    from services import build

    path = tmp_path / "requests.csv"
    _requests_csv(path, 0, 50)
    config = parse_config({
        "city": CITY, "cache": {"directory": str(tmp_path / "cache")},
        "live": {"ingest_interval": 0.1, "reload": 0.2, "refresh": 0.2},
        "sources": [
            {"name": "file", "layer": "government", "adapter": "csv", "path": str(path),
             "id": "rid", "time": "at", "lat": "y", "lon": "x", "category": "kind"},
            # A deadline far off: the read is held as long as the server trickles.
            {"name": "api", "layer": "government", "adapter": "open311",
             "endpoint": server.endpoint, "timeout": 60, "lookback": "1d", "window": "1d"},
        ],
        "events": {"path": str(tmp_path / "events.sqlite3")},
        "rules": [{"name": "hot", "kind": "cell_count", "layer": "government", "role": "requests",
                   "res": 8, "window": "1d", "above": 1000}],
    }, tmp_path)
    # The engine calls a read slow past 1 s (the API's own deadline is 60 s).
    monkeypatch.setattr(store.ingest, "read_deadline",
                        lambda source: 1.0 if source.name == "api" else 60.0)
    server.trickle_seconds = 0.2
    services = build(config)
    try:
        data, events = services.store, services.events
        assert events is not None and services.signs is not None
        assert data.health["api"].rows_loaded == 1 and data.health["file"].rows_loaded == 50
        server.fail("trickle")
        api = data.health["api"]
        _wait(lambda: api.slow() is not None, 20, "the API's read to be slow")
        stuck_since = api.reading_since
        assert stuck_since is not None
        intake_before, alerts_before = services.intake.last_ok, services.alerting.last_ok
        rounds_before = services.ingest.rounds
        # While the API trickles, the file keeps growing and everything downstream follows.
        for batch in range(3):
            time.sleep(0.3)  # a new modification time for each batch
            _requests_csv(path, 50 + 10 * batch, 10)
        _wait(lambda: data.health["file"].rows_loaded == 80, 20, "the file's new rows")
        _wait(lambda: events.store.count_reports() == 81, 20, "event intake of the new rows")
        assert services.ingest.rounds >= rounds_before + 10
        assert services.intake.last_ok is not None and services.intake.last_ok > intake_before
        assert services.alerting.last_ok is not None and alerts_before is not None \
            and services.alerting.last_ok > alerts_before
        assert not data.health["file"].is_stale()
        # The API is still in the same read, and says so.
        assert api.reading_since == stuck_since and api.is_stale()
        slow = api.as_dict()["slow"]
        assert slow is not None and slow.startswith("slow since ") and "past its 1 s deadline" in slow
        report = {d["name"]: d for d in services.dependencies.report()}  # type: ignore[union-attr]
        assert report["source:api"]["state"] == "stale"
        assert report["source:api"]["why"].startswith("slow since ")
        assert report["source:file"]["state"] == "ok"
        assert report["event-intake"]["state"] == "ok"
        assert report["alert-evaluation"]["state"] == "ok"
    finally:
        server.fail(None)
        services.ingest.stop(timeout=1)
        if services.events is not None:
            services.events.close()
