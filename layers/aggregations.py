"""Aggregations: how a metric reduces the rows of one H3 cell to a number.

One small class per aggregation, listed once in :data:`AGGREGATIONS` (the model is
datashader's ``reductions.py``, one class per reduction). A class knows every step
the app takes with it, so the map, the place profile and the live totals read the
same definition instead of switching on the name:

* :meth:`Aggregation.reduce` — the value per group of rows (per cell on the map,
  over a whole place in the profile);
* :meth:`Aggregation.finish` — what turns that into the shown value (per km²);
* :attr:`Aggregation.parts`, :meth:`Aggregation.weights`, :meth:`Aggregation.combine`
  — how the value is kept up to date from deltas: running per-cell sums of per-row
  weights (count: 1 or the row's weight, sum: the value, mean: the value and 1), or ``parts = 0`` when it
  cannot be (median, distinct values), and is then recomputed from the rows;
* :attr:`Aggregation.empty` — the one value of a cell or place with no rows (or no
  rows with a value).

The empty value, decided once: **0** for ``count``, ``sum``, ``nunique`` and
``sum_per_km2`` (nothing counted, nothing summed, no distinct values — a real zero,
drawn in the scale's first colour); **NaN** for ``mean`` and ``median`` (no value:
drawn transparent, ``null`` in JSON and the profile).

A new aggregation is one subclass plus one line in :data:`AGGREGATIONS`; a
:class:`layers.base.Metric` names it by ``agg`` (the config-facing names below).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.hexes import cell_area_km2

#: Area in km² of each group label (cells on the map; the place itself in a profile).
AreaOf = Callable[[pd.Index], Any]
Floats = NDArray[np.float64]


class Aggregation:
    """How one kind of metric reduces rows to a value (see the module docs)."""

    #: The name a :class:`layers.base.Metric` gives in ``agg``.
    name: ClassVar[str]
    #: Reads the metric's ``column``; ``count`` reads none (it counts rows).
    reads_column: ClassVar[bool] = True
    #: The value of a cell or place with no rows, or none with a value.
    empty: ClassVar[float] = math.nan
    #: Running per-cell sums the live totals keep for it; 0: recomputed from the rows.
    parts: ClassVar[int] = 0
    #: Summing the cells gives the city's total, the same at every resolution.
    city_total: ClassVar[bool] = False
    #: Listed in a place profile (per-km² values are not: the profile gives the
    #: place's own density beside its area).
    in_profile: ClassVar[bool] = True
    #: Counts whole things: in a place made of whole areas (a district), an area's rows
    #: count in the one place holding most of the area, not in every place it touches.
    whole_units: ClassVar[bool] = False

    def reduce(self, values: pd.Series, groups: pd.Series | NDArray[Any]) -> pd.Series:
        """The value per group of ``values`` (the column, or the cells for ``count``).

        A group without a value is NaN or absent; callers read either as :attr:`empty`.
        """
        raise NotImplementedError

    def finish(self, values: pd.Series, area_km2: AreaOf) -> pd.Series:
        """The shown value from the reduction per group (most aggregations: itself)."""
        return values

    def weights(self, values: Floats | None, n: int) -> Floats:
        """What each of ``n`` rows adds to each running sum, shape ``(n, parts)``.

        ``values`` is the column as floats (NaN where missing), None for ``count``.
        """
        raise TypeError(f"aggregation {self.name!r} is not kept incrementally")

    def combine(self, sums: Floats) -> Floats:
        """The reduction per cell from its running sums ``(cells, parts)``."""
        return sums[:, 0]

    def describe(self, column: str | None, role: str) -> str:
        """How a value is computed, for the generated new-city guide (Markdown)."""
        raise NotImplementedError

    @property
    def incremental(self) -> bool:
        """Kept up to date from deltas (else recomputed from the rows)."""
        return self.parts > 0

    def __repr__(self) -> str:
        return f"<aggregation {self.name}>"


def _values_or_nan(values: Floats | None, n: int) -> Floats:
    return np.full(n, np.nan) if values is None else values


class Count(Aggregation):
    """How many records fall in the cell: one per row, or the rows' ``weight`` when a
    source says how many records each row stands for (data aggregated elsewhere)."""

    name = "count"
    reads_column = False
    empty = 0.0
    parts = 1
    city_total = True

    def reduce(self, values: pd.Series, groups: pd.Series | NDArray[Any]) -> pd.Series:
        """``values`` are the rows' weights (:func:`row_weights`)."""
        return values.groupby(groups).sum().astype(float)

    def weights(self, values: Floats | None, n: int) -> Floats:
        """``values`` are the rows' weights, None when every row counts once."""
        if values is None:
            return np.ones((n, 1), dtype=np.float64)
        return np.nan_to_num(values, nan=0.0).reshape(n, 1)

    def describe(self, column: str | None, role: str) -> str:
        return f"count of `{role}` rows"


class Sum(Aggregation):
    """The sum of the column; rows without a value add nothing."""

    name = "sum"
    empty = 0.0
    parts = 1
    city_total = True

    def reduce(self, values: pd.Series, groups: pd.Series | NDArray[Any]) -> pd.Series:
        return values.groupby(groups).sum(min_count=1)

    def weights(self, values: Floats | None, n: int) -> Floats:
        return np.nan_to_num(_values_or_nan(values, n), nan=0.0).reshape(n, 1)

    def describe(self, column: str | None, role: str) -> str:
        return f"sum of `{column}` over `{role}`"


class SumPerKm2(Sum):
    """A sum divided by the area of the cell (a density)."""

    name = "sum_per_km2"
    city_total = False  # densities do not add up across cells
    in_profile = False

    def finish(self, values: pd.Series, area_km2: AreaOf) -> pd.Series:
        return values / area_km2(values.index)

    def describe(self, column: str | None, role: str) -> str:
        return f"sum of `{column}` over `{role}` per km²"


class Mean(Aggregation):
    """The mean of the column's values; kept live as sum / count of values."""

    name = "mean"
    parts = 2

    def reduce(self, values: pd.Series, groups: pd.Series | NDArray[Any]) -> pd.Series:
        return values.groupby(groups).mean()

    def weights(self, values: Floats | None, n: int) -> Floats:
        values = _values_or_nan(values, n)
        present = ~np.isnan(values)
        return np.column_stack([np.where(present, values, 0.0), present.astype(np.float64)])

    def combine(self, sums: Floats) -> Floats:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sums[:, 1] > 0, sums[:, 0] / sums[:, 1], np.nan)

    def describe(self, column: str | None, role: str) -> str:
        return f"mean of `{column}` over `{role}`"


class Median(Aggregation):
    """The median of the column's values (recomputed from the rows)."""

    name = "median"

    def reduce(self, values: pd.Series, groups: pd.Series | NDArray[Any]) -> pd.Series:
        return values.groupby(groups).median()

    def describe(self, column: str | None, role: str) -> str:
        return f"median of `{column}` over `{role}`"


class NUnique(Aggregation):
    """How many distinct values the column holds (recomputed from the rows)."""

    name = "nunique"
    empty = 0.0  # no rows hold no distinct values, as a count of nothing is 0
    whole_units = True

    def reduce(self, values: pd.Series, groups: pd.Series | NDArray[Any]) -> pd.Series:
        return values.groupby(groups).nunique().astype(float)

    def describe(self, column: str | None, role: str) -> str:
        return f"distinct `{column}` of `{role}`"


#: Every aggregation by its config-facing name.
AGGREGATIONS: dict[str, Aggregation] = {
    a.name: a for a in (Count(), Sum(), Mean(), Median(), NUnique(), SumPerKm2())
}


def get_aggregation(name: str) -> Aggregation:
    """The aggregation called ``name``; an unknown name raises, listing the valid ones."""
    try:
        return AGGREGATIONS[name]
    except KeyError:
        raise ValueError(f"unknown aggregation {name!r}; valid aggregations are: "
                         + ", ".join(AGGREGATIONS)) from None


def row_weights(rows: pd.DataFrame) -> pd.Series:
    """How many records each row stands for: its ``weight`` column, else 1 (floats).

    Only sources mapping ``weight`` (or placed by H3 cell, see data.cells) have the column.
    """
    if "weight" in rows.columns:
        return pd.to_numeric(rows["weight"], errors="coerce").fillna(0.0).astype(float)
    return pd.Series(1.0, index=rows.index)


def cell_areas(index: pd.Index) -> Floats:
    """:data:`AreaOf` for values per H3 cell."""
    return cell_area_km2(index.to_numpy())


__all__ = ["AGGREGATIONS", "Aggregation", "AreaOf", "Count", "Mean", "Median", "NUnique", "Sum",
           "SumPerKm2", "cell_areas", "get_aggregation", "row_weights"]
