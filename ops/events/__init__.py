"""Operations: the city's event pipeline — unified intake, dispatch and supervision.

统一接报、统一分拨、统一督办. Requests from the public (every government-layer
``requests`` source) become events in one queue with one schema
(:mod:`ops.events.model`; merged at intake by :mod:`ops.events.intake`, routed by
:mod:`ops.events.policy`, counted by :mod:`ops.events.stats`), persisted in SQLite or
PostgreSQL (:mod:`ops.events.store`), driven by :class:`~ops.events.pipeline.EventPipeline`,
served under ``/api/events`` (:mod:`api.events`) to users with roles (:mod:`ops.auth`), configured by the
``[events]`` and ``[[users]]`` tables (:mod:`ops.events.settings`).

Nothing here is imported by the map; Flask is imported by the API and auth
helpers only.
"""

from __future__ import annotations

from ops.events.model import (
    STATUSES,
    TRANSITIONS,
    AuditEntry,
    ConflictError,
    Event,
    EventNotFound,
    PermissionDenied,
    Report,
    TransitionError,
)
from ops.events.pipeline import EventPipeline, IngestResult
from ops.events.settings import EventsSettings, User, parse_events_settings, parse_users
from ops.events.store import EventStore, PostgresStore, SqliteStore, StoreError, open_store

__all__ = [
    "STATUSES", "TRANSITIONS", "AuditEntry", "ConflictError", "Event", "EventNotFound",
    "EventPipeline", "EventStore", "EventsSettings", "IngestResult", "PermissionDenied",
    "PostgresStore", "Report", "SqliteStore", "StoreError", "TransitionError", "User",
    "open_store", "parse_events_settings", "parse_users",
]
