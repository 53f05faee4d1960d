"""Events: one queue for every request from the public, as records and pure functions.

统一接报、统一分拨、统一督办 — unified intake, dispatch and supervision. Each report
(a row of any government-layer ``requests`` source: a 311/12345 hotline, an app, a
web form) becomes part of exactly one :class:`Event`. This module holds the records,
the errors and the lifecycle; around it:

intake
    :mod:`ops.events.intake`: :func:`~ops.events.intake.reports_from_frame` turns
    normalised request rows into :class:`IncomingReport` records;
    :func:`~ops.events.intake.plan_ingest` merges reports of the same category in the
    same or a neighbouring H3 cell (at ``merge_res``) within ``merge_window`` of an open
    event's first report, and opens a new event for the rest. A source row is keyed on
    (source name, source row id), so reading the same rows twice changes nothing.
dispatch
    :mod:`ops.events.policy`: :class:`~ops.events.policy.Policy` routes a category to a
    department (exact category, then case-insensitive glob patterns in config order,
    then the default department); a report whose source already names an agency keeps
    that agency.
supervision
    every event has a ``due_at`` from its category's SLA (calendar or business time,
    :mod:`ops.events.calendar`); :func:`escalate` raises the escalation level of an open
    event past its due time, one level per further SLA period counted on the same
    calendar, and :func:`apply_transition` moves an event through
    ``received → dispatched → in_progress → resolved → closed``.
statistics
    :mod:`ops.events.stats`: :func:`~ops.events.stats.summary` and the functions it
    calls are pure functions over events.

Every change bumps an event's ``version`` by one and appends one
:class:`AuditEntry` whose ``seq`` is that new version, so the store can refuse a
stale write (``version`` compare-and-set) and the audit trail has no gaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from config.clock import iso
from geo.hexes import to_hex
from ops.events.calendar import Sla

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


def escalation_level(event: Event, now: datetime, max_level: int, sla: Sla | None = None) -> int:
    """0 until an open event's due time; then 1, plus one per further SLA period.

    Periods are counted on ``sla``'s basis (business hours or days on its calendar);
    without one, in calendar time, the period being ``due_at - received_at``.
    """
    if not event.is_overdue(now):
        return 0
    if sla is None:
        sla = Sla((event.due_at - event.received_at).total_seconds())
    if sla.seconds <= 0:
        return max_level
    # Level k once *more than* k SLA periods have passed (strictly, as overdue is):
    # on business time, a request can sit at exactly k periods all weekend.
    late = sla.elapsed(event.received_at, now) - sla.seconds
    return min(max_level, max(1, math.ceil(late / sla.seconds)))


def escalate(event: Event, now: datetime, max_level: int,
             sla: Sla | None = None) -> tuple[Event, AuditEntry] | None:
    """The escalated event and its audit entry, or None when its level is already reached."""
    level = escalation_level(event, now, max_level, sla)
    if level <= event.escalation:
        return None
    updated = replace(event, escalation=level, version=event.version + 1, updated_at=now)
    hours = (now - event.due_at).total_seconds() / 3600.0
    entry = AuditEntry(event.id, updated.version, "escalate", event.status, event.status,
                       event.department, "supervisor", SYSTEM, now,
                       f"escalated to level {level}: overdue by {hours:.1f} h "
                       f"(due {event.due_at.isoformat()})")
    return updated, entry


# ---------------------------------------------------------------------- duration
def hours_to_close(event: Event) -> float | None:
    """Hours from first report to closing; None while open or when unknown."""
    if event.closed_at is None:
        return None
    hours = (event.closed_at - event.received_at).total_seconds() / 3600.0
    return hours if hours >= 0 else None



__all__ = [
    "AuditEntry", "ConflictError", "Event", "EventError", "EventNotFound", "IncomingReport",
    "OPEN_STATUSES", "PermissionDenied", "Report", "STATUSES", "Status", "TRANSITIONS",
    "TransitionError", "apply_transition", "escalate", "escalation_level", "hours_to_close",
]
