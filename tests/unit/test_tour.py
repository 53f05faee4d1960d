from __future__ import annotations

from pathlib import Path

import pytest

from app import parse_config
from callbacks.tour import query_flag
from config.city import ConfigError

CITY = {"name": "T", "center": {"lat": 1, "lon": 2}}


def test_demo_tour_is_configured(live_config) -> None:
    assert len(live_config.tour) >= 5
    assert {s.layer for s in live_config.tour} == {"people", "enterprises", "land", "things",
                                                  "government"}
    assert all(s.caption_zh and s.caption_en and s.seconds > 0 for s in live_config.tour)


@pytest.mark.parametrize(("step", "message"), [
    ({"layer": "weather"}, "unknown layer 'weather'"),
    ({"layer": "people", "metric": "nope"}, "unknown metric 'nope'"),
    ({"layer": "people", "colour": "red"}, "unknown key(s) 'colour'"),
    ({"layer": "people", "overlays": ["sky"]}, "unknown layer 'sky'"),
])
def test_bad_tour_steps_are_refused(tmp_path: Path, step: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"city": CITY, "tour": [step]}, tmp_path)
    assert message in str(info.value)


@pytest.mark.parametrize(("search", "expected"), [
    ("?tour=1", True), ("?tour=true&wall=1", True), ("?tour=0", False), ("", False),
    (None, False), ("?wall=1", False),
])
def test_query_flag(search: str | None, expected: bool) -> None:
    assert query_flag(search, "tour") is expected
