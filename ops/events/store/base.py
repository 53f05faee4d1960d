"""The event store's SQL, once for both back-ends: transactions, compare-and-set, queries.

:class:`EventStore` holds everything but how to connect and how to type a time;
:mod:`~ops.events.store.sqlite` and :mod:`~ops.events.store.postgres` say that.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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
from ops.events.store.schema import (
    AUDIT_COLUMNS,
    EVENT_COLUMNS,
    MUTABLE_COLUMNS,
    REPORT_COLUMNS,
    SCHEMA,
    TIME_COLUMNS,
    cell_ranges,
)


class StoreError(RuntimeError):
    """The store cannot be opened or used (missing DSN, closed store, driver missing)."""


class EventStore:
    """Events, reports and audit in SQL; subclasses say how to connect and type columns."""

    kind = ""
    placeholder = "?"
    types: dict[str, str] = {}
    #: What makes a SELECT lock its rows until commit ("" where the transaction does).
    lock_rows = ""

    def __init__(self, table_prefix: str = "", max_idle: int = 4) -> None:
        self.events_table = f"{table_prefix}events"
        self.reports_table = f"{table_prefix}reports"
        self.audit_table = f"{table_prefix}audit"
        self.documents_table = f"{table_prefix}documents"
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
                           audit=self.audit_table, documents=self.documents_table)
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
            for statement in SCHEMA:
                conn.execute(self._sql(statement.replace("{statuses}", statuses)
                                       .replace("{bigint}", self.types["bigint"])
                                       .replace("{real}", self.types["real"])
                                       .replace("{time}", self.types["time"])))

    def drop_tables(self) -> None:
        """Drop this store's three tables (for tests and throwaway stores)."""
        with self._transaction() as conn:
            for table in (self.documents_table, self.audit_table, self.reports_table,
                          self.events_table):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    def close(self) -> None:
        """Close pooled connections and refuse further use; the data stays in the database."""
        with self._pool_lock:
            self._closed = True
        self.release_connections()

    # --------------------------------------------------------------- documents
    def read_document(self, name: str) -> dict[str, Any] | None:
        """A shared document (e.g. the alert book) stored under ``name``; None when absent."""
        with self._transaction(write=False) as conn:
            row = conn.execute(self._sql("SELECT body FROM {documents} WHERE name = ?"),
                               (name,)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def update_document(self, name: str,
                        change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> dict[str, Any]:
        """Replace the document ``name`` by ``change(stored)`` in one transaction holding its row."""
        with self._transaction() as conn:
            conn.execute(self._sql("INSERT INTO {documents} (name, body, updated_at) "
                                   "VALUES (?, NULL, ?) ON CONFLICT (name) DO NOTHING"),
                         (name, self._to_db_time(datetime.now(UTC))))
            row = conn.execute(self._sql(f"SELECT body FROM {{documents}} WHERE name = ? "
                                         f"{self.lock_rows}"), (name,)).fetchone()
            document = change(None if row[0] is None else json.loads(row[0]))
            conn.execute(self._sql("UPDATE {documents} SET body = ?, updated_at = ? WHERE name = ?"),
                         (json.dumps(document), self._to_db_time(datetime.now(UTC)), name))
        return document

    # --------------------------------------------------------- row conversions
    def _row(self, columns: Sequence[str], record: Any) -> tuple[Any, ...]:
        return tuple(self._to_db_time(getattr(record, c)) if c in TIME_COLUMNS
                     else getattr(record, c) for c in columns)

    def _values(self, columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        return {c: self._from_db_time(v) if c in TIME_COLUMNS else v
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
               cell: int | None = None, limit: int | None = None,
               before: tuple[datetime, int] | None = None) -> list[Event]:
        """Events, newest first (``received_at`` then ``id``, both never change), optionally
        filtered; ``cell`` may be coarser than stored cells.

        ``before`` is a keyset position ``(received_at, id)``: only events ordered after
        it are listed, so a caller walking pages neither repeats nor skips an event when
        others are inserted meanwhile.
        """
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
        if before is not None:
            at = self._to_db_time(before[0])
            clauses.append("(received_at < ? OR (received_at = ? AND id < ?))")
            params.extend((at, at, int(before[1])))
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
