"""One contract, every adapter: the same checks over the whole registry.

Each adapter contributes a *case* in a ``tests/contract/cases_<adapter>.py`` module:
a ``CASES`` dict mapping adapter name → a function ``(tmp_path, request) -> Adapter``
that loads :mod:`tests.contract.sample` into that adapter's real system and returns
an adapter reading it (or ``(adapter, Expect(...))`` when the adapter by nature
yields something else, e.g. a simulator that times rows itself). The test refuses
an adapter that has no case.

Every registered adapter also provides every hook of :mod:`data.hooks`; and an
adapter defined here, registered the way a plug-in package registers one (an entry
point), is served through the normal path — config, store, cells — with no other edit.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pytest

import data
from config.city import ConfigError
from data import adapter_names, get_adapter_class
from data.base import POINT_COLUMNS, AdapterBase, Batch
from data.hooks import HOOKS, Adapter, missing_hooks
from tests.contract.sample import EXPECTED_REJECTIONS, FIELDS, GOOD_ROWS, all_rows

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
        assert isinstance(adapter, Adapter), adapter_name
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


# ------------------------------------------------------------------------ the hooks
def test_hooks_lists_every_member_of_the_protocol() -> None:
    declared = {name for name in {*vars(Adapter), *Adapter.__annotations__}
                if not name.startswith("_")}
    assert set(HOOKS) == declared
    assert len(HOOKS) == len(set(HOOKS))


@pytest.mark.parametrize("adapter_name", adapter_names())
def test_every_registered_adapter_provides_every_hook(adapter_name: str) -> None:
    cls = get_adapter_class(adapter_name)
    assert missing_hooks(cls) == []
    assert isinstance(cls.name, str) and cls.name
    assert cls.required_options <= cls.options
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cls.default_fields.items())
    assert isinstance(cls.streaming, bool) and isinstance(cls.process_local_cursor, bool)
    assert inspect.signature(cls.check_options).parameters.keys() >= {"where", "options", "fields"}


# --------------------------------------------------- a throwaway adapter, registered
#: The sample under column names of this adapter's own, mapped by its ``default_fields``.
RAW_NAMES = {name: f"raw_{column}" for name, column in FIELDS.items()}


class ThrowawayAdapter(AdapterBase):
    """``throwaway``: the contract sample, served from memory (defined in a test only)."""

    name = "throwaway"
    options = frozenset({"rows", "label"})
    required_options = frozenset({"rows"})
    default_fields = RAW_NAMES

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        if options["rows"] not in ("good", "all"):
            raise ConfigError(f"{where}.rows: expected 'good' or 'all', got {options['rows']!r}")

    def snapshot(self) -> Batch:
        rows = GOOD_ROWS if self.source.options["rows"] == "good" else all_rows()
        raw = pd.DataFrame([{RAW_NAMES[k]: v for k, v in row.items()} for row in rows])
        return self.normalise(raw)


class HooklessAdapter:
    """Registered but declares only part of the contract."""

    name = "hookless"
    options: frozenset[str] = frozenset()

    def snapshot(self) -> Batch:
        raise AssertionError("never read")


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install this module's adapters as a plug-in package would: an entry point in the
    ``citybrain.adapters`` group of an installed distribution."""
    site = tmp_path / "site"
    dist = site / "citybrain_throwaway-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: citybrain-throwaway\n"
                                   "Version: 0.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{data.ENTRY_POINT_GROUP}]\n"
        f"throwaway = {__name__}:ThrowawayAdapter\n"
        f"hookless = {__name__}:HooklessAdapter\n")
    monkeypatch.syspath_prepend(str(site))
    data._entry_points.cache_clear()
    yield
    data._entry_points.cache_clear()


@pytest.mark.usefixtures("plugins")
def test_a_registered_adapter_is_served_through_the_normal_path(tmp_path: Path) -> None:
    from store.city import CityData
    from tests.contract.cases_files import load_config_tables

    assert {"throwaway", "hookless"} <= set(adapter_names())
    table = {"name": "contract", "layer": "government", "role": "requests",
             "adapter": "throwaway", "rows": "all"}
    config = load_config_tables(tmp_path, [table])
    source = config.sources[0]
    assert source.options == {"rows": "all"} and source.fields == {}

    store = CityData.load(config)
    health = store.health["contract"]
    assert health.last_error is None and health.rows_loaded == len(GOOD_ROWS)
    assert sorted(store.frame("government", "requests")["id"]) == sorted(r["id"] for r in GOOD_ROWS)
    adapter = store.adapter(source)
    assert isinstance(adapter, ThrowawayAdapter) and isinstance(adapter, Adapter)
    # The default field mapping reached normalise: every column came through.
    assert adapter.source.fields == {k: v for k, v in RAW_NAMES.items()
                                     if k in adapter.role.field_names()}
    _check_batch(adapter.snapshot(), "throwaway", "requests", Expect())


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(("extra", "message"), [
    ({"rows": "some"}, "'contract'.rows: expected 'good' or 'all', got 'some'"),
    ({}, "missing required key 'rows'"),
    ({"rows": "all", "colour": "red"}, "colour"),
])
def test_a_registered_adapter_options_are_checked_at_load(tmp_path: Path, extra: dict[str, Any],
                                                          message: str) -> None:
    from tests.contract.cases_files import load_config_tables

    table = {"name": "contract", "layer": "government", "role": "requests",
             "adapter": "throwaway", **extra}
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config_tables(tmp_path, [table])


@pytest.mark.usefixtures("plugins")
def test_a_registered_class_without_every_hook_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as refused:
        get_adapter_class("hookless")
    for hook in ("required_options", "default_fields", "streaming", "process_local_cursor",
                 "check_options", "updates", "close"):
        assert hook in str(refused.value)
    assert "'name'" not in str(refused.value) and "snapshot" not in str(refused.value)


@pytest.mark.usefixtures("plugins")
def test_a_new_reader_restarts_only_sources_whose_adapter_says_its_cursors_are_local(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from store.replication import ReplicatedCityData
    from tests.contract.cases_files import load_config_tables

    monkeypatch.setattr(ThrowawayAdapter, "process_local_cursor", True)
    tables = [{"name": "local", "layer": "government", "role": "requests",
               "adapter": "throwaway", "rows": "good"},
              {"name": "shared", "layer": "government", "role": "requests",
               "adapter": "csv", "path": "sample.csv", **FIELDS}]
    store = ReplicatedCityData(load_config_tables(tmp_path, tables))
    store._cursors.update({"local": 7, "shared": 8})
    store.forget_local_cursors()
    assert store._cursors == {"shared": 8}
