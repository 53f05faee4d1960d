"""Events in one SQLite file (the default store)."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops.events.store.base import EventStore


class SqliteStore(EventStore):
    """One SQLite file in WAL mode (readers never block the writer)."""

    kind = "sqlite"
    types = {"bigint": "INTEGER", "real": "REAL", "time": "TEXT"}

    def __init__(self, path: str | os.PathLike[str], table_prefix: str = "",
                 busy_timeout: float = 30.0) -> None:
        super().__init__(table_prefix)
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are the explicit BEGIN … COMMIT in EventStore;
        # a pooled connection is only ever used by one thread at a time.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _begin_write(self, conn: Any, ingest: bool) -> None:
        # IMMEDIATE takes the write lock before reading, so a read-check-write cannot
        # be overtaken by another writer between its read and its write.
        conn.execute("BEGIN IMMEDIATE")

    def _begin_read(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _to_db_time(self, moment: datetime | None) -> str | None:
        # Fixed width, always UTC: text order is time order, so SQL can compare it.
        return None if moment is None else \
            moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

    def _from_db_time(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)
