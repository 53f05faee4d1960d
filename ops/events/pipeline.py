"""The events pipeline: intake, dispatch and supervision over one store.

:class:`EventPipeline` joins the pure rules of :mod:`ops.events.model`, ``intake``, ``policy``
and ``stats`` to a store from
:mod:`ops.events.store` and the users of :mod:`ops.auth`. It holds no event state of its
own, so any number of pipelines (one per gunicorn worker) can share one database.

Example::

    pipeline = EventPipeline(parse_events_settings(table, base_dir), users)
    pipeline.ingest_city(city_data)          # every source that feeds events (requests)
    pipeline.supervise()                     # escalate what is overdue
    pipeline.transition(7, "in_progress", actor="li.wei", role="operator",
                        expected_version=2)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from layers import event_sources
from ops.auth import Auth
from ops.events.intake import NUL_STRIPPED, reports_from_frame
from ops.events.model import (
    CHANGE_ROLES,
    AuditEntry,
    Event,
    PermissionDenied,
    Report,
    apply_transition,
    escalate,
)
from ops.events.policy import Policy
from ops.events.settings import EventsSettings, User
from ops.events.stats import summary
from ops.events.store import EventStore, open_store

if TYPE_CHECKING:
    from store.city import CityData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did; every row is either stored or counted under a reason."""

    rows: int
    created: int
    merged: int
    skipped: Counter[str] = field(default_factory=Counter)
    #: Rows stored after repair (text the database cannot hold removed), by what was done.
    repaired: Counter[str] = field(default_factory=Counter)
    #: Rows looked at (turned into reports, keys looked up); ``rows`` for
    #: :meth:`EventPipeline.ingest`, only the new rows for :meth:`EventPipeline.ingest_city`.
    scanned: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "scanned": self.scanned, "created": self.created,
                "merged": self.merged, "skipped": dict(sorted(self.skipped.items())),
                "repaired": dict(sorted(self.repaired.items()))}


class EventPipeline:
    """Unified intake (接报), dispatch (分拨) and supervision (督办) of events."""

    def __init__(self, settings: EventsSettings, users: Sequence[User] = (),
                 store: EventStore | None = None) -> None:
        self.settings = settings
        self.policy = Policy.from_settings(settings)
        self.store = store if store is not None else open_store(settings)
        self.auth = Auth(users)
        #: Rows stored after repair since start, by what was done (see IngestResult.repaired).
        self.repaired: Counter[str] = Counter()
        #: Returns "now" for SLAs; the app attaches the city clock (see app.py).
        self.clock: Callable[[], datetime] | None = None
        #: Per source: how far :meth:`ingest_city` took its rows, and a snapshot
        #: source's ids as last taken.
        self._cursors: dict[str, Any] = {}
        self._seen: dict[str, pd.Series] = {}

    # ------------------------------------------------------------------ intake
    def ingest(self, frame: pd.DataFrame) -> IngestResult:
        """Ingest normalised ``requests`` rows (of any number of sources); idempotent."""
        dirty: set[tuple[str, str]] = set()
        incoming, rejected = reports_from_frame(frame, self.policy.merge_res, dirty)
        plan = self.store.ingest(incoming, self.policy)
        skipped = rejected + plan.skipped
        # Counted once, when stored (rows already stored come back every round).
        stored = len(dirty & {(r.source, r.source_id) for r in plan.reports}) if dirty else 0
        repaired = Counter({NUL_STRIPPED: stored} if stored else {})
        result = IngestResult(rows=len(frame), created=plan.created, merged=plan.merged,
                              skipped=skipped, repaired=repaired, scanned=len(frame))
        self.repaired.update(repaired)
        if repaired:
            log.warning("events: stored rows with text repaired: %s", dict(repaired))
        if len(frame):
            log.info("events: ingested %s", result.as_dict())
        return result

    def ingest_city(self, data: CityData) -> IngestResult:
        """Ingest what is new in every source that feeds events: by its role (government's
        ``requests``) unless the source's own ``events`` key says otherwise (see
        layers.feeds_events).

        Incremental: each source's cursor (:meth:`store.city.CityData.rows_since`) says
        what this pipeline took already, so a round costs per new row, not per stored
        row. A snapshot source is looked at only when its version changed, and then only
        its ids not in its previous version go on (a vectorised set difference). The
        cursors move only once the rows are stored: a failed round is retried whole.
        ``rows`` counts the sources' rows, ``scanned`` the new ones taken.
        """
        from store.live import ids_in

        frames: list[pd.DataFrame] = []
        cursors: dict[str, Any] = {}
        seen: dict[str, pd.Series] = {}
        total = 0
        for source in event_sources(data.config.sources):
            frame, cursor, whole = data.rows_since(source.name, self._cursors.get(source.name))
            cursors[source.name] = cursor
            total += len(frame)
            if whole:
                before = self._seen.get(source.name)
                seen[source.name] = frame["id"] if "id" in frame else pd.Series(dtype=str)
                if before is not None and len(frame) and "id" in frame:
                    frame = frame.loc[~ids_in(frame["id"], before)]
            if len(frame):
                frames.append(frame)
        new = frames[0] if len(frames) == 1 else \
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        result = self.ingest(new)
        self._cursors.update(cursors)
        self._seen.update(seen)
        return IngestResult(rows=total, created=result.created, merged=result.merged,
                            skipped=result.skipped, repaired=result.repaired,
                            scanned=result.scanned)

    # -------------------------------------------------------------- lifecycle
    def transition(self, event_id: int, to: str, *, actor: str, role: str,
                   department: str | None = None, note: str = "",
                   expected_version: int | None = None, now: datetime | None = None) -> Event:
        """Move an event to ``to``; the event as stored afterwards.

        Raises :class:`~ops.events.model.TransitionError` (not allowed),
        :class:`~ops.events.model.ConflictError` (changed meanwhile or not at
        ``expected_version``), :class:`~ops.events.model.EventNotFound` or
        :class:`~ops.events.model.PermissionDenied`; on any of them nothing changes.
        """
        if role not in CHANGE_ROLES:
            raise PermissionDenied(actor, role)
        change = partial(apply_transition, to=to, actor=actor, role=role,
                         now=now or self.now(), department=department, note=note,
                         route=self.policy.route)
        return self.store.update(event_id, change, expected_version)

    def supervise(self, now: datetime | None = None) -> list[Event]:
        """Escalate open events past their due time; idempotent for a given ``now``.

        ``now`` defaults to :meth:`now`, the city clock that overdue flags are judged
        on too, so an accelerated or replayed city escalates what it shows as overdue.
        Returns the events whose escalation level rose (each with one audit entry).
        """
        now = now or self.now()
        changes = []
        for event in self.store.overdue_candidates(now):
            escalated = escalate(event, now, self.policy.max_escalation,
                                 self.policy.sla_for(event.category))
            if escalated is not None:
                changes.append((event, *escalated))
        applied = self.store.apply_changes(changes)
        if applied:
            log.info("events: escalated %d overdue event(s)", len(applied))
        return applied

    # ------------------------------------------------------------------ reads
    def now(self) -> datetime:
        """The time SLAs are judged at: the city clock when attached, else wall time."""
        return self.clock() if self.clock is not None else datetime.now(UTC)

    def get(self, event_id: int) -> Event:
        return self.store.get(event_id)

    def detail(self, event_id: int) -> tuple[Event, list[Report], list[AuditEntry]]:
        return self.store.detail(event_id)

    def events(self, status: Sequence[str] | None = None, department: str | None = None,
               cell: int | None = None, limit: int | None = None,
               before: tuple[datetime, int] | None = None) -> list[Event]:
        """Events newest first, filtered; ``before`` continues after a keyset position
        ``(received_at, id)`` (see :meth:`EventStore.events`)."""
        return self.store.events(status=status, department=department, cell=cell, limit=limit,
                                 before=before)

    def stats(self, now: datetime | None = None) -> dict[str, Any]:
        """Counts by status, open/overdue, department queues, overdue list, time to close."""
        return summary(self.store.all_events(), now or self.now())

    def close(self) -> None:
        self.store.close()


__all__ = ["EventPipeline", "IngestResult"]
