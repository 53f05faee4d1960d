"""Contract cases for the live adapters: replay (of a CSV) and the device simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app import parse_config
from config.clock import CityClock
from data import AdapterContext, get_adapter_class
from tests.contract.sample import BAD_ROWS, GOOD_ROWS, all_rows, source_table
from tests.contract.test_adapter_contract import Expect

CITY = {"name": "Contract City", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}


def _adapter(tmp_path: Path, table: dict[str, Any], clock: CityClock) -> Any:
    source = parse_config({"city": CITY, "sources": [table]}, tmp_path).sources[0]
    context = AdapterContext(base_res=10, timezone="UTC", clock=clock)
    return get_adapter_class(source.adapter)(source, context)


def replay_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The sample replayed with a warm-up longer than it lasts: all of it is in at once."""
    pd.DataFrame(all_rows()).to_csv(tmp_path / "sample.csv", index=False)
    return _adapter(tmp_path, source_table("replay", path="sample.csv", warmup="1d"),
                    CityClock(speed=1.0))


def simulator_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The sample's places as devices: the simulator times its rows, so only the
    coordinate problems are rejected and 'bad-3' (bad time, good place) is a device."""
    pd.DataFrame(all_rows()).drop(columns=["time"]).to_csv(tmp_path / "devices.csv", index=False)
    table = {"name": "contract", "layer": "things", "adapter": "simulator", "simulated": True,
             "path": "devices.csv", "id": "id", "lat": "lat", "lon": "lon",
             "category": "category", "period": "1m"}
    adapter = _adapter(tmp_path, table, CityClock(speed=60.0))
    ids = tuple(r["id"] for r in GOOD_ROWS) + (BAD_ROWS[2]["id"],)
    return adapter, Expect(ids=ids, rejections={"missing coordinates": 1,
                                                "coordinates out of range": 1})


CASES = {"replay": replay_case, "simulator": simulator_case}
