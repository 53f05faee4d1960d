"""Business-time SLAs against pandas' own business offsets, and working time counted by minute.

Expected due times come from ``pandas.offsets.CustomBusinessHour`` /
``CustomBusinessDay`` applied to local wall-clock times; expected elapsed working time
from counting a minute grid with plain pandas. Requests are synthetic: filed around
the clock, on weekends, on holidays and across a daylight-saving change.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import h3
import holidays
import numpy as np
import pandas as pd
import pytest

from config.city import ConfigError
from ops.events import EventPipeline, parse_events_settings
from ops.events.calendar import Sla, WorkCalendar, parse_calendar

MAX_LEVEL = 3


def _requests(zone: str, first: str, days: int, n: int, seed: int) -> pd.DataFrame:
    """``n`` requests at random whole seconds over ``days`` local days, a third closed later."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(first, tz=zone)
    opened = start + pd.to_timedelta(rng.integers(0, days * 86400, n), unit="s")
    # Some exactly at opening and closing times and at midnight: the edges.
    edges = [pd.Timestamp(f"{first} {t}", tz=zone) + pd.Timedelta(days=d)
             for d, t in [(3, "09:00"), (3, "17:00"), (4, "00:00"), (5, "16:59:59"), (6, "12:00")]]
    opened = pd.DatetimeIndex(list(opened) + edges).tz_convert("UTC")
    count = len(opened)
    closed = pd.Series(opened + pd.to_timedelta(rng.integers(600, 6 * 86400, count), unit="s"))
    closed[rng.random(count) < 0.66] = pd.NaT
    lat = 48.1 + rng.random(count) * 0.05
    lon = 11.5 + rng.random(count) * 0.05
    cells = [h3.latlng_to_cell(a, b, 10) for a, b in zip(lat, lon, strict=True)]
    return pd.DataFrame({
        "id": [f"q{i}" for i in range(count)], "time": opened, "lat": lat, "lon": lon,
        "cell": [h3.str_to_int(c) for c in cells], "source": "hotline", "name": None,
        "category": np.where(np.arange(count) % 2 == 0, "Pothole", "Streetlight"),
        "agency": None, "status": np.where(closed.isna(), "Open", "Closed"),
        "closed_time": pd.to_datetime(closed, utc=True), "descriptor": "", "channel": None,
        "is_open": closed.isna().to_numpy(),
    })


def _local(moment: pd.Timestamp, zone: str) -> pd.Timestamp:
    return moment.tz_convert(zone).tz_localize(None)


def _utc(local: pd.Timestamp, zone: str) -> pd.Timestamp:
    return local.tz_localize(zone).tz_convert("UTC")


CITIES = [
    # zone, first local day, days, holidays the city lists, country, subdivision
    ("Europe/Berlin", "2026-12-01", 35, ["2026-12-24", "2026-12-31"], "DE", "BY"),
    ("America/New_York", "2026-10-20", 45, ["2026-11-27"], "US", "NY"),  # DST ends Nov 1
]


@pytest.mark.parametrize(("zone", "first", "days", "listed", "country", "subdivision"), CITIES)
def test_due_overdue_and_escalation_equal_pandas_business_offsets(
        tmp_path: Path, zone: str, first: str, days: int, listed: list[str], country: str,
        subdivision: str) -> None:
    settings = parse_events_settings({
        "path": "events.sqlite3", "merge_window": 0, "use_source_agency": False,
        "sla": {"Pothole": "12 business hours", "Streetlight": "2 business days"},
        "calendar": {"hours": "09:00-17:00", "holidays": listed, "country": country,
                     "subdivision": subdivision}}, tmp_path, zone)
    frame = _requests(zone, first, days, 160, seed=len(zone))
    # Independently: the holidays as a plain list, pandas' offsets on local wall-clock times.
    public = holidays.country_holidays(country, subdiv=subdivision, years=[2026, 2027])
    days_off = sorted({date.fromisoformat(d) for d in listed} | set(public))
    day = pd.offsets.CustomBusinessDay(holidays=days_off)

    def due(opened: pd.Timestamp, category: str, periods: int) -> pd.Timestamp:
        local = _local(opened, zone)
        if category == "Pothole":
            return _utc(local + pd.offsets.CustomBusinessHour(
                n=12 * periods, start="09:00", end="17:00", holidays=days_off), zone)
        if not day.is_on_offset(local):  # filed on a day off: counting starts at the next day's midnight
            local = day.rollforward(local.normalize())
        return _utc(local + 2 * periods * day, zone)

    expected_due = {r.id: due(r.time, r.category, 1) for r in frame.itertuples()}
    events = EventPipeline(settings)
    try:
        events.ingest(frame)
        stored = {e.source_id: e for e in events.events(limit=10_000)}
        assert {i: pd.Timestamp(e.due_at) for i, e in stored.items()} == expected_due
        # The city's own on-time flag, recomputed: closed by the due time.
        closed = frame.dropna(subset=["closed_time"])
        assert {r.id: bool(r.closed_time <= expected_due[r.id]) for r in closed.itertuples()} == \
            {i: bool(e.closed_at <= e.due_at) for i, e in stored.items() if e.closed_at}
        # Overdue and escalation at moments across working hours, evenings, weekends.
        start = pd.Timestamp(first, tz=zone)
        moments = sorted({start + pd.Timedelta(hours=h) for h in range(30, days * 24 + 240, 37)}
                         | {pd.Timestamp(f"{first} 09:00", tz=zone) + pd.Timedelta(days=d)
                            for d in range(3, days, 4)})
        open_rows = frame[frame["closed_time"].isna()]
        due_by_level = {r.id: [due(r.time, r.category, k) for k in range(1, MAX_LEVEL + 1)]
                        for r in open_rows.itertuples()}
        seen: set[int] = set()
        for now in moments:
            now_utc = now.tz_convert("UTC")
            events.supervise(now_utc.to_pydatetime())
            shown = {e.source_id: e for e in events.events(limit=10_000)}
            overdue = {r.id for r in open_rows.itertuples() if now_utc > expected_due[r.id]}
            assert {i for i, e in shown.items() if e.is_overdue(now_utc.to_pydatetime())} == overdue
            levels = {i: sum(now_utc > d for d in dues) for i, dues in due_by_level.items()}
            assert {i: shown[i].escalation for i in levels} == levels, f"at {now}"
            seen |= set(levels.values())
        assert seen == {0, 1, 2, 3}
    finally:
        events.close()


def _minutes_worked(start: pd.Timestamp, end: pd.Timestamp, zone: str,
                    hours: dict[int, list[tuple[str, str]]], off: set[date], on: set[date],
                    makeup: list[tuple[str, str]]) -> float:
    """Working seconds between two whole-minute moments, by counting minutes (plain pandas)."""
    grid = pd.date_range(start, end, freq="min", inclusive="left").tz_convert(zone)
    local = grid.tz_localize(None)
    minute = np.asarray(local.hour * 60 + local.minute)
    days = np.asarray(local.date)
    worked = np.zeros(len(grid), dtype=bool)
    for today in set(days):
        spans = makeup if today in on else ([] if today in off else hours.get(today.weekday(), []))
        for a, b in spans:
            lo, hi = (int(t[:2]) * 60 + int(t[3:]) for t in (a, b))
            worked |= (days == today) & (minute >= lo) & (minute < hi)
    return float(worked.sum() * 60)


def test_hours_per_weekday_and_makeup_days_equal_a_minute_count() -> None:
    # Ceshi-like: split days, a Saturday morning, China's public holidays and its
    # weekend make-up working days (from the holidays package), one listed day off.
    table = {"hours": {"mon": "08:30-12:00, 13:30-17:30", "tue": "08:30-12:00, 13:30-17:30",
                       "wed": "08:30-12:00, 13:30-17:30", "thu": "08:30-12:00, 13:30-17:30",
                       "fri": "08:30-12:00, 13:30-16:00", "sat": "09:00-11:30"},
             "holidays": ["2026-09-30"], "country": "CN"}
    calendar = parse_calendar(table, "Asia/Shanghai")
    cn = holidays.country_holidays("CN", years=2026)
    split = [("08:30", "12:00"), ("13:30", "17:30")]
    hours = {0: split, 1: split, 2: split, 3: split, 4: [("08:30", "12:00"), ("13:30", "16:00")],
             5: [("09:00", "11:30")]}
    off = set(cn) | {date(2026, 9, 30)}
    on = set(cn.weekend_workdays)
    assert date(2026, 9, 20) in on and date(2026, 10, 1) in off  # a Sunday worked; National Day
    rng = np.random.default_rng(11)
    base = pd.Timestamp("2026-09-15", tz="Asia/Shanghai")
    for _ in range(40):
        a = base + pd.Timedelta(minutes=int(rng.integers(0, 30 * 1440)))
        b = a + pd.Timedelta(minutes=int(rng.integers(1, 9 * 1440)))
        expected = _minutes_worked(a, b, "Asia/Shanghai", hours, off, on, split)
        assert calendar.elapsed(a.to_pydatetime(), b.to_pydatetime()) == expected, (a, b)
        sla = Sla(expected, "business_hours", calendar) if expected else None
        if sla is not None:  # due_at inverts elapsed: the first moment past it is late
            due = pd.Timestamp(sla.due_at(a.to_pydatetime()))
            assert calendar.elapsed(a.to_pydatetime(), due.to_pydatetime()) == expected
            later = (due + timedelta(seconds=1)).to_pydatetime()
            assert calendar.elapsed(a.to_pydatetime(), later) > expected
            # Used up at b, or at the first working moment after it.
            assert due <= b or calendar.elapsed(b.to_pydatetime(), due.to_pydatetime()) == 0


def test_whole_business_days_across_daylight_saving_are_local_days() -> None:
    calendar = WorkCalendar.build("America/New_York")
    sla = Sla(86400.0, "business_days", calendar)
    friday = pd.Timestamp("2026-10-30 10:00", tz="America/New_York")  # DST ends Sunday
    assert pd.Timestamp(sla.due_at(friday.to_pydatetime())).tz_convert("America/New_York") == \
        pd.Timestamp("2026-11-02 10:00", tz="America/New_York")
    saturday = pd.Timestamp("2026-10-31 10:00", tz="America/New_York")
    assert pd.Timestamp(sla.due_at(saturday.to_pydatetime())).tz_convert("America/New_York") == \
        pd.Timestamp("2026-11-03 00:00", tz="America/New_York")


@pytest.mark.parametrize(("events", "message"), [
    ({"sla": {"Rodent": "3 business days"}}, "needs the city's working calendar: add [events.calendar]"),
    ({"default_sla": "2 fortnights"}, "'16 business hours' or '3 business days'"),
    ({"sla": {"Rodent": "0 business days"}, "calendar": {}}, "must be positive"),
    ({"calendar": {"hours": "9-17"}}, "[events.calendar].hours: '9-17' is not a span"),
    ({"calendar": {"hours": "17:00-09:00"}}, "must run forwards within one day"),
    ({"calendar": {"hours": "08:00-12:00, 11:00-17:00"}}, "overlap"),
    ({"calendar": {"workdays": ["mon", "funday"]}}, "unknown weekday(s) ['funday']"),
    ({"calendar": {"hours": {"mon": "09:00-17:00"}, "workdays": ["mon"]}}, "workdays: not used"),
    ({"calendar": {"holidays": ["2026-02-30"]}}, "'2026-02-30' is not a date"),
    ({"calendar": {"country": "XX"}}, "[events.calendar].country: Country XX not available"),
    ({"calendar": {"subdivision": "NY"}}, "subdivision: needs country too"),
    ({"calendar": {"holyday": []}}, "unknown key(s) 'holyday'"),
])
def test_bad_calendars_and_slas_are_one_line_naming_the_key(tmp_path: Path, events: dict,
                                                             message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_events_settings(events, tmp_path, "Europe/Berlin")
    assert message in str(caught.value) and "\n" not in str(caught.value)
