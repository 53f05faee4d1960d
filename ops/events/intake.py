"""Intake: request rows become reports, and reports merge into events or open new ones.

Pure functions: :func:`reports_from_frame` reads normalised ``requests`` rows,
:func:`plan_ingest` decides (from the open events and the keys already stored) what one
ingest writes; the store then writes the :class:`IngestPlan` in one transaction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

from geo.exact import cell_column, index_exact
from geo.hexes import resolution_of
from ops.events.model import (
    AUTO_DISPATCH,
    SYSTEM,
    UNCATEGORISED,
    AuditEntry,
    Event,
    IncomingReport,
    Report,
)
from ops.events.policy import Policy

#: Text a database cannot store: NUL (PostgreSQL refuses it in text) and lone UTF-16
#: surrogates (not encodable as UTF-8). Stripped, and the rows counted.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
NUL_STRIPPED = "text repaired (NUL or unpaired surrogate removed)"


def _text_column(frame: pd.DataFrame, column: str,
                 repaired: np.ndarray | None = None) -> list[str | None]:
    """A column as stripped text (None when empty); unstorable characters removed,
    and the rows that had them marked in ``repaired``."""
    if column not in frame:
        return [None] * len(frame)
    values = frame[column]
    if values.dtype == object:  # any Python str, surrogates included: clean them one by one
        dirty = values.map(lambda v: isinstance(v, str) and _UNSTORABLE.search(v) is not None)
        dirty = dirty.to_numpy(dtype=bool)
        if dirty.any():
            values = values.map(lambda v: _UNSTORABLE.sub("", v) if isinstance(v, str) else v)
        text = values.astype("string")
    else:  # a string dtype already holds encodable text: only NUL can be in it
        text = values.astype("string")
        dirty = text.str.contains("\x00", regex=False, na=False).to_numpy(dtype=bool)
        if dirty.any():
            text = text.str.replace("\x00", "", regex=False)
    if repaired is not None:
        repaired |= dirty
    text = text.str.strip()
    return [None if v is pd.NA or v == "" else str(v) for v in text.tolist()]


def _times(series: pd.Series) -> list[datetime | None]:
    series = pd.to_datetime(series, utc=True, errors="coerce").dt.floor("us")
    return [None if pd.isna(t) else t.to_pydatetime() for t in series]


def reports_from_frame(frame: pd.DataFrame, merge_res: int,
                       repaired: set[tuple[str, str]] | None = None) -> tuple[list[IncomingReport],
                                                                      Counter[str]]:
    """Normalised ``requests`` rows → incoming reports, and the rows refused by reason.

    Text no database can store (NUL bytes, unpaired surrogates) is removed; the keys
    (source, id) of the rows kept that had some are added to ``repaired``.

    The channel is the row's ``channel`` or, when the source has none, its source
    name; the description is the ``descriptor`` (else the row's ``name``). A row is
    closed when its ``closed_time`` is set or its ``is_open`` is false.
    """
    rejected: Counter[str] = Counter()
    if frame.empty:
        return [], rejected
    frame = frame.reset_index(drop=True)
    dirty = np.zeros(len(frame), dtype=bool)
    ids = _text_column(frame, "id", dirty)
    sources = _text_column(frame, "source", dirty)
    times = _times(frame["time"])
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float)
    placed = np.isfinite(lat) & np.isfinite(lon)
    cells = frame["cell"].to_numpy(dtype=np.int64) if "cell" in frame else \
        np.zeros(len(frame), dtype=np.int64)
    # Each report's exact cell at merge_res (latLngToCell, as the map aggregates): the
    # row's own cell_<merge_res> when indexing filled it (or its base cell when that is
    # at merge_res), else indexed from its coordinates.
    column = cell_column(merge_res)
    if column in frame and frame[column].dtype.kind in "iu":  # else: holes, re-index
        known = frame[column].to_numpy(dtype=np.int64)
    else:
        known = cells.copy()
        known[known > 0] *= resolution_of(known[known > 0]) == merge_res
    usable = placed & (known > 0)
    merge_cells = np.where(usable, known, 0)
    fresh = placed & ~usable & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0)
    if fresh.any():
        merge_cells[fresh] = index_exact(lat[fresh], lon[fresh], [merge_res])[merge_res]
    usable |= fresh
    categories = _text_column(frame, "category", dirty)
    channels = _text_column(frame, "channel", dirty)
    descriptions = _text_column(frame, "descriptor", dirty)
    names = _text_column(frame, "name", dirty)
    agencies = _text_column(frame, "agency", dirty)
    statuses = _text_column(frame, "status", dirty)
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
        if dirty[i] and repaired is not None:
            repaired.add((str(sources[i]), str(ids[i])))
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
    due_at = policy.sla_for(report.category).due_at(report.reported_at)
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


__all__ = ["IngestPlan", "plan_ingest", "reports_from_frame"]
