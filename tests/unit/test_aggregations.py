"""Every aggregation of the registry agrees on the map, in the profile and in the live totals.

Like h3-py's ``test_api_bindings_match.py``: one parametrized test over
:data:`layers.aggregations.AGGREGATIONS` proves the three places that compute a
metric give the same number for every cell, empty cells included:

* the map — :func:`render.figures.plan_hexes` (the hexagon values the browser gets);
* the profile — :func:`render.profile.cell_profile` (and :func:`layers.aggregate.aggregate_place`,
  which it uses, for aggregations the profile does not list);
* the live totals — :class:`store.live.IncrementalTotals` over the add/expire deltas of
  a :class:`store.live.LiveStore` (an aggregation that is not incremental is refused
  there and recomputed from the window's rows, as the city store does).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from app import parse_config
from data.base import Batch
from geo.hexes import cell_area_km2, parents
from layers import LAYERS
from layers.aggregate import aggregate, aggregate_place
from layers.aggregations import AGGREGATIONS, Aggregation
from layers.base import Metric
from render.figures import MapView, map_figure, plan_hexes
from render.profile import cell_profile, cell_selector
from store.city import CityData
from store.live import IncrementalTotals, LiveStore

RES = 8  # what zoom 10 shows with the default res_by_zoom
T0 = pd.Timestamp("2024-01-01 12:00", tz="UTC")


#: Where each base cell's rows lie (rows carry their point as well as its cells).
_WHERE: dict[int, tuple[float, float]] = {}


def _base_cell(lat: float, lon: float) -> int:
    cell = int(h3.str_to_int(h3.latlng_to_cell(lat, lon, 10)))
    _WHERE[cell] = (lat, lon)
    return cell


#: Four res-8 cells apart: two with values, one whose rows have no value, one with no rows.
FULL_A, FULL_B = _base_cell(40.75, -73.98), _base_cell(40.70, -73.90)
NO_VALUES, NO_ROWS = _base_cell(40.80, -73.95), _base_cell(40.65, -74.02)


def at(res: int, *cells: int) -> np.ndarray:
    """The cells at ``res`` that latLngToCell gives the points of base ``cells`` (two of
    the four points lie outside their base cell's res-8 parent)."""
    return np.array([h3.str_to_int(h3.latlng_to_cell(*_WHERE[c], res)) for c in cells],
                    dtype=np.int64)


VALUE_CELLS = {"a1": FULL_A, "a2": FULL_A, "a3": FULL_A, "b1": FULL_B, "b2": FULL_B,
               "n1": NO_VALUES, "n2": NO_VALUES}
VALUES = {"a1": 2.0, "a2": 4.5, "a3": 4.5, "b1": 7.0, "b2": np.nan, "n1": np.nan, "n2": np.nan}


def points(ids: list[str], values: dict[str, float], minutes: float = 0.0,
           cells: dict[str, int] = VALUE_CELLS) -> pd.DataFrame:
    """Normalised service-request rows at base resolution 10 (with the derived columns
    the layer's other metrics read)."""
    frame = pd.DataFrame({
        "id": ids, "time": T0 + pd.Timedelta(minutes=minutes),
        "lat": [_WHERE[cells[i]][0] for i in ids], "lon": [_WHERE[cells[i]][1] for i in ids],
        "cell": np.array([cells[i] for i in ids], dtype=np.int64), "source": "s",
        "value": np.array([values[i] for i in ids], dtype=float),
    })
    from layers.government import derive_request_columns

    return derive_request_columns(frame)


FINAL = points(list(VALUE_CELLS), VALUES)


class _FixedFootprint(CityData):
    """The city's footprint: the four cells (no boundary files needed)."""

    def footprint(self, res: int) -> np.ndarray:
        return np.unique(at(res, FULL_A, FULL_B, NO_VALUES, NO_ROWS))


def _city(metric: Metric, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CityData:
    """A city whose government layer has ``metric``, holding :data:`FINAL` as a snapshot."""
    layer = LAYERS["government"]
    monkeypatch.setitem(LAYERS, "government", dataclasses.replace(
        layer, base_metrics=(*layer.base_metrics, metric)))
    config = parse_config({
        "city": {"name": "Agg City", "center": {"lat": 40.7, "lon": -74.0},
                 "timezone": "America/New_York"},
        "cache": {"directory": str(tmp_path)},
        "sources": [{"name": "s", "layer": "government", "adapter": "csv",
                     "path": str(tmp_path / "unused.csv"), "id": "id", "time": "time",
                     "lat": "lat", "lon": "lon"}],
    }, tmp_path)
    data = _FixedFootprint(config)
    data.apply_batch(config.sources[0], Batch(frame=FINAL))
    return data


def _live_values(metric: Metric) -> pd.Series:
    """The metric over :data:`FINAL` reached through add, replace and expire deltas."""
    store = LiveStore(window=3600, history=7200, max_rows=1000)
    totals = IncrementalTotals()
    if metric.aggregation.incremental:
        totals.track(metric, RES, store.rows())
    else:
        with pytest.raises(ValueError, match="not kept incrementally"):
            totals.track(metric, RES, store.rows())
    early = {"a1": 100.0, "old1": 9.0, "old2": 3.0}
    cells = {**VALUE_CELLS, "old1": NO_ROWS, "old2": FULL_B}
    # Rows that later leave the window (one in the cell that ends with no rows), and a
    # first version of a1 that the final one replaces.
    totals.apply(store.add(points(["old1", "old2"], early, minutes=-50, cells=cells), T0))
    totals.apply(store.add(points(["a1"], early, minutes=5, cells=cells), T0 + pd.Timedelta(minutes=5)))
    totals.apply(store.add(FINAL.assign(time=T0 + pd.Timedelta(minutes=20)),
                           T0 + pd.Timedelta(minutes=20)))
    totals.apply(store.expire(T0 + pd.Timedelta(minutes=15)))
    assert sorted(store.rows()["id"]) == sorted(FINAL["id"])  # the deltas reached FINAL
    if metric.aggregation.incremental:
        return totals.get(metric, RES)
    return aggregate(store.rows(), metric, RES)


def _profile_value(data: CityData, metric: Metric, cell: int) -> float:
    place = aggregate_place(FINAL.loc[cell_selector(cell)(FINAL)], metric,
                            float(cell_area_km2([cell])[0]))
    if metric.aggregation.in_profile:
        shown = next(m for m in cell_profile(data, cell)["layers"]["government"]["metrics"]
                     if m["name"] == metric.name)["value"]
        assert _same(place, math.nan if shown is None else shown), "profile ≠ aggregate_place"
    return place


def _same(a: float, b: float) -> bool:
    # abs: the profile shows six decimals.
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-6)


def assert_agrees(agg: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[int, float]:
    """Map, profile and live totals give each cell the same value; returns them."""
    metric = Metric(f"m_{agg}", "", "", role="requests", agg=agg,
                    column=None if not AGGREGATIONS[agg].reads_column else "value", decimals=9)
    data = _city(metric, monkeypatch, tmp_path)
    plan = plan_hexes(data, MapView(hex_layer="government", metric=metric.name, zoom=10.0))
    assert plan.mode == "hex" and plan.res == RES
    on_map = {int(c): math.nan if z is None else float(z)
              for c, z in zip(plan.grid, plan.z, strict=True)}
    cells = at(RES, FULL_A, FULL_B, NO_VALUES, NO_ROWS)
    assert sorted(on_map) == sorted(int(c) for c in cells)
    live = _live_values(metric).reindex(cells, fill_value=metric.aggregation.empty)
    empty = metric.aggregation.empty
    for cell in cells:
        values = {"map": on_map[int(cell)], "profile": _profile_value(data, metric, int(cell)),
                  "live": float(live.loc[cell])}
        assert all(_same(v, values["map"]) for v in values.values()), (agg, hex(cell), values)
    assert _same(on_map[int(cells[3])], empty), "a cell without rows shows the empty value"
    return on_map


@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
def test_every_aggregation_agrees_on_map_profile_and_live_totals(
        agg: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = assert_agrees(agg, monkeypatch, tmp_path)
    assert any(v not in (0.0, AGGREGATIONS[agg].empty) and not math.isnan(v)
               for v in values.values())  # not trivially equal: some cell has a value


def test_the_empty_value_of_each_aggregation() -> None:
    """Decided once (see layers.aggregations): counts and sums are 0, the rest no value."""
    empty = {name: a.empty for name, a in AGGREGATIONS.items()}
    assert {n for n, v in empty.items() if v == 0.0} == {"count", "sum", "nunique", "sum_per_km2"}
    assert {n for n, v in empty.items() if math.isnan(v)} == {"mean", "median"}


def test_the_known_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a, b, n, e = (int(c) for c in at(RES, FULL_A, FULL_B, NO_VALUES, NO_ROWS))
    assert (at(RES, FULL_B, NO_ROWS) != parents(np.array([FULL_B, NO_ROWS]), RES)).all()
    expected = {
        "count": {a: 3, b: 2, n: 2, e: 0},
        "sum": {a: 11.0, b: 7.0, n: 0.0, e: 0.0},
        "mean": {a: 11.0 / 3, b: 7.0, n: math.nan, e: math.nan},
        "median": {a: 4.5, b: 7.0, n: math.nan, e: math.nan},
        "nunique": {a: 2, b: 1, n: 0, e: 0},
    }
    for agg, by_cell in expected.items():
        with monkeypatch.context() as patch:
            got = assert_agrees(agg, patch, tmp_path)
        assert all(_same(got[c], v) for c, v in by_cell.items()), (agg, got)


class RootMeanSquare(Aggregation):
    """A throwaway aggregation declared only here: √(mean of squares), kept live by parts."""

    name = "rms"
    parts = 2

    def reduce(self, values, groups):  # type: ignore[no-untyped-def]
        return (values ** 2).groupby(groups).mean() ** 0.5

    def weights(self, values, n):  # type: ignore[no-untyped-def]
        present = ~np.isnan(values)
        return np.column_stack([np.where(present, values, 0.0) ** 2, present.astype(float)])

    def combine(self, sums):  # type: ignore[no-untyped-def]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sums[:, 1] > 0, np.sqrt(sums[:, 0] / sums[:, 1]), np.nan)

    def describe(self, column, role):  # type: ignore[no-untyped-def]
        return f"root mean square of `{column}` over `{role}`"


def test_a_new_aggregation_is_one_class_and_one_registry_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(AGGREGATIONS, "rms", RootMeanSquare())
    values = assert_agrees("rms", monkeypatch, tmp_path)
    a = int(at(RES, FULL_A)[0])
    assert values[a] == pytest.approx(math.sqrt((2.0**2 + 4.5**2 + 4.5**2) / 3))
    # and the whole map draws it
    data = _city(Metric("m_rms", "", "", role="requests", agg="rms", column="value"),
                 monkeypatch, tmp_path)
    figure, _ = map_figure(data, MapView(hex_layer="government", metric="m_rms", zoom=10.0))
    hexes = next(t for t in figure["data"] if t["uid"] == "hexes")
    assert len([z for z in hexes["z"] if z is not None]) == 2


def test_an_unknown_aggregation_name_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid aggregations are: count, sum"):
        Metric("m", "", "", role="requests", agg="maximum", column="value")
