"""One contract, every adapter: the same checks over the whole registry.

Each adapter contributes a *case* in a ``tests/contract/cases_<adapter>.py`` module:
a ``CASES`` dict mapping adapter name → a function ``(tmp_path, request) -> Adapter``
that loads :mod:`tests.contract.sample` into that adapter's real system and returns
an adapter reading it (or ``(adapter, Expect(...))`` when the adapter by nature
yields something else, e.g. a simulator that times rows itself). The test refuses
an adapter that has no case.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pytest

from data import adapter_names
from data.base import POINT_COLUMNS, Batch
from tests.contract.sample import EXPECTED_REJECTIONS, GOOD_ROWS, all_rows

CaseFactory = Callable[[Path, pytest.FixtureRequest], Any]


@dataclass(frozen=True)
class Expect:
    """What a case's adapter should return, when it differs from the sample's default."""

    ids: tuple[str, ...] = tuple(r["id"] for r in GOOD_ROWS)
    rejections: dict[str, int] = field(default_factory=lambda: dict(EXPECTED_REJECTIONS))


def _load_cases() -> dict[str, CaseFactory]:
    cases: dict[str, CaseFactory] = {}
    for module_path in sorted(Path(__file__).parent.glob("cases_*.py")):
        module = importlib.import_module(f"tests.contract.{module_path.stem}")
        cases.update(module.CASES)
    return cases


CASES = _load_cases()


def test_every_registered_adapter_has_a_contract_case() -> None:
    missing = sorted(set(adapter_names()) - set(CASES))
    assert not missing, f"adapters without a contract case: {missing}"


@pytest.mark.parametrize("adapter_name", sorted(CASES))
def test_adapter_contract(adapter_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    made = CASES[adapter_name](tmp_path, request)
    adapter, expect = made if isinstance(made, tuple) else (made, Expect())
    try:
        batch = adapter.snapshot()
        if adapter.streaming and len(batch.frame) < len(expect.ids):
            # Streaming adapters deliver what arrived; collect until the sample is in.
            batch = _collect(adapter, batch, len(expect.ids))
        _check_batch(batch, adapter_name, adapter.source.role, expect)
        later = adapter.updates(batch.cursor)
        assert isinstance(later, Batch)
        assert list(later.frame.columns[: len(POINT_COLUMNS)]) == list(POINT_COLUMNS)
    finally:
        adapter.close()


def _collect(adapter: Any, first: Batch, wanted: int, timeout: float = 15.0) -> Batch:
    import time

    frames = [first.frame]
    rejected = first.rejected.copy()
    cursor = first.cursor
    deadline = time.monotonic() + timeout
    while sum(len(f) for f in frames) < wanted and time.monotonic() < deadline:
        batch = adapter.updates(cursor)
        frames.append(batch.frame)
        rejected.update(batch.rejected)
        cursor = batch.cursor
        time.sleep(0.1)
    return Batch(frame=pd.concat(frames, ignore_index=True), rejected=rejected, cursor=cursor)


def _check_batch(batch: Batch, adapter_name: str, role: str, expect: Expect) -> None:
    frame = batch.frame
    assert list(frame.columns[: len(POINT_COLUMNS)]) == list(POINT_COLUMNS), adapter_name
    assert sorted(frame["id"]) == sorted(expect.ids), adapter_name
    assert frame["id"].map(type).eq(str).all()
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["lat"].dtype == np.float64 and frame["lon"].dtype == np.float64
    assert frame["cell"].dtype == np.int64
    assert (frame["source"] == "contract").all()
    requests = role == "requests"
    if requests:
        for column in ("category", "agency", "status", "closed_time", "is_open"):
            assert column in frame, column
    expected = {r["id"]: r for r in all_rows()}
    for row in frame.itertuples():
        want = expected[row.id]
        assert row.lat == pytest.approx(want["lat"], abs=1e-6)
        assert row.lon == pytest.approx(want["lon"], abs=1e-6)
        assert h3.str_to_int(h3.latlng_to_cell(want["lat"], want["lon"], 10)) == row.cell
        assert row.category == want["category"]
        if requests:
            assert row.is_open == (want["closed_time"] is None and want["status"] != "Closed")
    assert dict(batch.rejected) == expect.rejections, adapter_name
