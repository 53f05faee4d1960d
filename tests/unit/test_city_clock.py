"""One city clock: overdue flags and escalation judged at the same city time, from a chosen start.

The clock is driven by a wall-time function the test advances, so an accelerated
city's hours pass in no real time.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest

from app import parse_config
from config.city import CityConfig, ConfigError
from config.clock import CityClock
from data import AdapterContext, get_adapter_class
from ops.events import EventPipeline, parse_events_settings
from ops.events.settings import EVENTS_SECTION
from store.city import CityData
from tests.synthetic_city import CESHI, SyntheticCity, write_city


class Wall:
    """Wall seconds the test moves by hand."""

    def __init__(self) -> None:
        self.seconds = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.seconds


def _requests(at: pd.Timestamp, categories: list[str]) -> pd.DataFrame:
    cells = [h3.latlng_to_cell(31.2 + 0.01 * i, 121.4 + 0.013 * i, 10) for i in range(len(categories))]
    lat_lon = [h3.cell_to_latlng(c) for c in cells]
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(len(categories))],
        "time": pd.to_datetime([at] * len(categories), utc=True),
        "lat": [p[0] for p in lat_lon], "lon": [p[1] for p in lat_lon],
        "cell": [h3.str_to_int(c) for c in cells], "source": "hotline", "name": None,
        "category": categories, "agency": None, "status": "Open",
        "closed_time": pd.to_datetime([None] * len(categories), utc=True),
        "descriptor": "", "channel": None, "is_open": True,
    })


@pytest.fixture()
def accelerated(tmp_path: Path) -> Iterator[tuple[EventPipeline, CityClock, Wall]]:
    wall = Wall()
    clock = CityClock(speed=3600.0, wall=wall)  # one wall second is one city hour
    events = EventPipeline(parse_events_settings(
        {"path": "events.sqlite3", "sla": {"Noise": "2h", "Pothole": "6h"}, "default_sla": "72h"},
        tmp_path))
    events.clock = lambda: clock.now().to_pydatetime(warn=False)
    yield events, clock, wall
    events.close()


def test_accelerated_clock_escalates_what_it_shows_overdue(accelerated) -> None:
    events, clock, wall = accelerated
    categories = ["Noise"] * 5 + ["Pothole"] * 3 + ["Other"] * 2
    events.ingest(_requests(clock.now(), categories))
    expected_levels = {  # city hours after intake → escalation level per category
        1: {"Noise": 0, "Pothole": 0, "Other": 0},
        3: {"Noise": 1, "Pothole": 0, "Other": 0},
        7: {"Noise": 3, "Pothole": 1, "Other": 0},
    }
    for hours, levels in expected_levels.items():
        wall.seconds += hours - (clock.elapsed() / 3600.0)  # a few wall seconds at most
        events.supervise()                                   # no "now": the city clock's
        stats = events.stats()
        shown = {e.id: e.as_dict(clock.now().to_pydatetime(warn=False)) for e in events.events()}
        overdue = sorted(i for i, e in shown.items() if e["overdue"])
        escalated = sorted(i for i, e in shown.items() if e["escalation"] > 0)
        assert overdue == escalated, f"after {hours} city hours"
        assert stats["overdue"] == len(overdue)
        assert {shown[i]["category"]: shown[i]["escalation"] for i in shown} == levels
    assert datetime.now(UTC) < clock.now().to_pydatetime(warn=False)  # the city ran ahead of the wall


# ------------------------------------------------------------- [live] start
def _replayed_city(tmp_path: Path, start: str, sla: dict[str, str]) -> tuple[SyntheticCity, CityConfig]:
    """Ceshi Town (Asia/Shanghai, GCJ-02, Chinese columns) with its requests replayed."""
    city = write_city(tmp_path / "city", CESHI, cache_dir=tmp_path / "cache")
    raw = tomllib.loads(city.config_path.read_text(encoding="utf-8"))
    requests = next(s for s in raw["sources"] if s["name"] == "requests")
    raw["sources"] = [{**requests, "adapter": "replay"}]
    del raw["boundaries"]
    raw["live"] = {"start": start, "window": "40d", "history": "40d"}
    raw["events"] = {"path": "events.sqlite3", "merge_window": 0, "default_sla": "3d", "sla": sla,
                     "use_source_agency": False}
    return city, parse_config(raw, city.directory)


def _recorded(city: SyntheticCity) -> pd.DataFrame:
    """The requests as written, times read with pandas in the city's own zone (UTC)."""
    fmt, zone = city.spec.requests, city.spec.timezone
    truth = city.sources["requests"].truth

    def read(text: pd.Series) -> pd.Series:
        return pd.to_datetime(text.replace("", None), format=fmt.time_format) \
            .dt.tz_localize(zone).dt.tz_convert("UTC")

    return truth.assign(opened=read(truth["opened"]), closed=read(truth["closed"]))


def test_a_start_in_the_past_opens_on_the_city_as_it_was(tmp_path: Path) -> None:
    sla = {"噪音扰民": "4h", "道路破损": "5d", "垃圾清运": "1d"}  # 路灯故障: the 3-day default
    city, config = _replayed_city(tmp_path, "2024-05-16T09:00:00", sla)
    start = pd.Timestamp("2024-05-16 09:00", tz="Asia/Shanghai")
    assert config.live.start == start
    data = CityData.load(config)
    events = EventPipeline(config.section(EVENTS_SECTION))
    events.clock = lambda: data.clock.now().to_pydatetime(warn=False)
    try:
        assert data.clock.anchored and data.clock.now() - start < pd.Timedelta(minutes=1)
        events.ingest_city(data)
        now = data.clock.now()
        recorded = _recorded(city)
        arrived = recorded[recorded["opened"] <= now]
        assert 0 < len(arrived) < len(recorded)  # a recording on both sides of the start
        # Nothing moved: every replayed row carries its recorded time.
        replayed = data.frame("government", "requests").set_index("id")["time"]
        assert replayed.to_dict() == arrived.set_index("id")["opened"].to_dict()
        open_then = arrived[arrived["closed"].isna() | (arrived["closed"] > now)]
        due = open_then["opened"] + open_then["category"].map(
            lambda c: pd.Timedelta(sla.get(c, "3D").replace("d", "D")))
        expected_overdue = sorted(open_then.loc[due < now, "id"])
        stats = events.stats(now.to_pydatetime(warn=False))
        assert stats["total"] == len(arrived) and stats["open"] == len(open_then)
        overdue = sorted(e.source_id for e in events.events() if e.is_overdue(now))
        assert overdue == expected_overdue
        assert 0 < len(overdue) < len(open_then)  # not all overdue: the city as of its start
        escalated = events.supervise()
        assert sorted(e.source_id for e in escalated) == expected_overdue
    finally:
        events.close()


def test_an_anchored_replay_plays_recorded_times_as_the_clock_reaches_them(tmp_path: Path) -> None:
    city, config = _replayed_city(tmp_path, "2024-05-10T00:00:00+08:00", {})
    wall = Wall()
    clock = CityClock(speed=3600.0, origin=config.live.start, anchored=True, wall=wall)
    source = config.sources[0]
    adapter = get_adapter_class(source.adapter)(source, AdapterContext(timezone="Asia/Shanghai",
                                                                       clock=clock))
    recorded = _recorded(city)
    first = adapter.snapshot()
    assert sorted(first.frame["id"]) == sorted(recorded.loc[recorded["opened"] <= clock.now(), "id"])
    before = clock.now()
    wall.seconds += 30.0  # thirty city hours
    later = adapter.updates(first.cursor)
    opened_meanwhile = recorded[(recorded["opened"] > before) & (recorded["opened"] <= clock.now())]
    closed_meanwhile = recorded[(recorded["closed"] > before) & (recorded["closed"] <= clock.now())]
    assert set(later.frame["id"]) == set(opened_meanwhile["id"]) | set(closed_meanwhile["id"])
    times = later.frame.set_index("id")["time"]
    assert (times.loc[list(opened_meanwhile["id"])]
            == opened_meanwhile.set_index("id")["opened"]).all()


@pytest.mark.parametrize(("live", "message"), [
    ({"start": "yesterday"}, r"\[live\].start: 'yesterday' is not a date and time"),
    ({"start": 20261130}, r"\[live\].start: expected a date and time"),
    ({"start": "2024-03-10T02:30:00"}, r"skipped or repeated in 'America/New_York'"),
])
def test_a_bad_start_is_one_line_naming_the_key(tmp_path: Path, live: dict[str, Any],
                                                message: str) -> None:
    city = {"name": "X", "center": {"lat": 40.7, "lon": -74.0}, "timezone": "America/New_York"}
    with pytest.raises(ConfigError, match=message):
        parse_config({"city": city, "live": live}, tmp_path)


def test_a_start_refuses_replay_options_that_move_rows(tmp_path: Path) -> None:
    _, config = _replayed_city(tmp_path, "2024-05-16T09:00:00", {})
    source = config.sources[0]
    for options in ({"warmup": "6h"}, {"compress_gaps": "1h"}, {"loop": True}):
        moved = replace(source, options={**source.options, **options})
        with pytest.raises(ConfigError, match=f"'requests'.{next(iter(options))}: not used with "
                                              r"\[live\] start"):
            CityData(replace(config, sources=(moved,))).adapter(moved)
