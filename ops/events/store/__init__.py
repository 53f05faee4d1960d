"""Where events live: SQLite by default, PostgreSQL when configured; one interface, one schema.

Three tables (names optionally prefixed): ``events`` (one row per event, with a
``version``), ``reports`` (every source row, keyed on source name + source row id,
pointing at its event) and ``audit`` (one row per change, keyed on event id + seq).

Writes are short transactions. A change to an event is a compare-and-set on its
version (``UPDATE … WHERE id = ? AND version = ?``) followed by one audit insert
whose ``seq`` is the new version, so of two operators changing one event at once
exactly one wins and the other gets :class:`~ops.events.model.ConflictError`; the audit
trail cannot fork. An ingest holds a lock that serialises ingests (SQLite
``BEGIN IMMEDIATE``; PostgreSQL ``LOCK TABLE … SHARE ROW EXCLUSIVE``) because
merging reads the open events it then writes to.

Connections come from a small pool, so one store serves many threads; each
connection is used by one thread at a time. Drivers are imported when a store of
that kind is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ops.events.settings import EventsSettings
from ops.events.store.base import EventStore, StoreError
from ops.events.store.postgres import PostgresStore
from ops.events.store.schema import cell_ranges
from ops.events.store.sqlite import SqliteStore


def open_store(settings: EventsSettings, environ: Mapping[str, str] | None = None) -> EventStore:
    """The store the settings name, with its tables created."""
    environ = os.environ if environ is None else environ
    store: EventStore
    if settings.store == "postgresql":
        dsn = environ.get(settings.dsn_env, "").strip()
        if not dsn:
            raise StoreError(f"[events] store = 'postgresql' but the environment variable "
                             f"{settings.dsn_env} (dsn_env) is not set")
        store = PostgresStore(dsn, settings.table_prefix)
    else:
        store = SqliteStore(settings.path, settings.table_prefix)
    store.create_schema()
    # Nothing stays connected from start-up: a forking server (gunicorn --preload)
    # must not share a connection between workers.
    store.release_connections()
    return store


__all__ = ["EventStore", "SqliteStore", "PostgresStore", "StoreError", "cell_ranges",
           "open_store"]
