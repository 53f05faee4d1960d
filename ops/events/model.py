"""Events: one queue for every request from the public, as records and pure functions.

统一接报、统一分拨、统一督办 — unified intake, dispatch and supervision. Each report
(a row of any government-layer ``requests`` source: a 311/12345 hotline, an app, a
web form) becomes part of exactly one :class:`Event`:

intake
    :func:`reports_from_frame` turns normalised request rows into
    :class:`IncomingReport` records; :func:`plan_ingest` merges reports of the same
    category in the same or a neighbouring H3 cell (at ``merge_res``) within
    ``merge_window`` of an open event's first report, and opens a new event for
    the rest. A source row is keyed on (source name, source row id), so reading the
    same rows twice changes nothing.
dispatch
    :class:`Policy` routes a category to a department (exact category, then
    case-insensitive glob patterns in config order, then the default department);
    a report whose source already names an agency keeps that agency.
supervision
    every event has a ``due_at`` from its category's SLA; :func:`escalate` raises
    the escalation level of an open event past its due time, one level per further
    SLA period, and :func:`apply_transition` moves an event through
    ``received → dispatched → in_progress → resolved → closed``.
statistics
    :func:`summary` and the functions it calls are pure functions over events.

Every change bumps an event's ``version`` by one and appends one
:class:`AuditEntry` whose ``seq`` is that new version, so the store can refuse a
stale write (``version`` compare-and-set) and the audit trail has no gaps.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

from config.clock import iso
from geo.hexes import parents, resolution_of, to_hex

if TYPE_CHECKING:
    from ops.events.settings import EventsSettings

Status = Literal["received", "dispatched", "in_progress", "resolved", "closed"]
STATUSES: tuple[Status, ...] = ("received", "dispatched", "in_progress", "resolved", "closed")
#: Statuses in which the city still owes the public an answer; SLA clocks run in these.
OPEN_STATUSES: frozenset[str] = frozenset({"received", "dispatched", "in_progress"})
#: Allowed next statuses. Beyond the main line: re-dispatch to another department
#: (``dispatched → dispatched``), hand back for re-dispatch (``in_progress →
#: dispatched``) and reopen when a fix did not hold (``resolved → in_progress``).
TRANSITIONS: Mapping[str, tuple[Status, ...]] = {
    "received": ("dispatched",),
    "dispatched": ("in_progress", "dispatched"),
    "in_progress": ("resolved", "dispatched"),
    "resolved": ("closed", "in_progress"),
    "closed": (),
}
#: Roles allowed to change an event; ``system`` is intake, auto-dispatch and supervision.
CHANGE_ROLES: frozenset[str] = frozenset({"operator", "system"})
SYSTEM = "system"
AUTO_DISPATCH = "auto-dispatch"
UNCATEGORISED = "uncategorised"

Action = Literal["receive", "dispatch", "transition", "merge", "escalate", "import"]


# ------------------------------------------------------------------------ errors
class EventError(Exception):
    """Base of the errors the events pipeline raises on purpose."""


class EventNotFound(EventError, LookupError):
    def __init__(self, event_id: int) -> None:
        super().__init__(f"no event with id {event_id}")
        self.event_id = event_id


class TransitionError(EventError):
    """A change the lifecycle does not allow; the event is left as it was."""

    def __init__(self, event_id: int, current: str, requested: str,
                 allowed: Sequence[str], reason: str | None = None) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (the event is final)"
        message = reason or f"cannot move event {event_id} from {current!r} to {requested!r}"
        super().__init__(f"{message}; allowed next states: {allowed_text}")
        self.event_id = event_id
        self.current = current
        self.requested = requested
        self.allowed = tuple(allowed)


class ConflictError(EventError):
    """Someone else changed the event first; reload it and decide again."""

    def __init__(self, event_id: int, expected: int, actual: int | None) -> None:
        super().__init__(f"event {event_id} was changed concurrently: expected version "
                         f"{expected}, it is now at version {actual}")
        self.event_id = event_id
        self.expected = expected
        self.actual = actual


class PermissionDenied(EventError):
    def __init__(self, actor: str, role: str) -> None:
        super().__init__(f"{actor!r} (role {role!r}) may not change events; "
                         f"roles that may: {', '.join(sorted(CHANGE_ROLES - {SYSTEM}))}")
        self.actor = actor
        self.role = role


# ----------------------------------------------------------------------- records
@dataclass(frozen=True)
class Event:
    """One matter the city handles, made of one or more merged reports."""

    id: int
    category: str
    description: str
    channel: str
    lat: float
    lon: float
    #: H3 cell of the first report at the city's base resolution.
    cell: int
    #: That report's cell at ``merge_res``: neighbours of it merge.
    merge_cell: int
    received_at: datetime
    last_report_at: datetime
    report_count: int
    status: Status
    department: str
    due_at: datetime
    updated_at: datetime
    version: int
    source: str
    source_id: str
    dispatched_at: datetime | None = None
    dispatched_by: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    escalation: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_overdue(self, now: datetime) -> bool:
        return self.is_open and now > self.due_at

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """JSON-ready; text from the public stays a plain string (never markup)."""
        return {
            "id": self.id, "category": self.category, "description": self.description,
            "channel": self.channel, "lat": self.lat, "lon": self.lon,
            "cell": to_hex(self.cell), "status": self.status, "department": self.department,
            "report_count": self.report_count, "received_at": iso(self.received_at),
            "last_report_at": iso(self.last_report_at), "due_at": iso(self.due_at),
            "dispatched_at": iso(self.dispatched_at), "dispatched_by": self.dispatched_by,
            "resolved_at": iso(self.resolved_at), "closed_at": iso(self.closed_at),
            "updated_at": iso(self.updated_at), "escalation": self.escalation,
            "overdue": self.is_overdue(now), "hours_to_close": hours_to_close(self),
            "version": self.version, "source": self.source, "source_id": self.source_id,
        }


@dataclass(frozen=True)
class IncomingReport:
    """One source row, ready to become (part of) an event."""

    source: str
    source_id: str
    reported_at: datetime
    category: str
    lat: float
    lon: float
    cell: int
    merge_cell: int
    channel: str
    description: str
    agency: str | None = None
    #: Already finished in the source (historical import): enters as a closed event.
    closed: bool = False
    closed_at: datetime | None = None
    source_status: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.source_id


@dataclass(frozen=True)
class Report:
    """A source row as stored, with the event it belongs to."""

    event_id: int
    source: str
    source_id: str
    reported_at: datetime
    category: str
    lat: float
    lon: float
    cell: int
    channel: str
    description: str
    agency: str | None
    source_status: str | None
    closed_at: datetime | None

    @classmethod
    def of(cls, event_id: int, report: IncomingReport) -> Report:
        return cls(event_id, report.source, report.source_id, report.reported_at,
                   report.category, report.lat, report.lon, report.cell, report.channel,
                   report.description, report.agency, report.source_status, report.closed_at)

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "source": self.source, "source_id": self.source_id,
                "reported_at": iso(self.reported_at), "category": self.category,
                "lat": self.lat, "lon": self.lon, "cell": to_hex(self.cell),
                "channel": self.channel, "description": self.description,
                "agency": self.agency, "source_status": self.source_status,
                "closed_at": iso(self.closed_at)}


@dataclass(frozen=True)
class AuditEntry:
    """One change to one event; ``seq`` is the event's version after the change."""

    event_id: int
    seq: int
    action: Action
    from_status: str | None
    to_status: str
    department: str
    actor: str
    role: str
    at: datetime
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "seq": self.seq, "action": self.action,
                "from": self.from_status, "to": self.to_status, "department": self.department,
                "actor": self.actor, "role": self.role, "at": iso(self.at), "note": self.note}


# ---------------------------------------------------------------- rules & policy
T = TypeVar("T")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class CategoryRules(Generic[T]):
    """Category → value: exact categories first, then glob patterns in order, then default.

    >>> rules = CategoryRules.build({"Noise*": "NYPD", "Rodent": "DOHMH"}, "311")
    >>> rules.match("noise - vehicle"), rules.match("Rodent"), rules.match("Other")
    (('NYPD', 'Noise*'), ('DOHMH', 'Rodent'), ('311', 'default'))
    """

    exact: Mapping[str, T]
    patterns: tuple[tuple[str, re.Pattern[str], T], ...]
    default: T

    @classmethod
    def build(cls, table: Mapping[str, T], default: T) -> CategoryRules[T]:
        exact = {k: v for k, v in table.items() if not _GLOB.search(k)}
        patterns = tuple((k, re.compile(fnmatch.translate(k), re.IGNORECASE), v)
                         for k, v in table.items() if _GLOB.search(k))
        return cls(exact=exact, patterns=patterns, default=default)

    def match(self, category: str) -> tuple[T, str]:
        """The value for ``category`` and the rule that gave it (``"default"`` if none)."""
        if category in self.exact:
            return self.exact[category], category
        for key, pattern, value in self.patterns:
            if pattern.match(category):
                return value, key
        return self.default, "default"


@dataclass(frozen=True)
class Policy:
    """Merging, routing and SLA rules, built once from :class:`EventsSettings`."""

    departments: CategoryRules[str]
    sla: CategoryRules[float]
    agencies: Mapping[str, str] = field(default_factory=dict)
    use_source_agency: bool = True
    merge_window: float = 7200.0
    merge_res: int = 9
    max_escalation: int = 3

    @classmethod
    def from_settings(cls, settings: EventsSettings) -> Policy:
        return cls(
            departments=CategoryRules.build(settings.departments, settings.default_department),
            sla=CategoryRules.build(settings.sla, settings.default_sla),
            agencies=settings.agencies,
            use_source_agency=settings.use_source_agency,
            merge_window=settings.merge_window,
            merge_res=settings.merge_res,
            max_escalation=settings.max_escalation,
        )

    def route(self, category: str) -> tuple[str, str]:
        """(department, why) by the category rules."""
        department, rule = self.departments.match(category)
        why = "default department" if rule == "default" else f"rule {rule!r}"
        return department, why

    def department_for(self, report: IncomingReport) -> tuple[str, str]:
        """(department, why) for a new event: the source's agency if it names one, else rules."""
        if self.use_source_agency and report.agency:
            return self.agencies.get(report.agency, report.agency), \
                f"source agency {report.agency!r}"
        return self.route(report.category)

    def sla_seconds(self, category: str) -> float:
        return self.sla.match(category)[0]


# ------------------------------------------------------------------------ intake
def _text_column(frame: pd.DataFrame, column: str) -> list[str | None]:
    if column not in frame:
        return [None] * len(frame)
    text = frame[column].astype("string").str.strip()
    return [None if v is pd.NA or v == "" else str(v) for v in text.tolist()]


def _times(series: pd.Series) -> list[datetime | None]:
    series = pd.to_datetime(series, utc=True, errors="coerce").dt.floor("us")
    return [None if pd.isna(t) else t.to_pydatetime() for t in series]


def reports_from_frame(frame: pd.DataFrame, merge_res: int) -> tuple[list[IncomingReport],
                                                                      Counter[str]]:
    """Normalised ``requests`` rows → incoming reports, and the rows refused by reason.

    The channel is the row's ``channel`` or, when the source has none, its source
    name; the description is the ``descriptor`` (else the row's ``name``). A row is
    closed when its ``closed_time`` is set or its ``is_open`` is false.
    """
    rejected: Counter[str] = Counter()
    if frame.empty:
        return [], rejected
    frame = frame.reset_index(drop=True)
    ids = _text_column(frame, "id")
    sources = _text_column(frame, "source")
    times = _times(frame["time"])
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float)
    placed = np.isfinite(lat) & np.isfinite(lon)
    cells = frame["cell"].to_numpy(dtype=np.int64) if "cell" in frame else \
        np.zeros(len(frame), dtype=np.int64)
    merge_cells = np.zeros(len(frame), dtype=np.int64)
    # Parents of the stored base cells, as the map aggregates; a row whose cell is
    # coarser than merge_res (or absent) is indexed afresh from its coordinates.
    usable = placed & (cells > 0)
    usable[usable] &= resolution_of(cells[usable]) >= merge_res
    merge_cells[usable] = parents(cells[usable], merge_res)
    categories = _text_column(frame, "category")
    channels = _text_column(frame, "channel")
    descriptions = _text_column(frame, "descriptor")
    names = _text_column(frame, "name")
    agencies = _text_column(frame, "agency")
    statuses = _text_column(frame, "status")
    closed_times = _times(frame["closed_time"]) if "closed_time" in frame else [None] * len(frame)
    is_open = frame["is_open"].to_numpy(dtype=bool) if "is_open" in frame else \
        np.ones(len(frame), dtype=bool)
    out: list[IncomingReport] = []
    for i in range(len(frame)):
        if ids[i] is None or sources[i] is None:
            rejected["missing id"] += 1
            continue
        if times[i] is None:
            rejected["missing time"] += 1
            continue
        if not placed[i]:
            rejected["missing coordinates"] += 1
            continue
        cell = int(cells[i]) if cells[i] > 0 else h3i.latlng_to_cell(lat[i], lon[i], 10)
        merge_cell = int(merge_cells[i]) if usable[i] else \
            h3i.latlng_to_cell(lat[i], lon[i], merge_res)
        out.append(IncomingReport(
            source=str(sources[i]), source_id=str(ids[i]), reported_at=times[i],  # type: ignore[arg-type]
            category=categories[i] or UNCATEGORISED, lat=float(lat[i]), lon=float(lon[i]),
            cell=cell, merge_cell=merge_cell,
            channel=channels[i] or str(sources[i]),
            description=descriptions[i] or names[i] or "",
            agency=agencies[i], closed=closed_times[i] is not None or not bool(is_open[i]),
            closed_at=closed_times[i], source_status=statuses[i],
        ))
    return out, rejected


@dataclass
class IngestPlan:
    """What one ingest writes: new events, merges into existing ones, reports, audit."""

    new_events: list[Event] = field(default_factory=list)
    #: Existing events that took merged reports: (as read, as to write).
    changed: list[tuple[Event, Event]] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    merged: int = 0

    @property
    def created(self) -> int:
        return len(self.new_events)


def _new_event(event_id: int, report: IncomingReport,
               policy: Policy) -> tuple[Event, list[AuditEntry]]:
    # Intake entries carry the report's own times, so an import keeps the real history.
    department, why = policy.department_for(report)
    due_at = report.reported_at + timedelta(seconds=policy.sla_seconds(report.category))
    received = AuditEntry(event_id, 1, "receive", None, "received", "", "intake", SYSTEM,
                          report.reported_at,
                          f"reported via {report.channel} ({report.source}:{report.source_id})")
    base = Event(
        id=event_id, category=report.category, description=report.description,
        channel=report.channel, lat=report.lat, lon=report.lon, cell=report.cell,
        merge_cell=report.merge_cell, received_at=report.reported_at,
        last_report_at=report.reported_at, report_count=1, status="received",
        department=department, due_at=due_at, updated_at=report.reported_at, version=1,
        source=report.source, source_id=report.source_id)
    if report.closed:
        closed_at = report.closed_at
        note = f"closed in source {report.source!r} (status {report.source_status!r})"
        if closed_at is not None and closed_at < report.reported_at:
            # A closing time before the report is a source error: keep the event closed
            # but leave its closing time unknown rather than invent a negative duration.
            note += f"; its closing time {closed_at.isoformat()} precedes the report, dropped"
            closed_at = None
        elif closed_at is None:
            note += "; no closing time in source"
        at = closed_at or report.reported_at
        closed = AuditEntry(event_id, 2, "import", "received", "closed", department, "import",
                            SYSTEM, at, note)
        return replace(base, status="closed", closed_at=closed_at, updated_at=at,
                       version=2), [received, closed]
    dispatched = AuditEntry(event_id, 2, "dispatch", "received", "dispatched", department,
                            AUTO_DISPATCH, SYSTEM, report.reported_at, why)
    return replace(base, status="dispatched", dispatched_at=report.reported_at,
                   dispatched_by=AUTO_DISPATCH, version=2), [received, dispatched]


def _merge(event: Event, report: IncomingReport) -> tuple[Event, AuditEntry]:
    merged = replace(event, report_count=event.report_count + 1,
                     last_report_at=max(event.last_report_at, report.reported_at),
                     updated_at=max(event.updated_at, report.reported_at),
                     version=event.version + 1)
    entry = AuditEntry(event.id, merged.version, "merge", event.status, event.status,
                       event.department, "intake", SYSTEM, report.reported_at,
                       f"merged report {report.source}:{report.source_id} via "
                       f"{report.channel} ({merged.report_count} reports)")
    return merged, entry


def plan_ingest(incoming: Iterable[IncomingReport], known_keys: set[tuple[str, str]],
                open_events: Sequence[Event], next_id: int, policy: Policy) -> IngestPlan:
    """Decide, for each report in reported-time order, whether it merges or opens an event.

    A report merges into the open event of the same category whose merge cell is the
    report's or a neighbour (H3 ``grid_disk`` k=1 at ``merge_res``) and whose first
    report is within ``merge_window``; of several, the earliest (then lowest id)
    wins. Reports already closed in their source never merge and are never merged
    into: they were handled one by one, and their own closing times are the real
    time-to-close record. Reports whose key is in ``known_keys`` (or repeated in the
    batch) are skipped and counted. The result depends only on the inputs.
    """
    plan = IngestPlan()
    window = timedelta(seconds=policy.merge_window)
    by_place: dict[tuple[str, int], list[Event]] = {}
    current: dict[int, Event] = {}
    original: dict[int, Event] = {}
    for event in open_events:
        if event.is_open:
            current[event.id] = original[event.id] = event
            by_place.setdefault((event.category, event.merge_cell), []).append(event)
    new_ids: list[int] = []
    seen: set[tuple[str, str]] = set()
    ordered = sorted(incoming, key=lambda r: (r.reported_at, r.source, r.source_id))
    for report in ordered:
        if report.key in known_keys:
            plan.skipped["already ingested"] += 1
            continue
        if report.key in seen:
            plan.skipped["duplicate id in batch"] += 1
            continue
        seen.add(report.key)
        target = None if report.closed else _merge_target(report, by_place, current, window)
        if target is not None:
            merged, entry = _merge(current[target], report)
            current[target] = merged
            plan.reports.append(Report.of(target, report))
            plan.audit.append(entry)
            plan.merged += 1
            continue
        event, entries = _new_event(next_id, report, policy)
        current[event.id] = event
        new_ids.append(event.id)
        if event.is_open:
            by_place.setdefault((event.category, event.merge_cell), []).append(event)
        plan.reports.append(Report.of(event.id, report))
        plan.audit.extend(entries)
        next_id += 1
    plan.new_events = [current[i] for i in new_ids]
    plan.changed = [(original[i], current[i]) for i in original if current[i] is not original[i]]
    return plan


def _merge_target(report: IncomingReport, by_place: Mapping[tuple[str, int], list[Event]],
                  current: Mapping[int, Event], window: timedelta) -> int | None:
    best: Event | None = None
    for cell in h3i.grid_disk(report.merge_cell, 1):
        for listed in by_place.get((report.category, cell), ()):
            event = current[listed.id]
            if not event.is_open or abs(report.reported_at - event.received_at) > window:
                continue
            if best is None or (event.received_at, event.id) < (best.received_at, best.id):
                best = event
    return None if best is None else best.id


# --------------------------------------------------------------------- lifecycle
def apply_transition(event: Event, to: str, *, actor: str, role: str, now: datetime,
                     department: str | None = None, note: str = "",
                     route: Callable[[str], tuple[str, str]] | None = None
                     ) -> tuple[Event, AuditEntry]:
    """The event after moving it to ``to``, and the audit entry; raises, changing nothing.

    ``department`` may only be given when dispatching; without it a dispatch goes
    where ``route`` (the category rules) sends it.
    """
    if role not in CHANGE_ROLES:
        raise PermissionDenied(actor, role)
    allowed = TRANSITIONS.get(event.status, ())
    if to not in STATUSES:
        raise TransitionError(event.id, event.status, to, allowed,
                              f"unknown status {to!r} (statuses: {', '.join(STATUSES)})")
    if to not in allowed:
        raise TransitionError(event.id, event.status, to, allowed)
    if department is not None and to != "dispatched":
        raise TransitionError(event.id, event.status, to, allowed,
                              "a department can only be given when dispatching")
    changes: dict[str, Any] = {"status": to, "version": event.version + 1, "updated_at": now}
    action: Action = "transition"
    target_department = event.department
    if to == "dispatched":
        action = "dispatch"
        if department is not None and not department.strip():
            raise TransitionError(event.id, event.status, to, allowed,
                                  "the department must not be empty")
        if department is None:
            department, why = (route or (lambda c: (event.department, "kept")))(event.category)
            note = note or why
        target_department = department.strip()
        if event.status == "dispatched" and target_department == event.department:
            raise TransitionError(event.id, event.status, to, allowed,
                                  f"event {event.id} is already dispatched to "
                                  f"{event.department!r}; name another department")
        changes.update(department=target_department, dispatched_at=now, dispatched_by=actor)
    elif to == "resolved":
        changes["resolved_at"] = now
    elif to == "closed":
        changes["closed_at"] = now
    elif to == "in_progress" and event.status == "resolved":
        changes["resolved_at"] = None  # reopened: the earlier resolution did not hold
    updated = replace(event, **changes)
    entry = AuditEntry(event.id, updated.version, action, event.status, to, target_department,
                       actor, role, now, note)
    return updated, entry


def escalation_level(event: Event, now: datetime, max_level: int) -> int:
    """0 until an open event's due time; then 1, plus one per further SLA period."""
    if not event.is_overdue(now):
        return 0
    sla = (event.due_at - event.received_at).total_seconds()
    late = (now - event.due_at).total_seconds()
    steps = int(late // sla) if sla > 0 else max_level
    return min(max_level, 1 + steps)


def escalate(event: Event, now: datetime, max_level: int) -> tuple[Event, AuditEntry] | None:
    """The escalated event and its audit entry, or None when its level is already reached."""
    level = escalation_level(event, now, max_level)
    if level <= event.escalation:
        return None
    updated = replace(event, escalation=level, version=event.version + 1, updated_at=now)
    hours = (now - event.due_at).total_seconds() / 3600.0
    entry = AuditEntry(event.id, updated.version, "escalate", event.status, event.status,
                       event.department, "supervisor", SYSTEM, now,
                       f"escalated to level {level}: overdue by {hours:.1f} h "
                       f"(due {event.due_at.isoformat()})")
    return updated, entry


# -------------------------------------------------------------------- statistics
def hours_to_close(event: Event) -> float | None:
    """Hours from first report to closing; None while open or when unknown."""
    if event.closed_at is None:
        return None
    hours = (event.closed_at - event.received_at).total_seconds() / 3600.0
    return hours if hours >= 0 else None


def status_counts(events: Iterable[Event]) -> dict[str, int]:
    counts = Counter(e.status for e in events)
    return {status: counts.get(status, 0) for status in STATUSES}


def overdue_events(events: Iterable[Event], now: datetime) -> list[Event]:
    """Open events past their due time, most overdue first."""
    return sorted((e for e in events if e.is_overdue(now)), key=lambda e: (e.due_at, e.id))


def _quantiles(hours: Sequence[float]) -> dict[str, Any]:
    if not hours:
        return {"count": 0, "median_hours": None, "p90_hours": None}
    values = np.asarray(hours, dtype=float)
    # Linear interpolation between order statistics, as pandas' Series.quantile.
    return {"count": len(values), "median_hours": float(np.quantile(values, 0.5)),
            "p90_hours": float(np.quantile(values, 0.9))}


def time_to_close(events: Iterable[Event]) -> dict[str, Any]:
    """Count, median and 90th percentile of hours to close, over closed events."""
    return _quantiles([h for e in events if (h := hours_to_close(e)) is not None])


def time_to_close_by_category(events: Iterable[Event]) -> list[dict[str, Any]]:
    by_category: dict[str, list[float]] = {}
    for event in events:
        hours = hours_to_close(event)
        if hours is not None:
            by_category.setdefault(event.category, []).append(hours)
    rows = [{"category": c, **_quantiles(h)} for c, h in by_category.items()]
    return sorted(rows, key=lambda r: (-r["count"], r["category"]))


def department_queues(events: Iterable[Event], now: datetime) -> list[dict[str, Any]]:
    """Per department: open and overdue counts and counts by status, busiest first."""
    queues: dict[str, dict[str, Any]] = {}
    for event in events:
        queue = queues.setdefault(event.department, {
            "department": event.department, "open": 0, "overdue": 0,
            "by_status": dict.fromkeys(STATUSES, 0)})
        queue["by_status"][event.status] += 1
        queue["open"] += int(event.is_open)
        queue["overdue"] += int(event.is_overdue(now))
    return sorted(queues.values(), key=lambda q: (-q["open"], -q["overdue"], q["department"]))


def summary(events: Sequence[Event], now: datetime, overdue_limit: int = 50) -> dict[str, Any]:
    """Everything ``/api/events/stats`` reports, computed from the events alone."""
    overdue = overdue_events(events, now)
    reports = sum(e.report_count for e in events)
    return {
        "now": now.isoformat(),
        "total": len(events),
        "reports": reports,
        "merged_reports": reports - len(events),
        "by_status": status_counts(events),
        "open": sum(1 for e in events if e.is_open),
        "overdue": len(overdue),
        "escalated": sum(1 for e in events if e.is_open and e.escalation > 0),
        "departments": department_queues(events, now),
        "overdue_events": [{
            "id": e.id, "category": e.category, "department": e.department,
            "status": e.status, "due_at": e.due_at.isoformat(), "escalation": e.escalation,
            "hours_overdue": round((now - e.due_at).total_seconds() / 3600.0, 2),
        } for e in overdue[:overdue_limit]],
        "time_to_close": {**time_to_close(events),
                          "by_category": time_to_close_by_category(events)},
    }


__all__ = [
    "AuditEntry", "CategoryRules", "ConflictError", "Event", "EventError", "EventNotFound",
    "IncomingReport", "IngestPlan", "OPEN_STATUSES", "PermissionDenied", "Policy", "Report",
    "STATUSES", "Status", "TRANSITIONS", "TransitionError", "apply_transition",
    "department_queues", "escalate", "escalation_level", "hours_to_close", "overdue_events",
    "plan_ingest", "reports_from_frame", "status_counts", "summary", "time_to_close",
    "time_to_close_by_category",
]
