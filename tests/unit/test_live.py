"""Live windows, incremental totals, replay and the ingest engine."""

from __future__ import annotations

import time
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.clock import CityClock
from layers import LAYERS
from store.city import CityData, aggregate
from store.ingest import IngestEngine
from store.live import IncrementalTotals, LiveStore

T0 = pd.Timestamp("2024-01-01 12:00", tz="UTC")
COUNT = LAYERS["government"].metric("requests")
OPEN = LAYERS["government"].metric("open")


def rows(ids: list[str], minutes: list[float], lat: float = 40.75, open_: bool = True):
    cell = h3.str_to_int(h3.latlng_to_cell(lat, -73.98, 10))
    return pd.DataFrame({
        "id": ids, "time": [T0 + pd.Timedelta(minutes=m) for m in minutes],
        "lat": lat, "lon": -73.98, "cell": np.int64(cell), "source": "s",
        "is_open": open_,
    })


def test_window_replaces_by_id_and_expires() -> None:
    store = LiveStore(window=3600, history=7200, max_rows=100)
    d1 = store.add(rows(["a", "b"], [0, 1]), T0 + pd.Timedelta(minutes=1))
    assert sorted(d1.added["id"]) == ["a", "b"] and d1.removed.empty
    d2 = store.add(rows(["a"], [0], open_=False), T0 + pd.Timedelta(minutes=2))
    assert list(d2.added["id"]) == ["a"] and list(d2.removed["id"]) == ["a"]
    assert store.rows().set_index("id").loc["a", "is_open"] == False  # noqa: E712
    d3 = store.expire(T0 + pd.Timedelta(minutes=60.5))
    assert sorted(d3.removed["id"]) == ["a"]  # a (time 0) left the one-hour window
    assert list(store.rows()["id"]) == ["b"]


def test_rows_arriving_already_old_are_never_counted() -> None:
    store = LiveStore(window=60, history=60, max_rows=100)
    delta = store.add(rows(["old"], [0]), T0 + pd.Timedelta(hours=5))
    assert delta.added.empty and delta.removed.empty and store.rows().empty


def test_size_bound_keeps_newest_and_counts_drops() -> None:
    store = LiveStore(window=10**6, history=10**6, max_rows=3)
    store.add(rows(list("abcde"), [0, 1, 2, 3, 4]), T0 + pd.Timedelta(minutes=5))
    assert sorted(store.rows()["id"]) == ["c", "d", "e"] and store.dropped_by_size == 2


def test_incremental_totals_equal_full_recompute() -> None:
    rng = np.random.default_rng(3)
    store = LiveStore(window=1800, history=3600, max_rows=10_000)
    totals = IncrementalTotals()
    for res in (7, 8, 10):
        totals.track(COUNT, res, store.rows())
        totals.track(OPEN, res, store.rows())
    for step in range(40):
        n = int(rng.integers(1, 30))
        ids = [f"r{int(i)}" for i in rng.integers(0, 200, n)]  # repeats replace rows
        batch = rows(ids, list(rng.uniform(step - 5, step, n)),
                     lat=float(rng.uniform(40.6, 40.9)), open_=bool(rng.random() > 0.3))
        totals.apply(store.add(batch, T0 + pd.Timedelta(minutes=step)))
        current = store.rows()
        for res in (7, 8, 10):
            for metric in (COUNT, OPEN):
                full = aggregate(current, metric, res)
                got = totals.get(metric, res)
                assert got.sort_index().to_dict() == pytest.approx(full.sort_index().to_dict())


def test_incremental_totals_of_sums_densities_and_one_source_equal_recompute() -> None:
    """Every additive kind, a per-source metric and missing values, over random deltas
    spread across many cells (so resolutions roll up, and cells empty and refill)."""
    from layers.base import Metric

    metrics = [
        Metric("n", "", "", role="r"),
        Metric("area", "", "", role="r", agg="sum", column="value"),
        Metric("density", "", "", role="r", agg="sum_per_km2", column="value"),
        Metric("from_a", "", "", role="r", source="a"),
        Metric("open_a", "", "", role="r", source="a", where=(("is_open", (True,)),)),
    ]
    rng = np.random.default_rng(11)
    seeds = [h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(40.75, -73.98, 10), 12)]
    store = LiveStore(window=900, history=1800, max_rows=50_000)
    totals = IncrementalTotals()
    for metric in metrics:
        for res in (7, 9, 10):
            totals.track(metric, res, store.rows())
    for step in range(60):
        n = int(rng.integers(1, 200))
        values = rng.uniform(0, 10, n).round(2)
        values[rng.random(n) < 0.1] = np.nan
        batch = pd.DataFrame({
            "id": [f"r{int(i)}" for i in rng.integers(0, 600, n)],
            "time": [T0 + pd.Timedelta(minutes=float(m)) for m in rng.uniform(step - 20, step, n)],
            "lat": 40.75, "lon": -73.98,
            "cell": np.array(seeds, dtype=np.int64)[rng.integers(0, len(seeds), n)],
            "source": rng.choice(["a", "b"], n), "is_open": rng.random(n) > 0.4, "value": values,
        })
        totals.apply(store.add(batch, T0 + pd.Timedelta(minutes=step)))
        current = store.rows()
        for metric in metrics:
            rows_ = current if metric.source is None else current[current["source"] == metric.source]
            for res in (7, 9, 10):
                full = aggregate(rows_, metric, res)
                full = full[full != 0]
                got = totals.get(metric, res)
                assert got.index.is_monotonic_increasing and got.index.name == "cell"
                assert got.to_dict() == pytest.approx(full.sort_index().to_dict(), rel=1e-9), \
                    (metric.name, res, step)


def test_incremental_totals_accept_unsorted_cells_of_mixed_resolutions() -> None:
    cells = [h3.str_to_int(h3.latlng_to_cell(40.7 + i / 100, -74.0, r))
             for i, r in zip(range(20), [10, 9] * 10, strict=True)]
    frame = pd.DataFrame({"cell": np.array(cells[::-1], dtype=np.int64)})
    totals = IncrementalTotals()
    assert totals.track(COUNT, 8, frame).to_dict() == aggregate(frame, COUNT, 8).to_dict()


def test_history_rebuilds_past_state() -> None:
    store = LiveStore(window=3600, history=7200, max_rows=100)
    store.add(rows(["a"], [0]), T0)
    store.add(rows(["a"], [0], open_=False), T0 + pd.Timedelta(minutes=30))
    assert bool(store.state_at(T0 + pd.Timedelta(minutes=10))["is_open"].item()) is True
    assert bool(store.state_at(T0 + pd.Timedelta(minutes=40))["is_open"].item()) is False
    assert store.state_at(T0 - pd.Timedelta(minutes=1)).empty


CITY = {"name": "Replay City", "center": {"lat": 40.7, "lon": -74.0},
        "timezone": "America/New_York"}
REPO = Path(__file__).resolve().parents[2]
REQUESTS_311 = {
    "name": "r", "layer": "government", "adapter": "replay",
    "path": str(REPO / "cities/nyc/data/service_requests_311.parquet"),
    "id": "unique_key", "time": "created_date", "lat": "latitude", "lon": "longitude",
    "category": "complaint_type", "status": "status", "closed_time": "closed_date",
    "compress_gaps": "1h",
}


def test_replay_keeps_recorded_intervals_and_closes_requests_later(tmp_path: Path) -> None:
    config = parse_config({"city": CITY, "live": {"speed": 36000, "window": "30d"},
                           "sources": [REQUESTS_311]}, tmp_path)
    data = CityData.load(config)
    source = config.sources[0]
    seen: dict[str, pd.Series] = {}
    for _ in range(6):
        time.sleep(0.3)
        data.refresh_source(source, incremental=True)
        for row in data.frame("government", "requests").itertuples():
            seen.setdefault(row.id, row)
    frame = data.frame("government", "requests")
    assert len(frame) > 0 and frame["id"].is_unique
    # Replayed times are on the city clock, never in its future.
    assert (frame["time"] <= data.clock.now()).all()
    # Durations from report to close are exactly as recorded.
    raw = pd.read_parquet(REPO / "cities/nyc/data/service_requests_311.parquet")
    raw = raw.set_index(raw["unique_key"].astype(str))
    closed = frame.dropna(subset=["closed_time"])
    for row in closed.head(50).itertuples():
        recorded = (pd.Timestamp(raw.loc[row.id, "closed_date"])
                    - pd.Timestamp(raw.loc[row.id, "created_date"])).total_seconds()
        assert (row.closed_time - row.time).total_seconds() == pytest.approx(recorded, abs=3601)
    # Some request was seen open first and closed later.
    assert any(bool(seen[i].is_open) and not bool(r.is_open)
               for i, r in frame.set_index("id", drop=False).iterrows() if i in seen)


def test_ingest_engine_keeps_sources_live_and_survives_a_broken_source(tmp_path: Path) -> None:
    broken = {"name": "gone", "layer": "things", "adapter": "replay",
              "path": str(tmp_path / "missing.csv"), "id": "id", "time": "t"}
    config = parse_config({"city": CITY, "live": {"speed": 36000, "ingest_interval": 0.1},
                           "sources": [REQUESTS_311, broken]}, tmp_path)
    data = CityData.load(config)
    engine = IngestEngine(data).start()
    try:
        deadline = time.monotonic() + 10
        while engine.rounds < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop()
    assert engine.rounds >= 5
    assert data.health["r"].rows_loaded > 0 and data.health["r"].last_error is None
    assert "file not found" in (data.health["gone"].last_error or "")
    assert data.health["gone"].is_stale()


def test_clock_runs_at_its_speed() -> None:
    clock = CityClock(speed=3600)
    start = clock.now()
    time.sleep(0.2)
    assert 500 < (clock.now() - start).total_seconds() < 1500
    with pytest.raises(ValueError):
        CityClock(speed=0)


def test_history_log_bound_does_not_stop_ingest() -> None:
    """Past max_rows * 4 versions the log is trimmed (it used to raise on pandas 3)."""
    store = LiveStore(window=1e9, history=1e9, max_rows=10)
    for step in range(8):
        store.add(rows([f"r{step}-{i}" for i in range(10)], [step] * 10),
                  T0 + pd.Timedelta(minutes=step))
    assert len(store.log) <= 40 and len(store.rows()) == 10


def test_ids_in_matches_isin() -> None:
    from store.live import ids_in

    values = pd.Series(["a", "b", None, "d"], dtype="str")
    lookup = pd.Series(["b", "d", "x"], dtype="str")
    assert ids_in(values, lookup).tolist() == values.isin(lookup).tolist()
