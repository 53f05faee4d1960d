"""SLA time: calendar time, or business time on a city's working calendar.

An SLA target is a duration on one of three *bases* (:data:`BASES`):

``calendar``
    plain elapsed time (``"72h"``): every second counts.
``business_hours``
    working time (``"16 business hours"``): only seconds inside the working hours
    of working days count, so a request filed on Friday at 16:00 with 2 business
    hours (working hours 09:00–17:00) is due on Monday at 10:00.
``business_days``
    whole working days (``"3 business days"``): every second of a working day counts,
    none of a weekend or holiday. Filed on a working day at 10:00, it is due at 10:00
    three working days later; filed on a weekend or holiday, the count starts at
    midnight of the next working day.

Two functions carry every SLA decision: :meth:`Sla.due_at` (when is it due) and
:meth:`Sla.elapsed` (how much SLA time lies between two moments). Due times, overdue
flags and escalation levels all come from them, on the city clock's moments, so they
cannot disagree: ``now > sla.due_at(t)`` exactly when ``sla.elapsed(t, now) > sla.seconds``.
When the count is used up exactly at a closing time, the due time is the next opening
(as pandas' ``CustomBusinessHour`` does): nothing is late before work resumes.

Working time is reckoned in the city's local wall-clock time (``[city] timezone``):
09:00 is 09:00 on both sides of a daylight-saving change, and a business day is one
local day long. The calendar is written here rather than taken from pandas'
``CustomBusinessHour`` / ``CustomBusinessDay`` because those have one set of hours for
every weekday, no "time elapsed" function, and work per element; the tests check this
calendar against those pandas offsets. Public holidays by country come from the
``holidays`` package (including China's weekend make-up working days).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.kit import ConfigError, check_keys, parse_duration, text

Basis = Literal["calendar", "business_hours", "business_days"]
BASES: tuple[Basis, ...] = ("calendar", "business_hours", "business_days")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDAR_KEYS = frozenset({"hours", "workdays", "holidays", "working_days", "country",
                           "subdivision"})
DAY = 86400
#: How far ahead a due time is looked for before the calendar is called empty.
_HORIZON_DAYS = 3 * 366
_BUSINESS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:(bh|business[ _]hours?)|(bd|business[ _]days?))\s*$",
                       re.IGNORECASE)
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Intervals = tuple[tuple[int, int], ...]  # (start, end) seconds after local midnight


@dataclass(frozen=True)
class WorkCalendar:
    """A city's working time: hours per weekday, holidays, make-up working days.

    >>> week = WorkCalendar.build("America/New_York", hours="09:00-17:00",
    ...                           holidays=[date(2026, 12, 25)])
    >>> friday_4pm = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)      # 16:00 in New York
    >>> week.due_at(friday_4pm, 2 * 3600).astimezone(week.zone).isoformat()
    '2026-12-07T10:00:00-05:00'
    >>> week.elapsed(friday_4pm, datetime(2026, 12, 7, 15, 0, tzinfo=UTC)) / 3600  # Mon 10:00
    2.0
    """

    timezone: str
    #: Working intervals per weekday (0 = Monday), seconds after local midnight.
    hours: tuple[Intervals, ...]
    holidays: frozenset[date] = frozenset()
    #: Make-up days: worked with ``makeup_hours`` (a full working day), whatever their weekday.
    working_days: frozenset[date] = frozenset()
    makeup_hours: Intervals = ((9 * 3600, 17 * 3600),)
    #: Public holidays of a country (a ``holidays`` package calendar), or None.
    public: Any = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise ValueError("hours: one entry per weekday, Monday first")
        if not any(self.hours) and not self.working_days:
            raise ValueError("a working calendar needs working hours on some weekday")

    @classmethod
    def build(cls, timezone: str, **table: Any) -> WorkCalendar:
        """A calendar from the config's words: ``build("Asia/Shanghai", country="CN")``."""
        return parse_calendar(table, timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # ----------------------------------------------------------------- days
    def _kind(self, day: date) -> Literal["makeup", "off", "weekday"]:
        if day in self.working_days:
            return "makeup"
        if day in self.holidays:
            return "off"
        if self.public is not None:
            if day in self.public:  # also fills the package's make-up days for that year
                return "off"
            if day in getattr(self.public, "weekend_workdays", ()):
                return "makeup"
        return "weekday"

    def is_working_day(self, day: date) -> bool:
        """Worked: a make-up day, or a weekday with hours that is no holiday."""
        return bool(self.intervals(day))

    def intervals(self, day: date) -> Intervals:
        """The day's working intervals (seconds after local midnight); empty when off.

        A make-up day works a full working day's hours (``makeup_hours``), whatever its
        weekday's own hours are.
        """
        kind = self._kind(day)
        if kind == "off":
            return ()
        return self.makeup_hours if kind == "makeup" else self.hours[day.weekday()]

    def whole_days(self) -> WorkCalendar:
        """The same working days, each worked from midnight to midnight (business days)."""
        full: Intervals = ((0, DAY),)
        return WorkCalendar(self.timezone, tuple(full if h else () for h in self.hours),
                            self.holidays, self.working_days, full, self.public)

    # --------------------------------------------------------------- the two
    def due_at(self, start: datetime, seconds: float) -> datetime:
        """The moment ``seconds`` of working time after ``start`` are used up (UTC).

        Used up exactly at a closing time, it is the next opening instead.
        """
        local = self._local(start)
        remaining = float(seconds)
        day = local.date()
        for _ in range(_HORIZON_DAYS):
            midnight = datetime.combine(day, time())
            for lo, hi in self.intervals(day):
                begin = max(midnight + timedelta(seconds=lo), local)
                available = (midnight + timedelta(seconds=hi) - begin).total_seconds()
                if available <= 0:
                    continue
                if remaining < available:
                    return self._utc(begin + timedelta(seconds=remaining))
                remaining -= available
            day += timedelta(days=1)
        raise ValueError(f"no working time within {_HORIZON_DAYS} days of {start.isoformat()}")

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Seconds of working time between ``start`` and ``end`` (0 when end ≤ start)."""
        a, b = self._local(start), self._local(end)
        if b <= a:
            return 0.0
        total = 0.0
        day = a.date()
        while day <= b.date():
            midnight = datetime.combine(day, time())
            for lo, hi in self.intervals(day):
                overlap = (min(midnight + timedelta(seconds=hi), b)
                           - max(midnight + timedelta(seconds=lo), a)).total_seconds()
                total += max(overlap, 0.0)
            day += timedelta(days=1)
        return total

    # ------------------------------------------------------------ wall time
    def _local(self, moment: datetime) -> datetime:
        """Naive local wall-clock time (aware input; naive input is taken as UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.zone).astimezone(UTC)


@dataclass(frozen=True)
class Sla:
    """An SLA target: ``seconds`` on a ``basis``, with the working calendar it needs.

    >>> Sla(8 * 3600).due_at(datetime(2026, 12, 5, 10, tzinfo=UTC)).isoformat()
    '2026-12-05T18:00:00+00:00'
    """

    seconds: float
    basis: Basis = "calendar"
    calendar: WorkCalendar | None = None

    def __post_init__(self) -> None:
        if self.basis != "calendar" and self.calendar is None:
            raise ValueError(f"a {self.basis} SLA needs a working calendar")

    @property
    def _working(self) -> WorkCalendar:
        assert self.calendar is not None
        return self.calendar.whole_days() if self.basis == "business_days" else self.calendar

    def due_at(self, start: datetime) -> datetime:
        """When a request received at ``start`` is due."""
        if self.basis == "calendar":
            return start + timedelta(seconds=self.seconds)
        return self._working.due_at(start, self.seconds).astimezone(start.tzinfo or UTC)

    def elapsed(self, start: datetime, end: datetime) -> float:
        """SLA seconds between ``start`` and ``end`` on this SLA's basis."""
        if self.basis == "calendar":
            return max((end - start).total_seconds(), 0.0)
        return self._working.elapsed(start, end)

    def describe(self) -> str:
        """``"8 h"``, ``"16 business hours"``, ``"3 business days"``."""
        if self.basis == "business_days":
            return f"{self.seconds / DAY:g} business days"
        if self.basis == "business_hours":
            return f"{self.seconds / 3600:g} business hours"
        return f"{self.seconds / 3600:g} h"


# ---------------------------------------------------------------------- config
def parse_sla_duration(where: str, value: Any) -> tuple[float, Basis]:
    """``"72h"`` (calendar), ``"16 business hours"`` / ``"16bh"``, ``"3 business days"`` / ``"3bd"``.

    >>> parse_sla_duration("sla", "3 business days"), parse_sla_duration("sla", "2h")
    ((259200.0, 'business_days'), (7200.0, 'calendar'))
    """
    match = _BUSINESS.match(value) if isinstance(value, str) else None
    if match:
        amount = float(match.group(1))
        basis: Basis = "business_hours" if match.group(2) else "business_days"
        seconds = amount * (3600 if basis == "business_hours" else DAY)
    else:
        try:
            seconds, basis = parse_duration(where, value), "calendar"
        except ConfigError:
            raise ConfigError(f"{where}: expected a duration like '72h' or '7d' (calendar time), "
                              f"'16 business hours' or '3 business days', got {value!r}") from None
    if seconds <= 0:
        raise ConfigError(f"{where}: must be positive, got {value!r}")
    return seconds, basis


def _spans(where: str, value: Any) -> Intervals:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected working hours like \"09:00-17:00\" or "
                          f"\"08:30-12:00, 13:00-17:30\", got {value!r}")
    spans = []
    for part in value.split(","):
        match = _SPAN.match(part)
        if not match:
            raise ConfigError(f"{where}: {part.strip()!r} is not a span like \"09:00-17:00\"")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        lo, hi = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if m1 > 59 or m2 > 59 or hi > DAY or lo >= hi:
            raise ConfigError(f"{where}: {part.strip()!r} must run forwards within one day "
                              "(00:00-24:00)")
        spans.append((lo, hi))
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
        raise ConfigError(f"{where}: the spans {value!r} overlap")
    return tuple(spans)


def _day_names(where: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of weekdays like [\"mon\", \"tue\"]")
    unknown = [v for v in value if v.lower()[:3] not in WEEKDAYS]
    if unknown:
        raise ConfigError(f"{where}: unknown weekday(s) {unknown}; weekdays are {', '.join(WEEKDAYS)}")
    return [WEEKDAYS.index(v.lower()[:3]) for v in value]


def _dates(where: str, value: Any) -> frozenset[date]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of dates like [\"2026-12-25\"]")
    days = set()
    for item in value:
        if isinstance(item, datetime):
            raise ConfigError(f"{where}: {item!r} is a date and time; give the date alone")
        if isinstance(item, date):
            days.add(item)
            continue
        try:
            days.add(date.fromisoformat(str(item)))
        except ValueError:
            raise ConfigError(f"{where}: {item!r} is not a date like \"2026-12-25\"") from None
    return frozenset(days)


def _public_holidays(where: str, country: Any, subdivision: Any) -> Any:
    import holidays  # only cities that name a country need it

    country = text(f"{where}.country", country)
    try:
        return holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise ConfigError(f"{where}.country: {exc} (country is an ISO code like \"US\" or \"CN\", "
                          "subdivision one of that country's, e.g. \"NY\")") from None


def parse_calendar(table: Mapping[str, Any], timezone: str,
                   where: str = "[events.calendar]") -> WorkCalendar:
    """Validate a working calendar table; ``timezone`` is the city's.

    ``hours`` is one span list for every day in ``workdays`` (Monday to Friday unless
    given), or a table of weekday → spans (the days it lists are the working days);
    ``holidays`` and ``working_days`` are dates off and make-up days worked; ``country``
    (and ``subdivision``) add that country's public holidays from the ``holidays`` package.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    check_keys(where, table, CALENDAR_KEYS)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: the city's timezone {timezone!r} is not an IANA zone; "
                          "fix [city].timezone (e.g. \"Asia/Shanghai\")") from None
    raw_hours = table.get("hours", "09:00-17:00")
    hours: list[Intervals] = [()] * 7
    if isinstance(raw_hours, Mapping):
        if "workdays" in table:
            raise ConfigError(f"{where}.workdays: not used when hours is a table by weekday "
                              "(the weekdays it lists are the working days); remove one")
        for name, spans in raw_hours.items():
            (index,) = _day_names(f"{where}.hours", [name])
            hours[index] = _spans(f"{where}.hours.{name}", spans)
    else:
        spans = _spans(f"{where}.hours", raw_hours)
        for index in _day_names(f"{where}.workdays", table.get("workdays", list(WEEKDAYS[:5]))):
            hours[index] = spans
    if not any(hours):
        raise ConfigError(f"{where}: no working hours on any weekday")
    worked = [h for h in hours if h]
    makeup = max(worked, key=worked.count)  # the usual working day's hours
    public = None
    if "country" in table:
        public = _public_holidays(where, table["country"], table.get("subdivision"))
    elif "subdivision" in table:
        raise ConfigError(f"{where}.subdivision: needs country too (e.g. country = \"US\")")
    return WorkCalendar(timezone=timezone, hours=tuple(hours),
                        holidays=_dates(f"{where}.holidays", table.get("holidays", [])),
                        working_days=_dates(f"{where}.working_days", table.get("working_days", [])),
                        makeup_hours=makeup, public=public)


__all__ = ["BASES", "CALENDAR_KEYS", "Basis", "Sla", "WorkCalendar", "parse_calendar",
           "parse_sla_duration"]
