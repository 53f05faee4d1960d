"""The corpus of bad rows (``tests/corpus/bad_rows/*.json``) through normalisation and a
real Mosquitto broker: every bad value is a counted rejection with a dead letter, and
the good message sent after it still arrives (no stall, no lost cursor).

A case holds ``messages`` (device JSON objects) or a raw ``payload`` (``text``, or
``latin1`` to be encoded as Latin-1), and the rows expected ``loaded`` and ``rejected``
by reason. Counts are checked as rows in = rows loaded + rows rejected by reason.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data import AdapterContext
from data.base import normalise
from data.mqtt import lookup
from tests.integration.test_mqtt import (
    Publisher,
    device,
    device_table,
    make_adapter,  # noqa: F401 (a fixture)
    wait_until,
)

CORPUS = Path(__file__).parents[1] / "corpus" / "bad_rows"
CASES = {p.stem: json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))}
COLUMNS = ("id", "ts", "position.lat", "position.lon", "sensor.value", "kind")


def payload(case: dict[str, Any]) -> bytes:
    raw = case["payload"]
    return raw["latin1"].encode("latin-1") if "latin1" in raw else raw["text"].encode()


def test_the_corpus_covers_every_kind() -> None:
    reasons = Counter(r for case in CASES.values() for r in case["rejected"])
    for reason in ("implausible time", "unparseable time", "unparseable coordinates",
                   "coordinates not numbers", "wrong encoding", "not JSON"):
        assert reasons[reason], reason


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if "messages" in c))
def test_each_value_is_judged_on_its_own(name: str, tmp_path: Path) -> None:
    """As a file or any adapter hands rows over: typed values, one frame."""
    from app import parse_config

    case = CASES[name]
    config = parse_config({"city": {"name": "T", "center": {"lat": 40.7, "lon": -73.9},
                                    "timezone": "UTC"},
                           "sources": [device_table(["t/#"])]}, tmp_path)
    source = config.sources[0]
    from layers import LAYERS

    role = LAYERS[source.layer].roles[source.role]
    records = [{c: lookup(m, c) for c in COLUMNS} for m in case["messages"]]
    batch = normalise(pd.DataFrame.from_records(records, columns=list(COLUMNS)), source, role,
                      AdapterContext(base_res=10))
    assert len(batch.frame) == case["loaded"]
    assert dict(batch.rejected) == case["rejected"]
    assert len(batch.frame) + sum(batch.rejected.values()) == len(records)
    assert sorted(d.reason for d in batch.dead_letters) == sorted(Counter(case["rejected"]).elements())
    if name == "epoch_ms_and_s":  # each value read in its own unit, compared with plain pandas
        want = pd.to_datetime([m["ts"] for m in case["messages"][:10]], unit="ms", utc=True)
        times = batch.frame.set_index("id")["time"]
        assert list(times[[f"m{i}" for i in range(10)]]) == list(want)
        assert times["s"] == pd.Timestamp(1709294400, unit="s", tz="UTC")


def test_bad_messages_never_stall_the_source(make_adapter: Any,  # noqa: F811
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Every case on one topic, each followed by a good message: all good ones arrive,
    and no traceback is logged (a bad value is a rejection, not an error)."""
    topic = f"citybrain/test/{uuid.uuid4().hex}"
    adapter = make_adapter(device_table([f"{topic}/#"]))
    assert adapter.wait_ready(10)
    publisher = Publisher("127.0.0.1", 1883)
    frames: list[pd.DataFrame] = []
    rejected: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    state: dict[str, Any] = {"cursor": None, "started": False}
    expected_rows, expected_rejected, sent = 0, Counter[str](), 0
    try:
        for name, case in CASES.items():
            if "messages" in case:
                for message in case["messages"]:
                    publisher.send(topic, json.dumps(message).encode())
                    sent += 1
            else:
                publisher.send(topic, payload(case))
                sent += 1
            publisher.send(topic, device(f"good-after-{name}"))
            sent += 1
            expected_rows += case["loaded"] + 1
            expected_rejected.update(case["rejected"])

        def done() -> bool:  # read as the app does: a snapshot, then updates from the cursor
            batch = adapter.updates(state["cursor"]) if state["started"] else adapter.snapshot()
            state["started"], state["cursor"] = True, batch.cursor
            frames.append(batch.frame)
            rejected.update(batch.rejected)
            dead.update(d.reason for d in batch.dead_letters)
            return (sum(len(f) for f in frames) >= expected_rows
                    and sum(rejected.values()) >= sum(expected_rejected.values()))

        wait_until(done, 20, f"{expected_rows} rows and {expected_rejected}")
    finally:
        publisher.close()
    frame = pd.concat(frames, ignore_index=True)
    assert {f"good-after-{n}" for n in CASES} <= set(frame["id"])
    assert len(frame) == expected_rows
    assert rejected == expected_rejected
    assert dead == expected_rejected
    assert len(frame) + sum(rejected.values()) == sent
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelname == "ERROR"] == []
