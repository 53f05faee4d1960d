"""Writing and reading the PostgreSQL history without ever holding ingest up (see :mod:`store.history`).

:class:`PostgresHistory` queues the batches ingest hands it, writes them on its own
thread (grouped, retried with backoff while PostgreSQL is down, bounded by the
backlog, dropped and remembered as holes beyond it), knows when it holds every
version a replay needs, and reports all of it to ``/api/health``. The SQL itself is
in :mod:`store.history.tables`, the row format in :mod:`store.history.rows`.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from config.clock import iso
from store.history import tables
from store.history.rows import decode, encode
from store.history.tables import HistoryError

if TYPE_CHECKING:
    from config.city import LiveSettings

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.5  # wall seconds between writes: batches are grouped, ingest is not held
CHUNK_ROWS = 20_000  # rows per write transaction
RETRY_MAX = 5.0  # longest wait between attempts while PostgreSQL is down
RETENTION_EVERY = 60.0  # wall seconds between retention passes
WARN_EVERY = 60.0  # wall seconds between repeated warnings of one kind


@dataclass
class _Pending:
    source: str
    frame: pd.DataFrame
    received: pd.Timestamp
    encoded: list[tuple[Any, ...]] | None = None
    schema: list[list[str]] | None = None


@dataclass
class _Status:
    state: Literal["starting", "ok", "unavailable", "closed"] = "starting"
    written_rows: int = 0
    dropped_rows: int = 0
    dropped_batches: int = 0
    dropped_by_reason: Counter[str] = field(default_factory=Counter)
    deleted_rows: int = 0
    last_write: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    holes: dict[str, list[list[pd.Timestamp]]] = field(default_factory=dict)



class PostgresHistory:
    """Every version of the live sources, appended to PostgreSQL (see module docs).

    >>> history = PostgresHistory("CITYBRAIN_HISTORY_DSN", now=data.clock.now)  # doctest: +SKIP
    >>> history.append("requests_311", frame, received)                          # doctest: +SKIP
    >>> history.state_at("requests_311", moment, window=3600.0)                  # doctest: +SKIP
    """

    def __init__(self, dsn_env: str, table: str = "citybrain_history",
                 retention: float = 30 * 86400.0, backlog: int = 500_000,
                 now: Callable[[], pd.Timestamp] | None = None,
                 retention_every: float = RETENTION_EVERY) -> None:
        self.dsn_env = dsn_env
        self.table = table
        self.retention = retention
        self.backlog = backlog
        self.retention_every = retention_every
        self._now = now or (lambda: pd.Timestamp.now(tz="UTC"))
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._dropping: set[str] = set()  # sources whose last batch was dropped
        self._cond = threading.Condition()
        self._hurry = False
        self._stopping = False
        self._status = _Status()
        self._warned: dict[str, float] = {}
        self._writer_conn: Any = None
        self._schemas_written: dict[str, list[list[str]]] = {}
        self._reader_conn: Any = None
        self._reader_lock = threading.Lock()
        self._last_purge = -math.inf
        self._thread = threading.Thread(target=self._run, name="citybrain-history", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def from_settings(cls, live: LiveSettings, now: Callable[[], pd.Timestamp]) -> PostgresHistory:
        return cls(live.history_dsn_env, live.history_table, live.history_retention,
                   live.history_backlog, now)

    # ------------------------------------------------------------------ writing
    def append(self, source: str, frame: pd.DataFrame, received: pd.Timestamp) -> None:
        """Queue the versions one live source received at ``received`` (city time).

        Cheap and never blocking: encoding and writing happen on the writer thread.
        """
        if frame.empty:
            return
        with self._cond:
            if self._stopping:
                self._drop(source, frame, received, "history closed")
                return
            if self._queued_rows + len(frame) > self.backlog:
                self._drop(source, frame, received, "backlog full",
                           f"{self._queued_rows} of {self.backlog} rows waiting")
                return
            self._queue.append(_Pending(source, frame, received))
            self._queued_rows += len(frame)
            self._dropping.discard(source)

    def _drop(self, source: str, frame: pd.DataFrame, received: pd.Timestamp, reason: str,
              detail: str = "", at_tail: bool = True) -> None:
        """Count (by reason), remember and log versions that will never be written.

        Call with ``_cond`` held. ``at_tail``: the batch was refused on arrival, so
        consecutive refusals of one source make one hole.
        """
        status = self._status
        status.dropped_rows += len(frame)
        status.dropped_batches += 1
        status.dropped_by_reason[reason] += len(frame)
        holes = status.holes.setdefault(source, [])
        if at_tail and source in self._dropping:
            holes[-1][1] = received  # nothing of this source got through since: one hole
        else:
            holes.append([received, received])
        if at_tail:
            self._dropping.add(source)
        self._warn(f"drop:{reason}", "history: dropped %d row(s) of %s received at %s: %s%s "
                   "(%d dropped so far)", len(frame), source, received.isoformat(), reason,
                   f" ({detail})" if detail else "", status.dropped_rows)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is written; False if still pending at ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            while self._queue and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
                self._hurry = True
                self._cond.notify_all()
            return not self._queue

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout``), stop the writer, close connections."""
        atexit.unregister(self.close)
        if self._thread.is_alive():
            self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            left = self._queued_rows
        if left:
            log.warning("history: closed with %d row(s) not written to %s", left, self.table)
        with self._reader_lock:
            _close_quietly(self._reader_conn)
            self._reader_conn = None
        self._status.state = "closed"

    def _run(self) -> None:
        delay = 0.0
        isolate = False  # after a bad batch: write one batch at a time to find it
        while True:
            with self._cond:
                # Appends do not wake the writer: the batches of a few ingest rounds
                # gather into one write. flush() and close() do.
                if not self._stopping and not self._hurry:
                    self._cond.wait(delay or FLUSH_EVERY)
                self._hurry = False
                stopping = self._stopping
                chunk = self._head(1 if isolate else CHUNK_ROWS)
            done = rejected = False
            try:
                if chunk or self._status.state != "ok":
                    self._write(chunk)
                done, isolate = True, False
                self._maybe_purge()
                self._status.state = "ok"
                delay = 0.0
            except Exception as exc:  # keep the backlog, report, retry later
                if not done and chunk and self._bad_data(exc):
                    # The database is fine, the data is not: never retry it forever.
                    rejected = len(chunk) == 1
                    isolate = not rejected
                    delay = 0.0
                    if rejected:
                        self._reject(chunk[0], exc)
                        self._status.state = "ok"
                else:
                    self._failed(exc)
                    delay = min(max(delay * 2, 0.5), RETRY_MAX)
            with self._cond:
                if chunk and (done or rejected):
                    for _ in range(len(chunk)):
                        self._queued_rows -= len(self._queue.popleft().frame)
                self._cond.notify_all()
                if stopping and (not self._queue or delay):
                    break
        _close_quietly(self._writer_conn)
        self._writer_conn = None

    def _head(self, max_rows: int) -> list[_Pending]:
        chunk: list[_Pending] = []
        rows = 0
        for item in self._queue:
            if chunk and rows + len(item.frame) > max_rows:
                break
            chunk.append(item)
            rows += len(item.frame)
        return chunk

    def _bad_data(self, exc: Exception) -> bool:
        import psycopg

        conn = self._writer_conn
        alive = conn is not None and not conn.closed and not conn.broken
        return alive and isinstance(exc, psycopg.DataError | ValueError | TypeError)

    def _reject(self, item: _Pending, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {tables.first_line(exc)}"
        self._status.last_error = message
        self._status.last_error_at = datetime.now(UTC)
        with self._cond:
            self._drop(item.source, item.frame, item.received, "rejected by PostgreSQL"
                       if not isinstance(exc, ValueError | TypeError) else "cannot encode",
                       message, at_tail=False)

    def _failed(self, exc: Exception) -> None:
        _close_quietly(self._writer_conn)
        self._writer_conn = None
        message = f"{type(exc).__name__}: {tables.first_line(exc)}"
        status = self._status
        status.state = "unavailable"
        status.last_error = message
        status.last_error_at = datetime.now(UTC)
        self._warn("write", "history: cannot write to %s (%s); %d row(s) waiting", self.table,
                   message, self._queued_rows)

    def _write(self, chunk: list[_Pending]) -> None:
        conn = self._writer()
        rows: list[tuple[Any, ...]] = []
        schemas: dict[str, list[list[str]]] = {}
        for item in chunk:
            if item.encoded is None:
                item.encoded, item.schema = encode(item.source, item.frame, item.received)
            rows.extend((len(rows) + i, *row) for i, row in enumerate(item.encoded))
            assert item.schema is not None
            schemas[item.source] = item.schema
        tables.write_rows(conn, self.table, rows, {
            source: schema for source, schema in schemas.items()
            if self._schemas_written.get(source) != schema})
        for source, schema in schemas.items():
            self._schemas_written[source] = schema
        self._status.written_rows += len(rows)
        if rows:
            self._status.last_write = datetime.now(UTC)

    def _writer(self) -> Any:
        if self._writer_conn is None or self._writer_conn.closed or self._writer_conn.broken:
            _close_quietly(self._writer_conn)
            self._writer_conn = None
            conn = tables.connect(self.dsn_env, "writer")
            try:
                tables.ensure_tables(conn, self.table)
                tables.create_incoming(conn)
            except BaseException:
                conn.close()
                raise
            self._writer_conn = conn
            self._schemas_written.clear()
            if self._status.state != "starting":
                log.info("history: connected to PostgreSQL again; writing %d waiting row(s)",
                         self._queued_rows)
        return self._writer_conn

    # ---------------------------------------------------------------- retention
    def _maybe_purge(self) -> None:
        if time.monotonic() - self._last_purge >= self.retention_every:
            self.purge(conn=self._writer())
            self._last_purge = time.monotonic()

    def purge(self, now: pd.Timestamp | None = None, conn: Any = None) -> int:
        """Delete versions received more than ``retention`` before ``now`` (city time).

        Runs every ``retention_every`` seconds on the writer; returns the rows deleted.
        """
        cutoff = (now if now is not None else self._now()) - pd.Timedelta(seconds=self.retention)

        def work(connection: Any) -> int:
            return tables.delete_before(connection, self.table, cutoff)

        deleted = work(conn) if conn is not None else self._read(work, missing=0)
        self._status.deleted_rows += deleted
        if deleted:
            log.info("history: deleted %d row(s) received before %s", deleted, cutoff.isoformat())
        return deleted

    # ------------------------------------------------------------------ reading
    def complete_for(self, source: str, moment: pd.Timestamp, window: float) -> bool:
        """Whether PostgreSQL holds every version of ``source`` that matters at ``moment``.

        Not when it is unreachable, when a version received by then is still queued, or
        when versions dropped from a full backlog were received in the window before it.
        """
        with self._cond:
            if self._status.state in ("unavailable", "closed"):
                return False
            # The queue is in arrival order: the first item of a source is its oldest.
            first = next((item for item in self._queue if item.source == source), None)
            if first is not None and first.received <= moment:
                return False
            since = moment - pd.Timedelta(seconds=window)
            return not any(lo <= moment and hi > since for lo, hi in
                           self._status.holes.get(source, ()))

    def state_at(self, source: str, moment: pd.Timestamp, window: float) -> pd.DataFrame:
        """The rows of ``source`` as they were at ``moment``, as :meth:`LiveStore.state_at`.

        Latest version per id received by ``moment``, kept when its time lies in the
        window ``(moment - window, moment]``. Raises :class:`HistoryError`.
        """
        since = moment - pd.Timedelta(seconds=window)

        def work(conn: Any) -> tuple[list[list[str]] | None, list[tuple[Any, ...]]]:
            return tables.read_state(conn, self.table, source, moment, since)

        schema, rows = self._read(work, missing=(None, []))
        if schema is None:
            return pd.DataFrame()  # as LiveStore.state_at with nothing logged
        frame = decode(source, schema, rows)
        if frame.empty:
            return frame
        exact = (frame["time"] > since) & (frame["time"] <= moment)
        return frame.loc[exact.fillna(False).to_numpy()].reset_index(drop=True)

    def span(self, sources: Iterable[str] | None = None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Earliest and latest ``received`` stored (of ``sources``, default all); raises
        :class:`HistoryError`."""
        names = None if sources is None else list(sources)
        row = self._read(lambda conn: tables.read_span(conn, self.table, names), missing=None)
        if row is None or row[0] is None:
            return None
        return pd.Timestamp(row[0]).tz_convert("UTC"), pd.Timestamp(row[1]).tz_convert("UTC")

    def _read(self, work: Callable[[Any], Any], missing: Any = None) -> Any:
        """Run ``work(connection)`` on the reader connection; reconnect once if it dropped.

        ``missing`` is the answer while the tables do not exist yet (nothing written).
        """
        import psycopg

        with self._reader_lock:
            for attempt in (1, 2):
                fresh = self._reader_conn is None or self._reader_conn.closed
                try:
                    if fresh:
                        self._reader_conn = tables.connect(self.dsn_env, "reader")
                    return work(self._reader_conn)
                except psycopg.errors.UndefinedTable:
                    return missing
                except psycopg.Error as exc:
                    conn = self._reader_conn
                    if conn is not None and (conn.closed or conn.broken):
                        _close_quietly(conn)
                        self._reader_conn = None
                        if not fresh and attempt == 1:
                            continue
                    raise HistoryError(f"PostgreSQL history {self.table}: "
                                       f"{tables.first_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ plumbing
    def _warn(self, kind: str, message: str, *args: Any) -> None:
        # An outage repeats the same failure every retry: say it once a minute.
        now = time.monotonic()
        if now - self._warned.get(kind, -math.inf) >= WARN_EVERY:
            self._warned[kind] = now
            log.warning(message, *args)

    def status(self) -> dict[str, Any]:
        """What ``/api/health`` says of the history."""
        status = self._status
        with self._cond:
            oldest = self._queue[0].received if self._queue else None
            backlog = self._queued_rows
            batches = len(self._queue)
        return {
            "store": "postgresql", "table": self.table, "status": status.state,
            "backlog_rows": backlog, "backlog_batches": batches,
            "oldest_waiting": None if oldest is None else oldest.isoformat(),
            "written_rows": status.written_rows, "dropped_rows": status.dropped_rows,
            "dropped_batches": status.dropped_batches,
            "dropped_by_reason": dict(sorted(status.dropped_by_reason.items())),
            "deleted_rows": status.deleted_rows,
            "retention_seconds": self.retention,
            "last_write": iso(status.last_write, "seconds"), "last_error": status.last_error,
            "last_error_at": iso(status.last_error_at, "seconds"),
        }

    @property
    def healthy(self) -> bool:
        """False while PostgreSQL is unreachable (rows wait in the backlog)."""
        return self._status.state in ("starting", "ok")


def _close_quietly(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as exc:  # closing a dead socket may fail; it is gone either way
            log.debug("closing history connection: %s", exc)
