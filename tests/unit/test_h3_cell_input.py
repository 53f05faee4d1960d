"""Data aggregated elsewhere to H3 cells: a cell id column and values, at any resolution.

The input is synthetic: cells of seeded random points around two made-up cities
(Testburg's and Ceshi's centres) at resolutions 6 to 12, as hex text in a CSV and as
integers in Parquet, each with a count (``weight``) and a number column, plus ids that
are not H3 cells. Expected totals are computed here with pandas and h3-py alone:

* a display resolution at or above the input's: a group-by of ``cell_to_parent``;
* a display resolution finer than the input's: the input's value in equal shares over
  its ``cell_to_children`` (the documented choice, see data/cells.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.kit import ConfigError
from data.cells import MAX_SPREAD_LEVELS, parse_cells
from layers.aggregate import aggregate, aggregate_place
from store.city import CityData
from store.live import cell_values, contribution
from tests.synthetic_city import CESHI, TESTBURG, CitySpec

BASE = 10
DISPLAY = (7, 8, 9, 10)
BAD_IDS = ["zzzz", "", "8a2a1072b59fffe", "123456789012345678", "0x0"]


def _input(spec: CitySpec, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    lat = spec.center_lat + rng.uniform(-0.03, 0.03, n)
    lon = spec.center_lon + rng.uniform(-0.04, 0.04, n)
    res = rng.choice([6, 7, 8, 9, 10, 11, 12], size=n)
    cells = [h3.latlng_to_cell(a, b, int(r)) for a, b, r in zip(lat, lon, res, strict=True)]
    frame = pd.DataFrame({"h3": cells, "trips": rng.integers(1, 60, n).astype(float),
                          "pax": rng.uniform(0, 9, n).round(3)})
    # The same cell twice (two rows of another engine's output): both count.
    return pd.concat([frame, frame.iloc[:3]], ignore_index=True)


def expected(frame: pd.DataFrame, column: str, res: int) -> dict[int, float]:
    """``column`` per cell at ``res``: parents' group-by, or equal shares over children."""
    rows: list[tuple[str, float]] = []
    for cell, value in zip(frame["h3"], frame[column], strict=True):
        if h3.get_resolution(cell) >= res:
            rows.append((h3.cell_to_parent(cell, res), value))
        else:
            children = h3.cell_to_children(cell, res)
            rows += [(child, value / len(children)) for child in children]
    totals = pd.DataFrame(rows, columns=["cell", "value"]).groupby("cell")["value"].sum()
    return {h3.str_to_int(c): float(v) for c, v in totals.items() if v}


def _city(tmp_path: Path, spec: CitySpec, table: dict[str, Any]) -> CityData:
    raw = {"city": {"name": spec.name, "center": {"lat": spec.center_lat,
                                                  "lon": spec.center_lon}},
           "cache": {"directory": str(tmp_path / "cache")},
           "sources": [{"name": "engine-output", "layer": "people", "role": "mobility",
                        "weight": "trips", "passengers": "pax", "cell": "h3", **table}]}
    return CityData.load(parse_config(raw, tmp_path))


def _close(got: pd.Series, want: dict[int, float]) -> None:
    got_dict = {int(c): float(v) for c, v in got.items() if v}
    assert set(got_dict) == set(want)
    wrong = [c for c in want if not math.isclose(got_dict[c], want[c], rel_tol=1e-9, abs_tol=1e-9)]
    assert not wrong, [(c, got_dict[c], want[c]) for c in wrong[:3]]


@pytest.mark.parametrize("spec", [TESTBURG, CESHI], ids=lambda s: s.key)
@pytest.mark.parametrize("form", ["hex-csv", "int-parquet"])
def test_cell_totals_equal_a_pandas_group_by_of_the_input(spec: CitySpec, form: str,
                                                         tmp_path: Path) -> None:
    frame = _input(spec, seed=len(spec.key))
    bad = pd.DataFrame({"h3": BAD_IDS, "trips": 1.0, "pax": 1.0})
    if form == "hex-csv":
        pd.concat([frame, bad]).to_csv(tmp_path / "cells.csv", index=False)
        data = _city(tmp_path, spec, {"adapter": "csv", "path": "cells.csv"})
    else:
        as_int = frame.assign(h3=[h3.str_to_int(c) for c in frame["h3"]])
        as_int.to_parquet(tmp_path / "cells.parquet")
        data = _city(tmp_path, spec, {"adapter": "parquet", "path": "cells.parquet"})
    health = data.health["engine-output"]
    assert health.last_error is None
    if form == "hex-csv":
        assert dict(health.rejected) == {"invalid H3 cell": 4, "missing cell": 1}
    for res in DISPLAY:
        for metric, column in (("trips", "trips"), ("count:engine-output", "trips")):
            _close(data.cells("people", data.metric("people", metric), res),
                   expected(frame, column, res))
        passengers = data.cells("people", _sum_of("passengers"), res)
        _close(passengers, expected(frame, "pax", res))
        # The recomputing path (history, cells_at) reads the same weights.
        trips = data.metric("people", "trips")
        _close(aggregate(data.frame("people", "mobility"), trips, res),
               expected(frame, "trips", res))
        # Totals kept at every resolution.
        assert math.isclose(data.cells("people", trips, res).sum(), frame["trips"].sum(),
                            rel_tol=1e-12)
    # A place's profile number: the whole city as one place.
    assert math.isclose(aggregate_place(data.frame("people", "mobility"),
                                        data.metric("people", "trips"), 1.0),
                        frame["trips"].sum(), rel_tol=1e-12)


def _sum_of(column: str) -> Any:
    from layers.base import Metric

    return Metric("pax", "", "", role="mobility", agg="sum", column=column)


def test_live_totals_count_weights(tmp_path: Path) -> None:
    """The incremental (live) totals read the same weights as the map's group-by."""
    frame = _input(TESTBURG, seed=3)
    frame.to_csv(tmp_path / "cells.csv", index=False)
    data = _city(tmp_path, TESTBURG, {"adapter": "csv", "path": "cells.csv"})
    rows = data.frame("people", "mobility")
    metric = data.metric("people", "trips")
    _close(cell_values(metric, contribution(rows, metric, 8)), expected(frame, "trips", 8))


def test_too_coarse_cells_are_counted_rejections(tmp_path: Path) -> None:
    coarse = h3.latlng_to_cell(TESTBURG.center_lat, TESTBURG.center_lon, BASE - MAX_SPREAD_LEVELS - 1)
    fine = h3.latlng_to_cell(TESTBURG.center_lat, TESTBURG.center_lon, BASE - MAX_SPREAD_LEVELS)
    pd.DataFrame({"h3": [coarse, fine], "trips": [7.0, 5.0], "pax": [0.0, 0.0]}).to_csv(
        tmp_path / "cells.csv", index=False)
    data = _city(tmp_path, TESTBURG, {"adapter": "csv", "path": "cells.csv"})
    assert dict(data.health["engine-output"].rejected) == {
        f"H3 cell coarser than res {BASE - MAX_SPREAD_LEVELS}": 1}
    assert data.health["engine-output"].rows_loaded == len(h3.cell_to_children(fine, BASE))
    assert math.isclose(data.cells("people", data.metric("people", "trips"), 7).sum(), 5.0)


def test_parse_cells_reads_hex_and_decimal() -> None:
    cell = h3.latlng_to_cell(30.27, 120.15, 9)
    raw = pd.Series([cell, cell.upper(), str(h3.str_to_int(cell)), f"{h3.str_to_int(cell)}.0",
                     h3.str_to_int(cell), None, "not a cell"], dtype=object)
    cells, why = parse_cells(raw)
    assert cells[:5].tolist() == [h3.str_to_int(cell)] * 5
    assert [w if isinstance(w, str) else None for w in why] == \
        [None] * 5 + ["missing cell", "invalid H3 cell"]


def test_cell_and_lat_lon_together_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'engine-output'.cell: .* not both"):
        _city(tmp_path, TESTBURG, {"adapter": "csv", "path": "cells.csv", "lat": "y"})
