"""One city clock: overdue flags and escalation judged at the same city time.

The clock is driven by a wall-time function the test advances, so an accelerated
city's hours pass in no real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import h3
import pandas as pd
import pytest

from config.clock import CityClock
from ops.events import EventPipeline, parse_events_settings


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
