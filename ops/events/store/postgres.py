"""Events in PostgreSQL (``[events] store = "postgresql"``), through psycopg 3."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

from ops.events.store.base import EventStore, StoreError


class PostgresStore(EventStore):
    """PostgreSQL through psycopg 3; the DSN comes from an environment variable."""

    kind = "postgresql"
    placeholder = "%s"
    types = {"bigint": "BIGINT", "real": "DOUBLE PRECISION", "time": "TIMESTAMPTZ"}
    lock_rows = "FOR UPDATE"

    def __init__(self, dsn: str, table_prefix: str = "") -> None:
        super().__init__(table_prefix)
        try:
            import psycopg  # noqa: F401 - fail now, with advice, rather than on first use
        except ImportError as exc:
            raise StoreError("the PostgreSQL event store needs psycopg 3: "
                             "pip install 'psycopg[binary]'") from exc
        self._dsn = dsn

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self._dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to the PostgreSQL event store: {exc}") from exc

    def _begin_write(self, conn: Any, ingest: bool) -> None:
        conn.execute("BEGIN")
        if ingest:
            # Blocks other ingests and event updates (not readers) until commit, so the
            # open events a merge reads are the ones it writes to.
            conn.execute(self._sql("LOCK TABLE {events} IN SHARE ROW EXCLUSIVE MODE"))

    def _begin_read(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _lock_schema(self, conn: Any) -> None:
        key = zlib.crc32(self.events_table.encode()) ^ 0x6369747962
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    def _to_db_time(self, moment: datetime | None) -> datetime | None:
        return moment

    def _from_db_time(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)
