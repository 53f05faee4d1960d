"""The corpus of bad files (``tests/corpus/bad_files/*.json``) through the csv adapter and
the city store, and the states a file can be in: missing, header-only, half-written,
shrinking. Counts are checked as data lines in = rows loaded + rows rejected by reason.

A case is a header, ``good`` generated rows, and ``bad_lines`` (UTF-8) or
``bad_lines_latin1`` (Latin-1 bytes) replacing the line at that index.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app import parse_config
from store.city import CityData

CORPUS = Path(__file__).parents[1] / "corpus" / "bad_files"
CASES = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(CORPUS.glob("*.json"))}
CITY = {"name": "Bad Files", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}


def file_bytes(case: dict[str, Any]) -> bytes:
    lines = [case["header"].encode()] + [
        f"g{i},2024-03-01T12:{i % 60:02d}:00Z,40.75,-73.98,1.5,ok".encode()
        for i in range(case["good"])]
    for index, text in case["bad_lines"].items():
        lines[1 + int(index)] = text.encode("utf-8")
    for index, text in case["bad_lines_latin1"].items():
        lines[1 + int(index)] = text.encode("latin-1")
    return b"\n".join(lines) + b"\n"


def store_for(path: Path, **options: Any) -> CityData:
    table = {"name": "devices", "layer": "things", "role": "devices", "adapter": "csv",
             "path": path.name, "id": "id", "time": "ts", "lat": "lat", "lon": "lon",
             "reading": "value", "category": "kind", **options}
    return CityData(parse_config({"city": CITY, "sources": [table]}, path.parent))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_line_is_loaded_or_counted(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = tmp_path / "devices.csv"
    path.write_bytes(file_bytes(case))
    data = store_for(path)
    data.refresh_source(data.config.sources[0])
    health = data.health["devices"]
    assert health.last_error is None
    # Lines in, counted independently of the reader: the header and blank lines aside.
    lines_in = len(file_bytes(case).splitlines()) - 1
    assert health.rows_loaded == case["loaded"]
    assert dict(health.rejected) == case["rejected"]
    assert health.rows_loaded + sum(health.rejected.values()) == lines_in
    assert sorted(d.reason for d in health.dead_letters) == sorted(
        r for r, n in case["rejected"].items() for _ in range(n))
    if name == "header_only":
        assert any("no rows" in w for w in health.warnings)
    if name == "huge_field":
        frame = data.frame("things", "devices", "devices")
        assert len(frame) == case["good"]
    if name == "epoch_mixed":  # each value in its own unit, compared with plain pandas
        times = data.frame("things", "devices", "devices").set_index("id")["time"]
        assert times["e1"] == pd.Timestamp(1709294400, unit="s", tz="UTC")
        assert times["e2"] == pd.Timestamp(1709294400000, unit="ms", tz="UTC")
        assert times["e3"] == pd.Timestamp(1709294400.25, unit="s", tz="UTC")


def test_latin1_declared_is_read_as_latin1(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_bytes(file_bytes(CASES["latin1_in_utf8"]))
    data = store_for(path, encoding="latin-1")
    data.refresh_source(data.config.sources[0])
    frame = data.frame("things", "devices", "devices").set_index("id")
    assert data.health["devices"].rejected == {}
    assert frame.loc["l5", "category"] == "café"


def test_missing_half_written_and_shrinking_files_are_reported(tmp_path: Path) -> None:
    case = {"header": "id,ts,lat,lon,value,kind", "good": 5000, "bad_lines": {},
            "bad_lines_latin1": {}}
    complete = file_bytes(case)
    path = tmp_path / "devices.csv"
    path.write_bytes(complete)
    data = store_for(path)
    source = data.config.sources[0]
    data.refresh_source(source)
    assert data.health["devices"].rows_loaded == 5000

    # Half-written: cut inside a record. The last good version stays.
    cut = complete[: len(complete) * 2 // 7]
    cut = cut if not cut.endswith(b"\n") else cut[:-3]
    path.write_bytes(cut)
    os.utime(path, ns=(1, 1))
    data.refresh_source(source, incremental=True)
    health = data.health["devices"]
    assert health.rows_loaded == 5000
    assert any("half-written" in w for w in health.warnings), health.warnings

    # Deleted: an error at every round (never healthy), the data kept.
    path.unlink()
    for _ in range(2):
        data.refresh_source(source, incremental=True)
        assert health.last_error is not None and "missing" in health.last_error
        assert health.is_stale()
    assert health.rows_loaded == 5000

    # A complete, smaller version is taken, with a warning that it shrank.
    smaller = b"\n".join(complete.splitlines()[:1001]) + b"\n"
    path.write_bytes(smaller)
    data.refresh_source(source, incremental=True)
    assert health.last_error is None
    assert health.rows_loaded == 1000
    assert any("shrank" in w for w in health.warnings), health.warnings


def test_a_replay_waits_for_a_complete_file(tmp_path: Path) -> None:
    """A reader that loads its file once (replay) does not load a half-written one."""
    case = {"header": "id,ts,lat,lon,value,kind", "good": 200, "bad_lines": {},
            "bad_lines_latin1": {}}
    complete = file_bytes(case)
    path = tmp_path / "devices.csv"
    path.write_bytes(complete[: len(complete) // 2 - 3])
    data = store_for(path, adapter="replay")
    source = data.config.sources[0]
    data.refresh_source(source)
    health = data.health["devices"]
    assert health.last_error is not None and "half-written" in health.last_error
    path.write_bytes(complete)
    data.refresh_source(source)
    assert health.last_error is None
    replay = data.adapter(source)
    assert len(replay._rows) == 200  # type: ignore[attr-defined]  # loaded whole, to be played
