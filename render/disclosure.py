"""Small-cell suppression with secondary suppression over the H3 tree and admin units.

One pure function, :func:`suppress`, decides which counts of a person-level source a
public audience (anonymous, exhibition) may not see; every place that shows such a
count (map values, hovers, cell and area profiles, ``/api/layers/<id>/cells``,
``/api/cells/<cell>``) asks the :class:`Suppression` it returns, so they cannot
disagree.

The algorithm (the UK ONS rule for counts of people, with complementary cells):

1. **Counts at every resolution**, as they are published: a point counts in the
   cell ``latLngToCell`` gives it at each resolution (which is not always its base
   cell's parent: H3 cells do not nest exactly), an admin unit (a *group*) holds the
   sum of its member cells. The *children* of a cell are the cells one resolution
   finer whose H3 parent it is: the relation a reader would subtract along (up to
   the few points near cell edges, ``parent ≈ Σ children``).
2. **Primary suppression.** Every count with ``0 < n < k`` is hidden (shown "< k").
   Zeros stay visible: an empty cell tells nothing about a person.
3. **Secondary suppression**, repeated until nothing changes:

   - *up*: a **visible** cell or group whose nonzero children (members) include
     exactly one hidden one would give it away as ``parent − Σ visible children``:
     its smallest visible nonzero child is hidden too; if there is none, the parent
     itself is hidden.
   - *down*: a **hidden** cell or group whose nonzero children are all visible would
     be recovered as ``Σ children``: its smallest nonzero child is hidden too.

   Each pass only hides more, so it ends. Afterwards every equation "parent minus
   visible children" or "unit minus visible cells" either involves no hidden count
   or at least two, and no hidden count equals the sum of visible ones.

Cells finer than the base resolution are not counted (rows are indexed at the base
resolution), so for them :meth:`Suppression.hidden` is always True.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from geo.hexes import cell_resolution, parents

#: The default threshold: counts of fewer than 10 people are not published (UK ONS).
DEFAULT_K = 10


@dataclass(frozen=True)
class Suppression:
    """Which counts are hidden: cells by resolution, and named groups (admin units)."""

    k: int
    base_res: int
    hidden_cells: frozenset[int] = frozenset()
    hidden_groups: frozenset[str] = frozenset()
    #: The counts the decision was made on (cell → count, every resolution), for tests.
    counts: Mapping[int, int] = field(default_factory=dict, repr=False, compare=False)

    def hidden(self, cell: int) -> bool:
        """True when ``cell``'s count (and anything computed from its rows) is hidden."""
        if cell_resolution(cell) > self.base_res:
            return True
        return cell in self.hidden_cells

    def group_hidden(self, name: str) -> bool:
        return name in self.hidden_groups

    def mask(self, cells: Iterable[int]) -> np.ndarray:
        """A boolean array: which of ``cells`` are hidden."""
        return np.fromiter((self.hidden(int(c)) for c in cells), dtype=bool)

    def shown(self) -> str:
        """How a hidden count is shown: ``"< k"``."""
        return f"< {self.k}"


def _levels(base_counts: pd.Series, base_res: int, top_res: int) -> dict[int, pd.Series]:
    """Counts per cell at every resolution from ``base_res`` up to ``top_res``."""
    levels = {base_res: base_counts}
    cells = base_counts.index.to_numpy(dtype=np.int64)
    values = base_counts.to_numpy(dtype=np.int64)
    for res in range(base_res - 1, top_res - 1, -1):
        levels[res] = pd.Series(values, index=parents(cells, res)).groupby(level=0).sum()
    return levels


def suppress(base_counts: pd.Series, k: int = DEFAULT_K, base_res: int = 10,
             groups: Mapping[str, Iterable[int]] | None = None, top_res: int = 0,
             levels: Mapping[int, pd.Series] | None = None) -> Suppression:
    """Which counts to hide so that none below ``k`` is shown or can be recovered.

    ``base_counts``: rows per cell at ``base_res`` (int64 cell index; zeros may be
    left out); coarser counts are its roll-up unless ``levels`` gives the published
    counts per resolution (``top_res`` … ``base_res``). ``groups``: admin units by
    name → their member cells (at any one resolution between ``top_res`` and
    ``base_res``, e.g. the boundary's base cells).

    >>> import h3
    >>> cells = [h3.str_to_int(c) for c in h3.cell_to_children(h3.latlng_to_cell(0, 0, 7), 8)]
    >>> s = suppress(pd.Series([3, 40, 50, 60, 70, 80, 90], index=cells), k=10, base_res=8)
    >>> [s.hidden(c) for c in cells]     # 3 is below k; 40 hidden so 3 = 490 - 447 fails
    [True, True, False, False, False, False, False]
    """
    if levels is None:
        levels = _levels(base_counts[base_counts.to_numpy() > 0].astype(np.int64), base_res,
                         top_res)
    levels = {res: series[series.to_numpy() > 0].astype(np.int64)
              for res, series in levels.items()}
    count: dict[int, int] = {}
    for series in levels.values():
        count.update(zip(series.index.tolist(), series.to_numpy().tolist(), strict=True))
    # parent → nonzero children, for every resolution above the base.
    children: dict[int, list[int]] = {}
    for res in range(base_res, top_res, -1):
        cells = levels[res].index.to_numpy(dtype=np.int64)
        for child, parent in zip(cells.tolist(), parents(cells, res - 1).tolist(), strict=True):
            children.setdefault(parent, []).append(child)
            count.setdefault(parent, 0)  # a parent no point falls in exactly: shown as 0
    # groups → nonzero members (counted at the members' resolution).
    members = {name: sorted({int(c) for c in cells if count.get(int(c), 0) > 0})
               for name, cells in (groups or {}).items()}
    group_count = {name: sum(count[c] for c in cells) for name, cells in members.items()}

    hidden = {cell for cell, n in count.items() if 0 < n < k}
    hidden_groups = {name for name, n in group_count.items() if 0 < n < k}

    def smallest_visible(cells: list[int]) -> int | None:
        visible = [c for c in cells if c not in hidden]
        return min(visible, key=lambda c: (count[c], c)) if visible else None

    def settle(parent_hidden: bool, kids: list[int]) -> tuple[bool, int | None]:
        """(hide the parent?, child to hide) for one parent and its nonzero children."""
        n_hidden = sum(1 for c in kids if c in hidden)
        if not parent_hidden and n_hidden == 1:
            extra = smallest_visible(kids)
            return (extra is None), extra
        if parent_hidden and kids and n_hidden == 0:
            return False, smallest_visible(kids)
        return False, None

    # Parents over their children and admin units over their member cells settle the
    # same way; the unit itself is hidden in its own set, an extra cell always in ``hidden``.
    totals: tuple[tuple[Mapping[Any, list[int]], set[Any]], ...] = (
        (children, hidden), (members, hidden_groups))
    changed = True
    while changed:
        changed = False
        for parts, hidden_totals in totals:
            for total, kids in parts.items():
                hide_total, extra = settle(total in hidden_totals, kids)
                if hide_total:
                    hidden_totals.add(total)
                    changed = True
                if extra is not None:
                    hidden.add(extra)
                    changed = True
    return Suppression(k=k, base_res=base_res, hidden_cells=frozenset(hidden),
                       hidden_groups=frozenset(hidden_groups), counts=count)


__all__ = ["DEFAULT_K", "Suppression", "suppress"]
