"""Rows already aggregated to H3 cells: a cell id column instead of coordinates.

Other engines (kepler.gl exports, Spark/DuckDB/BigQuery jobs, another department's
H3 tables) deliver data as one row per cell: an H3 id (hex text such as
``8a2a1072b59ffff`` or the same index as an integer, at any resolution) and value
columns. A point source maps ``cell = "<column>"`` instead of ``lat``/``lon`` and,
when each row stands for several records, ``weight = "<count column>"``; counts then
sum the weights, sums sum the value columns.

Placing a row on the city's base resolution goes **through cell ids**, never through
coordinates (an H3 parent does not cover all of its children's area, so a cell's
centre can lie outside its own parent at a coarser resolution):

finer than the base resolution
    the row moves to its ancestor at the base resolution (``cellToParent``), so every
    coarser total equals a group-by of the input's own ancestors.
at the base resolution
    the row stays where it is.
coarser than the base resolution
    the row is spread in **equal shares** over its descendants at the base resolution
    (``cellToChildren``): each gets ``1/k`` of its weight and of every number column,
    so totals are kept exactly at every resolution down to the input's own, and finer
    resolutions show the input's total evenly spread (there is nothing finer to know).
    Means and medians of spread rows see the shares. A row more than
    :data:`MAX_SPREAD_LEVELS` resolutions coarser than the base is rejected rather than
    turned into thousands of rows.

A row's ``lat``/``lon`` is its (base-resolution) cell's centre. Ids that are not H3
cells are rejected and counted (``invalid H3 cell``), as blank ones are (``missing
cell``).
"""

from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.hexes import cell_centers, parents, resolution_of

#: How many resolutions coarser than the base a cell may be (7⁴ = 2,401 shares a row).
MAX_SPREAD_LEVELS = 4
#: Rejection reasons this module gives.
INVALID_CELL = "invalid H3 cell"
MISSING_CELL = "missing cell"


def parse_cells(raw: pd.Series) -> tuple[NDArray[np.int64], pd.Series]:
    """H3 cells (int64) from hex text, decimal text or integers; 0 where invalid.

    Returns the cells and, per row, why a row has none (null where it has one).
    Hex is tried first: a valid H3 index written in decimal has 18–19 digits, more
    than the 15 hex digits of any index, so the two readings never both succeed.
    """
    text = raw.astype("string").str.strip().str.lower()
    text = text.str.removeprefix("0x").str.replace(r"\.0$", "", regex=True)
    cells = np.zeros(len(raw), dtype=np.int64)
    why = pd.Series(None, index=raw.index, dtype=object)
    blank = text.isna() | text.eq("")
    why[blank.to_numpy()] = MISSING_CELL
    codes, unique = pd.factorize(text.where(~blank))
    parsed = np.array([_parse_one(value) for value in unique], dtype=np.int64)
    valid = codes >= 0
    cells[valid] = parsed[codes[valid]]
    why[(valid & (cells == 0))] = INVALID_CELL
    return cells, why


def _parse_one(text: str) -> int:
    for base in (16, 10):
        try:
            value = int(text, base)
        except ValueError:
            continue
        if 0 < value < 2**63 and h3i.is_valid_cell(value):
            return value
    return 0


def place_on_base(frame: pd.DataFrame, cells: NDArray[np.int64], base_res: int,
                  shared: list[str]) -> pd.DataFrame:
    """``frame`` with ``_cell`` (base resolution), ``_lat``/``_lon`` (its centre), ``_weight``.

    ``frame`` holds raw rows with an ``_id`` and a ``_weight`` column; ``cells`` are their
    valid input cells, none more than :data:`MAX_SPREAD_LEVELS` coarser than
    ``base_res``. Rows of coarser cells are repeated once per descendant, ``_weight``
    and the number columns named in ``shared`` divided equally (see the module docs),
    ``_id`` suffixed with ``@<child cell>`` so ids stay unique.
    """
    res = resolution_of(cells)
    finer = res >= base_res
    base = np.zeros(len(cells), dtype=np.int64)
    base[finer] = parents(cells[finer], base_res)
    frame = frame.assign(_cell=base)
    coarse = np.flatnonzero(~finer)
    if len(coarse):
        children = [np.asarray(h3i.cell_to_children(int(c), base_res), dtype=np.int64)
                    for c in cells[coarse]]
        counts = np.array([len(c) for c in children])
        spread = frame.iloc[np.repeat(coarse, counts)].copy()
        spread["_cell"] = np.concatenate(children)
        share = np.repeat(1.0 / counts, counts)
        for column in ("_weight", *shared):
            spread[column] = pd.to_numeric(spread[column], errors="coerce").to_numpy() * share
        spread["_id"] = spread["_id"].astype(str) + "@" + pd.Series(
            [format(int(c), "x") for c in spread["_cell"]], index=spread.index)
        frame = pd.concat([frame.iloc[np.flatnonzero(finer)], spread], ignore_index=True)
    lat, lon = cell_centers(frame["_cell"].to_numpy(dtype=np.int64))
    return frame.assign(_lat=lat, _lon=lon).reset_index(drop=True)


def too_coarse(cells: NDArray[np.int64], base_res: int) -> NDArray[np.bool_]:
    """Valid cells more than :data:`MAX_SPREAD_LEVELS` resolutions coarser than the base."""
    return (cells != 0) & (resolution_of(cells) < base_res - MAX_SPREAD_LEVELS)


__all__ = ["INVALID_CELL", "MAX_SPREAD_LEVELS", "MISSING_CELL", "parse_cells", "place_on_base",
           "too_coarse"]
