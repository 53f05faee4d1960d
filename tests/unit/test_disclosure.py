"""Small-cell suppression (render.disclosure, render.privacy) against brute force.

A synthetic person-level layer: clusters of a few people each, at H3 resolution 10,
plus "districts" (arbitrary sets of base cells, as admin units are). Counts at every
resolution are recomputed here with h3 and pandas alone; then every published count
is checked: none below k, and no hidden count recoverable as parent − Σ visible
children, as Σ children of a hidden cell, or as district − Σ its visible cells.
"""

from __future__ import annotations

from collections import Counter

import h3
import numpy as np
import pandas as pd
import pytest

from render.disclosure import suppress
from render.privacy import suppress_items

BASE = 10


def synthetic_people(seed: int, clusters: int = 60) -> pd.Series:
    """People per res-10 cell: clusters of 1–30 people around random places."""
    rng = np.random.default_rng(seed)
    cells: Counter[int] = Counter()
    for _ in range(clusters):
        lat, lon = 30.2 + rng.uniform(0, 0.2), 120.1 + rng.uniform(0, 0.2)
        for _ in range(int(rng.integers(1, 30))):
            cell = h3.latlng_to_cell(lat + rng.normal(0, 0.004), lon + rng.normal(0, 0.004), BASE)
            cells[h3.str_to_int(cell)] += 1
    return pd.Series(cells, dtype=np.int64).sort_index()


def counts_by_res(base: pd.Series) -> dict[int, dict[int, int]]:
    """Independently: every ancestor's count, with h3's own cell_to_parent."""
    out: dict[int, dict[int, int]] = {}
    for res in range(0, BASE + 1):
        totals: Counter[int] = Counter()
        for cell, n in base.items():
            totals[h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(cell)), res))] += int(n)
        out[res] = dict(totals)
    return out


def districts(base: pd.Series, seed: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=len(base))
    return {f"d{n}": base.index[labels == n].tolist() for n in range(7)}


def recoverable(published: dict[int, int | None], truth: dict[int, int],
                groups: dict[str, list[int]]) -> list[str]:
    """Every way a hidden count comes out of what is published, by brute force."""
    found = []
    for parent, total in published.items():
        res = h3.get_resolution(h3.int_to_str(parent))
        if res == BASE:
            continue
        kids = [h3.str_to_int(c) for c in h3.cell_to_children(h3.int_to_str(parent), res + 1)]
        kids = [c for c in kids if truth.get(c, 0) > 0]
        hidden = [c for c in kids if published.get(c) is None]
        if total is not None and len(hidden) == 1:
            value = total - sum(published[c] or 0 for c in kids if c not in hidden)
            found.append(f"{parent:x} − visible children = {value} = hidden {hidden[0]:x}")
        if total is None and kids and not hidden:
            found.append(f"hidden {parent:x} = Σ its visible children")
    for name, cells in groups.items():
        kids = [c for c in cells if truth.get(c, 0) > 0]
        total = sum(truth[c] for c in kids)
        hidden = [c for c in kids if published.get(c) is None]
        visible_total = total if not 0 < total < K else None
        if visible_total is not None and len(hidden) == 1:
            found.append(f"district {name} − its visible cells = hidden {hidden[0]:x}")
    return found


K = 10


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_no_small_count_shown_and_none_recoverable(seed: int) -> None:
    base = synthetic_people(seed)
    by_res = counts_by_res(base)
    truth = {cell: n for level in by_res.values() for cell, n in level.items()}
    groups = districts(base, seed)
    result = suppress(base, K, BASE, groups)
    published = {cell: (None if result.hidden(cell) else n) for cell, n in truth.items()}
    # The data really has small counts, and they are hidden.
    small = [c for c, n in truth.items() if 0 < n < K]
    assert small and all(published[c] is None for c in small)
    assert [c for c, n in published.items() if n is not None and 0 < n < K] == []
    assert recoverable(published, truth, groups) == []
    # Districts: small ones hidden, and a hidden district is not the sum of visible cells.
    for name, cells in groups.items():
        total = sum(truth.get(c, 0) for c in cells)
        if 0 < total < K:
            assert result.group_hidden(name)
        if result.group_hidden(name):
            assert any(published.get(c) is None for c in cells if truth.get(c, 0) > 0)
    # Suppression costs something, but not everything: most people stay counted.
    assert sum(n for c, n in by_res[8].items() if published[c] is not None) > 0


def test_the_check_would_catch_primary_suppression_alone() -> None:
    """Hiding only the counts below k leaves them recoverable: the brute force sees it."""
    base = synthetic_people(1)
    truth = {cell: n for level in counts_by_res(base).values() for cell, n in level.items()}
    published = {cell: (None if 0 < n < K else n) for cell, n in truth.items()}
    assert recoverable(published, truth, {}) != []


def test_cells_finer_than_the_base_are_hidden_and_zeros_shown() -> None:
    base = pd.Series([50], index=[h3.str_to_int(h3.latlng_to_cell(30.2, 120.1, BASE))])
    result = suppress(base, K, BASE)
    child = h3.str_to_int(h3.cell_to_children(h3.int_to_str(int(base.index[0])), 11)[0])
    assert result.hidden(child) and not result.hidden(int(base.index[0]))
    assert result.shown() == "< 10"


def test_breakdown_items() -> None:
    assert suppress_items({"a": 50, "b": 30, "c": 3}, 10) == {"c", "b"}
    assert suppress_items({"a": 50, "b": 4, "c": 3}, 10) == {"b", "c"}
    assert suppress_items({"a": 50, "b": 30}, 10) == set()
    assert suppress_items({"a": 3}, 10) == {"a"}
