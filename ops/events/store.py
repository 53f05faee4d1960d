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

import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops.events.intake import IngestPlan, plan_ingest
from ops.events.model import (
    OPEN_STATUSES,
    STATUSES,
    AuditEntry,
    ConflictError,
    Event,
    EventNotFound,
    IncomingReport,
    Report,
)
from ops.events.policy import Policy
from ops.events.settings import EventsSettings

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "id", "category", "description", "channel", "lat", "lon", "cell", "merge_cell",
    "received_at", "last_report_at", "report_count", "status", "department", "due_at",
    "updated_at", "version", "source", "source_id", "dispatched_at", "dispatched_by",
    "resolved_at", "closed_at", "escalation",
)
#: Columns a change may write (everything but identity and where the event came from).
MUTABLE_COLUMNS = (
    "status", "department", "report_count", "last_report_at", "due_at", "updated_at",
    "version", "dispatched_at", "dispatched_by", "resolved_at", "closed_at", "escalation",
)
REPORT_COLUMNS = (
    "event_id", "source", "source_id", "reported_at", "category", "lat", "lon", "cell",
    "channel", "description", "agency", "source_status", "closed_at",
)
AUDIT_COLUMNS = (
    "event_id", "seq", "action", "from_status", "to_status", "department", "actor", "role",
    "at", "note",
)
_TIME_COLUMNS = frozenset({
    "received_at", "last_report_at", "due_at", "updated_at", "dispatched_at", "resolved_at",
    "closed_at", "reported_at", "at",
})

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {events} (
        id {bigint} PRIMARY KEY,
        category TEXT NOT NULL,
        description TEXT NOT NULL,
        channel TEXT NOT NULL,
        lat {real} NOT NULL,
        lon {real} NOT NULL,
        cell {bigint} NOT NULL,
        merge_cell {bigint} NOT NULL,
        received_at {time} NOT NULL,
        last_report_at {time} NOT NULL,
        report_count INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({statuses})),
        department TEXT NOT NULL,
        due_at {time} NOT NULL,
        updated_at {time} NOT NULL,
        version INTEGER NOT NULL,
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        dispatched_at {time},
        dispatched_by TEXT,
        resolved_at {time},
        closed_at {time},
        escalation INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS {events}_status ON {events} (status, due_at)",
    "CREATE INDEX IF NOT EXISTS {events}_department ON {events} (department, status)",
    "CREATE INDEX IF NOT EXISTS {events}_received ON {events} (received_at)",
    "CREATE INDEX IF NOT EXISTS {events}_cell ON {events} (cell)",
    """CREATE TABLE IF NOT EXISTS {reports} (
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        event_id {bigint} NOT NULL REFERENCES {events} (id),
        reported_at {time} NOT NULL,
        category TEXT NOT NULL,
        lat {real} NOT NULL,
        lon {real} NOT NULL,
        cell {bigint} NOT NULL,
        channel TEXT NOT NULL,
        description TEXT NOT NULL,
        agency TEXT,
        source_status TEXT,
        closed_at {time},
        PRIMARY KEY (source, source_id)
    )""",
    "CREATE INDEX IF NOT EXISTS {reports}_event ON {reports} (event_id)",
    """CREATE TABLE IF NOT EXISTS {audit} (
        event_id {bigint} NOT NULL REFERENCES {events} (id),
        seq INTEGER NOT NULL,
        action TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT NOT NULL,
        department TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        at {time} NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (event_id, seq)
    )""",
)

_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT


def cell_ranges(cell: int) -> list[tuple[int, int]]:
    """Inclusive int ranges holding every descendant of ``cell`` (and the cell itself).

    An H3 index is mode, resolution, base cell, then fifteen 3-bit digits, unused
    digits set to 7. The descendants at resolution ``b`` share the bits above the
    digits and digits ``1..r``; digits ``r+1..b`` vary and the rest stay 7, so they
    fill one contiguous range per resolution. This lets SQL filter stored base
    cells by a coarser cell with ``BETWEEN``.
    """
    res = (cell & _RES_MASK) >> _RES_SHIFT
    ranges = []
    for fine in range(res, 16):
        top = (cell & ~_RES_MASK) | (fine << _RES_SHIFT)
        varying = ((1 << (3 * (15 - res))) - 1) ^ ((1 << (3 * (15 - fine))) - 1)
        ranges.append((top & ~varying, top))
    return ranges


class StoreError(RuntimeError):
    """The store cannot be opened or used (missing DSN, closed store, driver missing)."""


class EventStore:
    """Events, reports and audit in SQL; subclasses say how to connect and type columns."""

    kind = ""
    placeholder = "?"
    types: dict[str, str] = {}

    def __init__(self, table_prefix: str = "", max_idle: int = 4) -> None:
        self.events_table = f"{table_prefix}events"
        self.reports_table = f"{table_prefix}reports"
        self.audit_table = f"{table_prefix}audit"
        self._idle: list[Any] = []
        self._pool_lock = threading.Lock()
        self._max_idle = max_idle
        self._closed = False

    # -------------------------------------------------------- back-end specifics
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin_write(self, conn: Any, ingest: bool) -> None:
        raise NotImplementedError

    def _begin_read(self, conn: Any) -> None:
        raise NotImplementedError

    def _to_db_time(self, moment: datetime | None) -> Any:
        raise NotImplementedError

    def _from_db_time(self, value: Any) -> datetime | None:
        raise NotImplementedError

    def _lock_schema(self, conn: Any) -> None:
        """Serialise concurrent schema creation (several workers starting at once)."""

    # ---------------------------------------------------------------- plumbing
    def _sql(self, text: str) -> str:
        text = text.format(events=self.events_table, reports=self.reports_table,
                           audit=self.audit_table)
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _checkout(self) -> Any:
        with self._pool_lock:
            if self._closed:
                raise StoreError("the event store is closed")
            conn = self._idle.pop() if self._idle else None
        return self._connect() if conn is None else conn

    def _release(self, conn: Any, reusable: bool) -> None:
        with self._pool_lock:
            if reusable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def _transaction(self, write: bool = True, ingest: bool = False) -> Iterator[Any]:
        conn = self._checkout()
        reusable = False  # a connection whose ROLLBACK failed is not put back
        try:
            if write:
                self._begin_write(conn, ingest)
            else:
                self._begin_read(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                reusable = True
                raise
            conn.execute("COMMIT")
            reusable = True
        finally:
            self._release(conn, reusable)

    def release_connections(self) -> None:
        """Close idle pooled connections; the store stays usable (it reconnects)."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def create_schema(self) -> None:
        """Create the tables if they do not exist (safe to call on every start)."""
        statuses = ", ".join(f"'{s}'" for s in STATUSES)
        with self._transaction() as conn:
            self._lock_schema(conn)
            for statement in _SCHEMA:
                conn.execute(self._sql(statement.replace("{statuses}", statuses)
                                       .replace("{bigint}", self.types["bigint"])
                                       .replace("{real}", self.types["real"])
                                       .replace("{time}", self.types["time"])))

    def drop_tables(self) -> None:
        """Drop this store's three tables (for tests and throwaway stores)."""
        with self._transaction() as conn:
            for table in (self.audit_table, self.reports_table, self.events_table):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    def close(self) -> None:
        """Close pooled connections and refuse further use; the data stays in the database."""
        with self._pool_lock:
            self._closed = True
        self.release_connections()

    # --------------------------------------------------------- row conversions
    def _row(self, columns: Sequence[str], record: Any) -> tuple[Any, ...]:
        return tuple(self._to_db_time(getattr(record, c)) if c in _TIME_COLUMNS
                     else getattr(record, c) for c in columns)

    def _values(self, columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        return {c: self._from_db_time(v) if c in _TIME_COLUMNS else v
                for c, v in zip(columns, row, strict=True)}

    def _event(self, row: Sequence[Any]) -> Event:
        values = self._values(EVENT_COLUMNS, row)
        return Event(**{**values, "lat": float(values["lat"]), "lon": float(values["lon"]),
                        "cell": int(values["cell"]), "merge_cell": int(values["merge_cell"])})

    def _select_events(self, conn: Any, where: str = "", params: Sequence[Any] = (),
                       tail: str = "") -> list[Event]:
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM {{events}} {where} {tail}"
        return [self._event(r) for r in conn.execute(self._sql(sql), tuple(params)).fetchall()]

    def _fetch(self, conn: Any, event_id: int) -> Event:
        found = self._select_events(conn, "WHERE id = ?", (event_id,))
        if not found:
            raise EventNotFound(event_id)
        return found[0]

    def _insert(self, conn: Any, table: str, columns: Sequence[str],
                records: Sequence[Any]) -> None:
        if not records:
            return
        marks = ", ".join("?" * len(columns))
        sql = self._sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})")
        conn.cursor().executemany(sql, [self._row(columns, r) for r in records])

    def _compare_and_set(self, conn: Any, old: Event, new: Event) -> bool:
        """Write ``new`` over the stored event only if it is still at ``old.version``."""
        assignments = ", ".join(f"{c} = ?" for c in MUTABLE_COLUMNS)
        cursor = conn.execute(
            self._sql(f"UPDATE {{events}} SET {assignments} WHERE id = ? AND version = ?"),
            self._row(MUTABLE_COLUMNS, new) + (old.id, old.version))
        return bool(cursor.rowcount == 1)

    def _write_change(self, conn: Any, old: Event, new: Event, entry: AuditEntry) -> bool:
        """Compare-and-set one event on its version and append its audit entry."""
        if not self._compare_and_set(conn, old, new):
            return False
        self._insert(conn, "{audit}", AUDIT_COLUMNS, [entry])
        return True

    # ------------------------------------------------------------------ writes
    def ingest(self, incoming: Sequence[IncomingReport], policy: Policy) -> IngestPlan:
        """Merge and store reports in one transaction; reports already stored are skipped."""
        if not incoming:
            return IngestPlan()
        window = timedelta(seconds=policy.merge_window)
        earliest = min(r.reported_at for r in incoming) - window
        latest = max(r.reported_at for r in incoming) + window
        open_marks = ", ".join("?" * len(OPEN_STATUSES))
        with self._transaction(ingest=True) as conn:
            known = self._known_keys(conn, {r.key for r in incoming})
            candidates = self._select_events(
                conn, f"WHERE status IN ({open_marks}) AND received_at BETWEEN ? AND ?",
                (*sorted(OPEN_STATUSES), self._to_db_time(earliest), self._to_db_time(latest)))
            next_id = int(conn.execute(self._sql("SELECT COALESCE(MAX(id), 0) + 1 "
                                                 "FROM {events}")).fetchone()[0])
            plan = plan_ingest(incoming, known, candidates, next_id, policy)
            self._insert(conn, "{events}", EVENT_COLUMNS, plan.new_events)
            for old, new in plan.changed:
                if not self._compare_and_set(conn, old, new):  # not under the ingest lock
                    raise ConflictError(old.id, old.version, None)
            self._insert(conn, "{reports}", REPORT_COLUMNS, plan.reports)
            self._insert(conn, "{audit}", AUDIT_COLUMNS, plan.audit)
        return plan

    def _known_keys(self, conn: Any, keys: set[tuple[str, str]],
                    chunk: int = 500) -> set[tuple[str, str]]:
        """Which of ``keys`` are stored already; looks up only the batch, not the whole table."""
        by_source: dict[str, list[str]] = {}
        for source, source_id in sorted(keys):
            by_source.setdefault(source, []).append(source_id)
        known: set[tuple[str, str]] = set()
        for source, ids in by_source.items():
            for start in range(0, len(ids), chunk):
                part = ids[start:start + chunk]
                rows = conn.execute(self._sql(
                    "SELECT source_id FROM {reports} WHERE source = ? AND source_id IN "
                    f"({', '.join('?' * len(part))})"), (source, *part)).fetchall()
                known.update((source, str(r[0])) for r in rows)
        return known

    def update(self, event_id: int, change: Callable[[Event], tuple[Event, AuditEntry]],
               expected_version: int | None = None) -> Event:
        """Apply ``change`` to one event atomically; raises (changing nothing) on any error.

        ``change`` gets the event as stored and returns it changed plus the audit
        entry. :class:`ConflictError` when the stored version is not
        ``expected_version`` or another writer got there first.
        """
        with self._transaction() as conn:
            event = self._fetch(conn, event_id)
            if expected_version is not None and event.version != expected_version:
                raise ConflictError(event_id, expected_version, event.version)
            updated, entry = change(event)
            if not self._write_change(conn, event, updated, entry):
                now_at = conn.execute(self._sql("SELECT version FROM {events} WHERE id = ?"),
                                      (event_id,)).fetchone()
                raise ConflictError(event_id, event.version, None if now_at is None
                                    else int(now_at[0]))
        return updated

    def apply_changes(self, changes: Sequence[tuple[Event, Event, AuditEntry]]) -> list[Event]:
        """Write (as read, changed, audit) triples in one transaction; returns those applied.

        A change whose event moved on since it was read is skipped, not forced: the
        caller (e.g. supervision) decides again next time from the new state.
        """
        applied: list[Event] = []
        if not changes:
            return applied
        with self._transaction() as conn:
            for old, new, entry in changes:
                if self._write_change(conn, old, new, entry):
                    applied.append(new)
        return applied

    # ------------------------------------------------------------------- reads
    def get(self, event_id: int) -> Event:
        with self._transaction(write=False) as conn:
            return self._fetch(conn, event_id)

    def detail(self, event_id: int) -> tuple[Event, list[Report], list[AuditEntry]]:
        """One event with its reports (in reported order) and audit trail, read consistently."""
        with self._transaction(write=False) as conn:
            event = self._fetch(conn, event_id)
            reports = conn.execute(self._sql(
                f"SELECT {', '.join(REPORT_COLUMNS)} FROM {{reports}} WHERE event_id = ? "
                "ORDER BY reported_at, source, source_id"), (event_id,)).fetchall()
            audit = conn.execute(self._sql(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {{audit}} WHERE event_id = ? "
                "ORDER BY seq"), (event_id,)).fetchall()
        return (event,
                [Report(**self._values(REPORT_COLUMNS, r)) for r in reports],
                [AuditEntry(**self._values(AUDIT_COLUMNS, r)) for r in audit])

    def audit(self, event_id: int) -> list[AuditEntry]:
        return self.detail(event_id)[2]

    def events(self, status: Sequence[str] | None = None, department: str | None = None,
               cell: int | None = None, limit: int | None = None) -> list[Event]:
        """Events, newest first, optionally filtered; ``cell`` may be coarser than stored cells."""
        clauses: list[str] = []
        params: list[Any] = []
        if status:
            clauses.append(f"status IN ({', '.join('?' * len(status))})")
            params.extend(status)
        if department is not None:
            clauses.append("department = ?")
            params.append(department)
        if cell is not None:
            ranges = cell_ranges(cell)
            clauses.append("(" + " OR ".join("cell BETWEEN ? AND ?" for _ in ranges) + ")")
            params.extend(v for pair in ranges for v in pair)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = "ORDER BY received_at DESC, id DESC"
        if limit is not None:
            tail += " LIMIT ?"
            params.append(int(limit))
        with self._transaction(write=False) as conn:
            return self._select_events(conn, where, params, tail)

    def all_events(self) -> list[Event]:
        """Every event, in id order (for statistics)."""
        with self._transaction(write=False) as conn:
            return self._select_events(conn, tail="ORDER BY id")

    def overdue_candidates(self, now: datetime) -> list[Event]:
        """Open events whose due time has passed, in id order."""
        open_marks = ", ".join("?" * len(OPEN_STATUSES))
        with self._transaction(write=False) as conn:
            return self._select_events(
                conn, f"WHERE status IN ({open_marks}) AND due_at < ?",
                (*sorted(OPEN_STATUSES), self._to_db_time(now)), "ORDER BY id")

    def count_reports(self) -> int:
        with self._transaction(write=False) as conn:
            return int(conn.execute(self._sql("SELECT COUNT(*) FROM {reports}")).fetchone()[0])


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


class PostgresStore(EventStore):
    """PostgreSQL through psycopg 3; the DSN comes from an environment variable."""

    kind = "postgresql"
    placeholder = "%s"
    types = {"bigint": "BIGINT", "real": "DOUBLE PRECISION", "time": "TIMESTAMPTZ"}

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
