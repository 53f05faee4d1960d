"""Live sources: bounded windows, history for replay, and H3 totals kept by deltas.

A streaming source's rows live in a :class:`LiveStore`:

* the **current state** — the latest version of each row id whose time is within
  the source's window (a request that closes replaces its open version; a
  device's new report replaces its last one);
* the **history log** — every version as it arrived (``received`` on the city
  clock), kept for the history duration, from which the state at any past moment
  is rebuilt for the time slider;
* both bounded by time *and* by row count, so memory stays flat under a steady
  stream.

Each change to the current state is returned as a :class:`Delta` (rows added,
rows removed). :class:`IncrementalTotals` applies deltas to per-cell running sums
of incremental metrics (counts, sums, densities, means: see
:mod:`layers.aggregations`) at every resolution in use, so a tick costs in
proportion to what changed, not to the size of the window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.exact import cells_of_rows
from geo.hexes import parents, resolution_of
from layers.aggregate import filter_rows
from layers.aggregations import cell_areas, row_weights
from layers.base import Metric


@dataclass
class Delta:
    added: pd.DataFrame
    removed: pd.DataFrame

    @property
    def empty(self) -> bool:
        return bool(self.added.empty and self.removed.empty)


class LiveStore:
    """Bounded rows of one streaming source (see module docs)."""

    def __init__(self, window: float, history: float, max_rows: int) -> None:
        self.window = window
        self.history = max(history, window)
        self.max_rows = max_rows
        self.current = pd.DataFrame()
        self.log = pd.DataFrame()
        self.dropped_by_size = 0
        self._seq = 0
        self._lock = threading.RLock()

    def add(self, rows: pd.DataFrame, now: pd.Timestamp) -> Delta:
        """Take new rows (newest version wins per id) and expire what fell out."""
        with self._lock:
            if rows.empty:
                return self.expire(now)
            rows = rows.drop_duplicates("id", keep="last")
            rows = rows.assign(received=now,
                               _seq=np.arange(self._seq, self._seq + len(rows), dtype=np.int64))
            self._seq += len(rows)
            if self.current.empty:
                replaced = rows.iloc[0:0]
                self.current = rows.reset_index(drop=True)
            else:
                replaced_mask = ids_in(self.current["id"], rows["id"])
                replaced = self.current.loc[replaced_mask]
                self.current = pd.concat([self.current.loc[~replaced_mask], rows],
                                         ignore_index=True)
            self.log = rows if self.log.empty else pd.concat([self.log, rows], ignore_index=True)
            expired = self.expire(now).removed
            # Rows that arrived already outside the window were never counted.
            arrived_old = expired["_seq"].isin(rows["_seq"]).to_numpy()
            added = rows.loc[~rows["_seq"].isin(expired["_seq"]).to_numpy()]
            removed = pd.concat([replaced, expired.loc[~arrived_old]], ignore_index=True)
            return Delta(added=added, removed=removed)

    def expire(self, now: pd.Timestamp) -> Delta:
        """Drop rows older than the window (state) and the history (log); bound sizes."""
        with self._lock:
            removed = self.current.iloc[0:0]
            if not self.current.empty:
                cutoff = now - pd.Timedelta(seconds=self.window)
                old = (self.current["time"] <= cutoff).fillna(False).to_numpy()
                if len(self.current) - old.sum() > self.max_rows:
                    # Over the size bound: also drop the oldest rows still in the window.
                    keep_newest = np.argsort(self.current["time"].to_numpy())[-self.max_rows:]
                    mask = np.ones(len(self.current), dtype=bool)
                    mask[keep_newest] = False
                    self.dropped_by_size += int((mask & ~old).sum())
                    old = mask
                removed = self.current.loc[old]
                self.current = self.current.loc[~old].reset_index(drop=True)
            if not self.log.empty:
                horizon = now - pd.Timedelta(seconds=self.history)
                # A writable copy: pandas 3 hands out read-only views.
                keep = np.array(self.log["received"] > horizon, dtype=bool)
                if keep.sum() > self.max_rows * 4:
                    keep[: len(keep) - self.max_rows * 4] = False
                if not keep.all():
                    self.log = self.log.loc[keep].reset_index(drop=True)
            return Delta(added=self.current.iloc[0:0], removed=removed)

    def rows(self) -> pd.DataFrame:
        with self._lock:
            return self.current.drop(columns=["received", "_seq"], errors="ignore")

    def state_at(self, moment: pd.Timestamp) -> pd.DataFrame:
        """The state as it was at ``moment``: latest version per id received by then,
        within the window ending at ``moment``."""
        with self._lock:
            log = self.log
        if log.empty:
            return log
        seen = log.loc[(log["received"] <= moment).to_numpy()]
        latest = seen.drop_duplicates("id", keep="last")
        in_window = (latest["time"] > moment - pd.Timedelta(seconds=self.window)) \
            & (latest["time"] <= moment)
        return latest.loc[in_window.fillna(False).to_numpy()].drop(columns=["received", "_seq"])

    def history_span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        with self._lock:
            if self.log.empty:
                return None
            return self.log["received"].min(), self.log["received"].max()


def ids_in(values: pd.Series, lookup: pd.Series) -> np.ndarray:
    """Mask of ``values`` found in ``lookup``, through Arrow.

    ``Series.isin`` on pandas 3's Arrow-backed strings builds a Python object per
    value (~330 ms for 400k ids); Arrow's own ``is_in`` does the same in ~8 ms.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.is_in(pa.array(values, type=pa.string(), from_pandas=True),
                     value_set=pa.array(lookup, type=pa.string(), from_pandas=True))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


class IncrementalTotals:
    """Per-cell totals of incremental metrics, updated from deltas instead of recomputed.

    A metric's aggregation says what to keep (:attr:`layers.aggregations.Aggregation.parts`):
    one running sum per part and cell (a count: one; a mean: sum and count). Totals are
    kept per (metric, resolution) as sorted cells and an aligned ``(cells, parts)``
    array. Each row counts in its exact cell at each resolution (the ``cell_<res>``
    columns indexing fills, see :mod:`geo.exact`), which for all but a few percent of
    rows is its base cell's parent. So a delta's rows (added with their weights,
    removed with their negatives) are summed by base cell once per metric; since a
    sorted array of same-resolution cells stays sorted under
    :func:`geo.hexes.parents`, every resolution's roll-up is a run-length sum
    (``np.add.reduceat``), corrected by the rows whose exact cell is another one
    (their weight moves from the parent to that cell), and merged into the totals
    with a ``searchsorted``. No pandas grouping on the hot path: a tick costs
    O(rows · log rows) plus a merge.
    """

    def __init__(self) -> None:
        self._totals: dict[tuple[str, int], _CellSums] = {}
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.RLock()

    def tracked(self, metric: Metric, res: int) -> bool:
        return (metric.name, res) in self._totals

    def track(self, metric: Metric, res: int, rows: pd.DataFrame) -> pd.Series:
        """Start tracking a metric at a resolution from the current rows.

        Raises ValueError for an aggregation that is not incremental (recompute it).
        """
        aggregation = metric.aggregation
        if not aggregation.incremental:
            raise ValueError(f"{metric.name!r}: aggregation {aggregation.name!r} is not kept "
                             "incrementally; aggregate the rows instead")
        with self._lock:
            sums = _CellSums(aggregation.parts)
            kept, weights = _weighted_rows(rows, metric)
            sums.merge(*_exact_sums((kept,), weights, (res,))[res])
            self._totals[(metric.name, res)] = sums
            self._metrics[metric.name] = metric
            return cell_values(metric, sums.parts())

    def get(self, metric: Metric, res: int) -> pd.Series:
        """The metric's value per cell (cells without rows left out)."""
        return cell_values(metric, self.parts(metric, res))

    def parts(self, metric: Metric, res: int) -> pd.DataFrame:
        """The running sums per cell (one column per part), to add across sources."""
        with self._lock:
            return self._totals[(metric.name, res)].parts()

    def apply(self, delta: Delta) -> None:
        if delta.empty:
            return
        with self._lock:
            by_metric: dict[str, list[int]] = {}
            for name, res in self._totals:
                by_metric.setdefault(name, []).append(res)
            for name, resolutions in by_metric.items():
                metric = self._metrics[name]
                added, added_w = _weighted_rows(delta.added, metric)
                removed, removed_w = _weighted_rows(delta.removed, metric)
                if not len(added) and not len(removed):
                    continue
                weights = np.concatenate([added_w, -removed_w])
                for res, sums in _exact_sums((added, removed), weights, resolutions).items():
                    self._totals[(name, res)].merge(*sums)

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()


class _CellSums:
    """Sorted cells and their running sums, one column per part (cells whose sums all
    reached zero are compacted lazily)."""

    #: Floating sums drift: leftovers of removed rows below this are zero.
    EPSILON = 1e-9

    def __init__(self, parts: int) -> None:
        self.cells = np.empty(0, dtype=np.int64)
        self.values = np.empty((0, parts), dtype=np.float64)

    def merge(self, cells: NDArray[np.int64], sums: NDArray[np.float64]) -> None:
        """Add ``sums`` to the totals of ``cells`` (sorted, unique), inserting new cells."""
        if not len(cells):
            return
        pos = np.searchsorted(self.cells, cells)
        found = pos < len(self.cells)
        found[found] = self.cells[pos[found]] == cells[found]
        hit = pos[found]
        merged = self.values[hit] + sums[found]
        merged[np.abs(merged) < self.EPSILON] = 0.0
        self.values[hit] = merged
        new = ~found
        if new.any():
            fresh = sums[new]
            fresh[np.abs(fresh) < self.EPSILON] = 0.0
            self.cells = np.insert(self.cells, pos[new], cells[new])
            self.values = np.insert(self.values, pos[new], fresh, axis=0)
        live: NDArray[np.bool_] = np.asarray(self.values.any(axis=1), dtype=bool)
        if len(live) - int(np.count_nonzero(live)) > max(1024, len(live) // 2):
            # Cells that emptied out, dropped in bulk.
            self.cells, self.values = self.cells[live], self.values[live]

    def parts(self) -> pd.DataFrame:
        keep = self.values.any(axis=1)
        return pd.DataFrame(self.values[keep], index=pd.Index(self.cells[keep], name="cell"))


def cell_values(metric: Metric, parts: pd.DataFrame) -> pd.Series:
    """A metric's value per cell from its running sums (as :meth:`IncrementalTotals.parts`
    and :func:`contribution` give them, summed over sources); cells without a value
    are left out, as :func:`layers.aggregate.aggregate` leaves them."""
    aggregation = metric.aggregation
    values = pd.Series(aggregation.combine(parts.to_numpy(dtype=np.float64)),
                       index=parts.index.astype(np.int64), dtype=float).dropna()
    values.index.name = "cell"
    return aggregation.finish(values, cell_areas)


def _weighted_rows(rows: pd.DataFrame, metric: Metric) -> tuple[pd.DataFrame,
                                                               NDArray[np.float64]]:
    """The rows a metric counts, and what each row adds to each part."""
    aggregation = metric.aggregation
    if rows.empty:
        return rows, np.empty((0, aggregation.parts), dtype=np.float64)
    if metric.source is not None:
        rows = rows.loc[(rows["source"] == metric.source).to_numpy()]
    if metric.where:
        rows = filter_rows(rows, metric.where)
    if not aggregation.reads_column:  # a count: each row adds its weight (1 unless mapped)
        weights = row_weights(rows).to_numpy(dtype=np.float64) if "weight" in rows else None
        return rows, aggregation.weights(weights, len(rows))
    values = pd.to_numeric(rows[metric.column], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    weights = aggregation.weights(values, len(rows))
    keep = weights.any(axis=1)  # as in aggregate(): a missing value adds nothing
    return rows.loc[keep], weights[keep]


def _exact_sums(frames: Sequence[pd.DataFrame], weights: NDArray[np.float64],
                resolutions: Iterable[int]
                ) -> dict[int, tuple[NDArray[np.int64], NDArray[np.float64]]]:
    """Per-cell sums at each resolution of the frames' rows (weighted, in order), each
    row in its exact cell (:func:`geo.exact.cells_of_rows`), as sorted unique cells."""
    frames = [f for f in frames if len(f)]
    base = np.concatenate([f["cell"].to_numpy(dtype=np.int64) for f in frames]) if frames \
        else np.empty(0, dtype=np.int64)
    base_res = int(resolution_of(base[:1])[0]) if len(base) else 0
    by_base = _sum_by_cell(base, weights)
    out = {}
    for res in resolutions:
        exact = np.concatenate([cells_of_rows(f, res) for f in frames]) if frames else base
        if res > base_res:  # finer than the rows' cells: no roll-up to correct
            out[res] = _sum_by_cell(exact, weights)
            continue
        cells, sums = _run_sums(*by_base, res)
        if res == base_res:
            out[res] = (cells, sums)
            continue
        rolled = parents(base, res)
        moved = exact != rolled
        if moved.any():  # these rows' weight goes from their parent to their own cell
            cells, sums = _sum_by_cell(
                np.concatenate([cells, rolled[moved], exact[moved]]),
                np.concatenate([sums, -weights[moved], weights[moved]]))
        out[res] = (cells, sums)
    return out


def _sum_by_cell(cells: NDArray[np.int64], weights: NDArray[np.float64]) -> tuple[
        NDArray[np.int64], NDArray[np.float64]]:
    """Weights summed per distinct cell, cells sorted.

    Hashing first (``pd.factorize``) and sorting only the distinct cells is ~1.5×
    faster than sorting every row: a batch of points repeats its cells many times.
    """
    codes, unique = pd.factorize(cells)
    sums = np.column_stack([np.bincount(codes, weights=weights[:, part], minlength=len(unique))
                            for part in range(weights.shape[1])]).astype(np.float64)
    distinct = np.asarray(unique, dtype=np.int64)
    order = np.argsort(distinct)
    return distinct[order], sums[order]


def _run_sums(cells: NDArray[np.int64], weights: NDArray[np.float64], res: int
              ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per-cell sums at ``res`` of weighted base cells, as sorted unique cells."""
    if not len(cells):
        return cells, weights
    up = parents(cells, res)
    if len(up) > 1 and not (up[1:] >= up[:-1]).all():
        # Unsorted input, or base cells of mixed resolutions: sort here.
        order = np.argsort(up, kind="stable")
        up, weights = up[order], weights[order]
    starts = np.flatnonzero(np.concatenate(([True], up[1:] != up[:-1])))
    return up[starts], np.add.reduceat(weights, starts, axis=0)


def contribution(rows: pd.DataFrame, metric: Metric, res: int) -> pd.DataFrame:
    """The running sums ``rows`` give an incremental metric, per cell at ``res``
    (the same parts :meth:`IncrementalTotals.parts` keeps for a live source)."""
    kept, weights = _weighted_rows(rows, metric)
    sums = _CellSums(metric.aggregation.parts)
    sums.merge(*_exact_sums((kept,), weights, (res,))[res])
    return sums.parts()
