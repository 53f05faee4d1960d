"""Counts per hexagon at every served resolution equal a pandas + h3 recompute in which each
point lies where ``h3.latlng_to_cell`` puts it: live totals under random deltas, and a
second, differently shaped synthetic city (Hangzhou, GCJ-02) loaded from its files."""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from app import load_config
from geo.exact import cell_column, cells_of_rows, with_cells
from geo.hexes import parents
from layers.base import Metric
from store.city import CityData
from store.live import IncrementalTotals, LiveStore
from tests.synthetic_city import CESHI, write_city

SERVED = (7, 8, 9, 10)
COUNT = Metric("n", "", "", role="requests")
TOTAL = Metric("total", "", "", role="requests", agg="sum", column="value")
T0 = pd.Timestamp("2024-03-01 08:00", tz="UTC")


def expected(rows: pd.DataFrame, res: int, column: str | None = None) -> dict[int, float]:
    """Plain pandas + h3-py: rows grouped by ``latlng_to_cell(lat, lon, res)``."""
    cell = [h3.str_to_int(h3.latlng_to_cell(a, b, res))
            for a, b in zip(rows["lat"], rows["lon"], strict=True)]
    grouped = pd.Series(1.0 if column is None else rows[column].to_numpy(), index=cell)
    sums = grouped.groupby(level=0).sum()
    return {int(c): float(v) for c, v in sums.items() if v != 0}


def batch(rng: np.random.Generator, ids: list[str], minutes: float, columns: bool) -> pd.DataFrame:
    """Points around Hangzhou, a few right on res-7..9 cell edges (where a parent and
    latLngToCell disagree most)."""
    n = len(ids)
    lat, lon = rng.normal(30.25, 0.03, n), rng.normal(120.17, 0.03, n)
    on_edge = rng.random(n) < 0.2
    for i in np.flatnonzero(on_edge):
        ring = h3.cell_to_boundary(h3.latlng_to_cell(lat[i], lon[i], int(rng.integers(7, 10))))
        (a_lat, a_lon), (b_lat, b_lon) = ring[0], ring[1]
        t = rng.random()
        lat[i], lon[i] = a_lat + t * (b_lat - a_lat) + rng.normal(0, 1e-7), \
            a_lon + t * (b_lon - a_lon) + rng.normal(0, 1e-7)
    frame = pd.DataFrame({"id": ids, "time": T0 + pd.Timedelta(minutes=minutes),
                          "lat": lat, "lon": lon, "source": "s",
                          "value": rng.integers(1, 5, n).astype(float)})
    frame = with_cells(frame, 10, SERVED)
    return frame if columns else frame.drop(columns=[cell_column(r) for r in (7, 8, 9)])


@pytest.mark.parametrize("columns", [True, False], ids=["indexed", "computed-on-read"])
def test_live_totals_equal_a_pandas_h3_recompute_at_every_resolution(columns: bool) -> None:
    rng = np.random.default_rng(17)
    store = LiveStore(window=1800, history=3600, max_rows=10_000)
    totals = IncrementalTotals()
    for res in SERVED:
        for metric in (COUNT, TOTAL):
            totals.track(metric, res, store.rows())
    moved = 0
    for step in range(30):
        n = int(rng.integers(50, 400))
        ids = [f"r{int(i)}" for i in rng.integers(0, 3000, n)]  # repeats replace rows
        rows = batch(rng, list(dict.fromkeys(ids)), step, columns)
        totals.apply(store.add(rows, T0 + pd.Timedelta(minutes=step)))
        current = store.rows()
        moved += int((parents(current["cell"].to_numpy(), 8) != cells_of_rows(current, 8)).sum())
        for res in SERVED:
            assert totals.get(COUNT, res).to_dict() == expected(current, res)
            assert totals.get(TOTAL, res).to_dict() == pytest.approx(
                expected(current, res, "value"))
    assert moved > 100  # the roll-up would have been wrong here


def test_a_second_city_from_its_files_counts_where_latlng_to_cell_puts_points(
        tmp_path: Path) -> None:
    city = write_city(tmp_path, CESHI)
    data = CityData.load(load_config(city.config_path))
    assert data.config.map.served_resolutions == tuple(sorted(
        {10, *(r for _, r in data.config.map.res_by_zoom), 7, 8, 9}))
    truth = city.sources["requests"].truth
    metric = data.metric("government", "requests")
    rows = data.frame("government", "requests")
    for res in data.config.map.served_resolutions:
        want = [h3.str_to_int(h3.latlng_to_cell(a, b, res))
                for a, b in zip(rows["lat"], rows["lon"], strict=True)]
        assert (cells_of_rows(rows, res) == np.array(want, dtype=np.int64)).all()
        got = data.cells("government", metric, res).to_dict()
        # counted from the generator's true WGS84 positions, not citybrain's rows
        assert got == expected(truth, res)
