"""Statistics over events: counts by status, department queues, time to close; pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ops.events.model import STATUSES, Event, hours_to_close


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



__all__ = ["department_queues", "overdue_events", "status_counts", "summary", "time_to_close",
           "time_to_close_by_category"]
