"""The live history in PostgreSQL: every version a streaming source received, for replay.

In memory (:class:`store.live.LiveStore`) the history is bounded by ``[live] history``
and lost on restart. With ``[live] history_store = "postgresql"`` every version is
also appended to one table, kept for ``history_retention``, from which the time
slider rebuilds any past moment, also one this process never saw itself.

Storage
    One row per version: typed columns for what queries filter and sort on
    (``source``, ``id``, ``received``, ``time``, ``lat``, ``lon``, ``cell``) and a JSONB
    ``payload`` for the role's other columns. JSONB rather than an Arrow or Parquet
    blob because a row is small: a per-row Arrow message carries its own schema
    (hundreds of bytes), while a per-batch blob would defeat ``DISTINCT ON (id)``. JSONB
    omits missing values (most attribute columns of a stream are sparse), stays
    readable in SQL (``payload->>'status'``) and survives a change in a source's
    columns. Column dtypes are recorded once per source (table ``<table>_columns``), so
    a read rebuilds exactly the frame :meth:`LiveStore.state_at` would. Times are
    kept to the microsecond, PostgreSQL's precision (``received`` is taken on that grid
    by the pipeline, so both stores agree on what was received by a moment).

Writing
    :meth:`PostgresHistory.append` only queues the batch; a background thread
    encodes and writes queued batches (``COPY`` into a temporary table, then one
    ``INSERT … ON CONFLICT``). The primary key ``(source, id, received)`` makes a write
    idempotent: a batch retried after a lost acknowledgement, or written by every
    worker of a shared live state, is stored once. While PostgreSQL is unreachable the
    queue holds up to ``history_backlog`` rows and the writer retries with backoff;
    batches beyond that are dropped, counted and logged, and the hole is remembered so
    replays across it are answered from memory. ``/api/health`` shows all of it.

Reading
    :meth:`PostgresHistory.state_at` is ``DISTINCT ON (id) … ORDER BY id, received
    DESC`` over the versions received by the moment, for the ids with a version in the
    window (an index lookup rather than a scan of all history), then the window
    filter. :func:`state_at` decides per source: PostgreSQL whenever it holds every
    version that matters for the moment (nothing older still queued, no dropped hole,
    reachable), else the in-memory log. PostgreSQL is the complete record (memory is
    trimmed and starts empty after a restart), and where both hold the data they give
    identical frames.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from config.clock import iso

if TYPE_CHECKING:
    from config.city import LiveSettings
    from store.live import LiveStore

log = logging.getLogger(__name__)

#: Which store answers a replay: ``auto`` (see module docs), or one of them explicitly.
ReplayStore = Literal["auto", "memory", "history"]

#: Frame columns stored as typed columns; the others go into ``payload``.
TYPED_COLUMNS = ("id", "time", "lat", "lon", "cell", "source")
#: LiveStore bookkeeping, never stored.
INTERNAL_COLUMNS = ("received", "_seq")

FLUSH_EVERY = 0.5  # wall seconds between writes: batches are grouped, ingest is not held
CHUNK_ROWS = 20_000  # rows per write transaction
RETRY_MAX = 5.0  # longest wait between attempts while PostgreSQL is down
RETENTION_EVERY = 60.0  # wall seconds between retention passes
CONNECT_TIMEOUT = 3  # seconds
WARN_EVERY = 60.0  # wall seconds between repeated warnings of one kind


class HistoryError(RuntimeError):
    """The PostgreSQL history cannot answer (unreachable, refused, misconfigured)."""


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
        message = f"{type(exc).__name__}: {_first_line(exc)}"
        self._status.last_error = message
        self._status.last_error_at = datetime.now(UTC)
        with self._cond:
            self._drop(item.source, item.frame, item.received, "rejected by PostgreSQL"
                       if not isinstance(exc, ValueError | TypeError) else "cannot encode",
                       message, at_tail=False)

    def _failed(self, exc: Exception) -> None:
        _close_quietly(self._writer_conn)
        self._writer_conn = None
        message = f"{type(exc).__name__}: {_first_line(exc)}"
        status = self._status
        status.state = "unavailable"
        status.last_error = message
        status.last_error_at = datetime.now(UTC)
        self._warn("write", "history: cannot write to %s (%s); %d row(s) waiting", self.table,
                   message, self._queued_rows)

    def _write(self, chunk: list[_Pending]) -> None:
        from psycopg import sql

        conn = self._writer()
        rows: list[tuple[Any, ...]] = []
        schemas: dict[str, list[list[str]]] = {}
        for item in chunk:
            if item.encoded is None:
                item.encoded, item.schema = encode(item.source, item.frame, item.received)
            rows.extend((len(rows) + i, *row) for i, row in enumerate(item.encoded))
            assert item.schema is not None
            schemas[item.source] = item.schema
        table, columns_table = self._names()
        with conn.transaction():
            if rows:
                with conn.cursor().copy(
                        "COPY citybrain_history_incoming (ord, source, id, received, time, lat, "
                        "lon, cell, payload) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                # Last version wins within a write, as in memory; a row already stored
                # (a retry, another worker) is left alone unless it differs.
                conn.execute(sql.SQL(
                    "INSERT INTO {t} AS h (source, id, received, time, lat, lon, cell, payload) "
                    "SELECT DISTINCT ON (source, id, received) source, id, received, time, lat, "
                    "lon, cell, payload FROM citybrain_history_incoming "
                    "ORDER BY source, id, received, ord DESC "
                    "ON CONFLICT (source, id, received) DO UPDATE SET time = EXCLUDED.time, "
                    "lat = EXCLUDED.lat, lon = EXCLUDED.lon, cell = EXCLUDED.cell, "
                    "payload = EXCLUDED.payload WHERE (h.time, h.lat, h.lon, h.cell, h.payload) "
                    "IS DISTINCT FROM (EXCLUDED.time, EXCLUDED.lat, EXCLUDED.lon, EXCLUDED.cell, "
                    "EXCLUDED.payload)").format(t=table))
            for source, schema in schemas.items():
                if self._schemas_written.get(source) != schema:
                    conn.execute(sql.SQL(
                        "INSERT INTO {c} (source, columns) VALUES (%s, %s::jsonb) "
                        "ON CONFLICT (source) DO UPDATE SET columns = EXCLUDED.columns, "
                        "updated = now()").format(c=columns_table), [source, json.dumps(schema)])
        for source, schema in schemas.items():
            self._schemas_written[source] = schema
        self._status.written_rows += len(rows)
        if rows:
            self._status.last_write = datetime.now(UTC)

    def _writer(self) -> Any:
        if self._writer_conn is None or self._writer_conn.closed or self._writer_conn.broken:
            _close_quietly(self._writer_conn)
            self._writer_conn = None
            conn = self._connect("writer")
            try:
                self._ensure_tables(conn)
                # Outside any transaction, so a rolled-back write cannot take it along.
                conn.execute(
                    "CREATE TEMP TABLE citybrain_history_incoming (ord bigint, source text, "
                    "id text, received timestamptz, time timestamptz, lat double precision, "
                    "lon double precision, cell bigint, payload jsonb) ON COMMIT DELETE ROWS")
            except BaseException:
                conn.close()
                raise
            self._writer_conn = conn
            self._schemas_written.clear()
            if self._status.state != "starting":
                log.info("history: connected to PostgreSQL again; writing %d waiting row(s)",
                         self._queued_rows)
        return self._writer_conn

    def _ensure_tables(self, conn: Any) -> None:
        from psycopg import sql

        table, columns_table = self._names()
        name = self._split()[1]
        with conn.transaction():
            # Several workers may start at once; CREATE … IF NOT EXISTS alone can race.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.table])
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} (source text NOT NULL, id text NOT NULL, "
                "received timestamptz NOT NULL, time timestamptz, lat double precision, "
                "lon double precision, cell bigint, payload jsonb NOT NULL DEFAULT '{{}}', "
                "PRIMARY KEY (source, id, received))").format(t=table))
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (source, received)")
                         .format(i=sql.Identifier(f"{name}_source_received"), t=table))
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (source, time)")
                         .format(i=sql.Identifier(f"{name}_source_time"), t=table))
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {c} (source text PRIMARY KEY, columns jsonb NOT NULL, "
                "updated timestamptz NOT NULL DEFAULT now())").format(c=columns_table))

    # ---------------------------------------------------------------- retention
    def _maybe_purge(self) -> None:
        if time.monotonic() - self._last_purge >= self.retention_every:
            self.purge(conn=self._writer())
            self._last_purge = time.monotonic()

    def purge(self, now: pd.Timestamp | None = None, conn: Any = None) -> int:
        """Delete versions received more than ``retention`` before ``now`` (city time).

        Runs every ``retention_every`` seconds on the writer; returns the rows deleted.
        """
        from psycopg import sql

        cutoff = (now if now is not None else self._now()) - pd.Timedelta(seconds=self.retention)
        table, columns_table = self._names()

        def work(connection: Any) -> int:
            deleted = 0
            # Per source, so each delete is a range on the (source, received) index.
            sources = [r[0] for r in connection.execute(
                sql.SQL("SELECT source FROM {c}").format(c=columns_table))]
            for source in sources:
                cursor = connection.execute(
                    sql.SQL("DELETE FROM {t} WHERE source = %s AND received < %s").format(t=table),
                    [source, _pydatetime(cutoff)])
                deleted += max(cursor.rowcount, 0)
            return deleted

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
        from psycopg import sql

        table, columns_table = self._names()
        since = moment - pd.Timedelta(seconds=window)
        params = {"source": source, "moment": _pydatetime(moment),
                  "since": _pydatetime(since)}  # floors: a superset, filtered exactly below
        query = sql.SQL(
            "WITH candidates AS (SELECT DISTINCT id FROM {t} WHERE source = %(source)s "
            "AND received <= %(moment)s AND time >= %(since)s AND time <= %(moment)s), "
            "latest AS (SELECT DISTINCT ON (h.id) h.id, h.received, h.time, h.lat, h.lon, "
            "h.cell, h.payload FROM {t} AS h JOIN candidates USING (id) "
            "WHERE h.source = %(source)s AND h.received <= %(moment)s "
            "ORDER BY h.id, h.received DESC) "
            "SELECT * FROM latest WHERE time >= %(since)s AND time <= %(moment)s "
            "ORDER BY received, id").format(t=table)

        def work(conn: Any) -> tuple[list[list[str]] | None, list[tuple[Any, ...]]]:
            found = conn.execute(sql.SQL("SELECT columns FROM {c} WHERE source = %s")
                                 .format(c=columns_table), [source]).fetchone()
            if found is None:
                return None, []
            return found[0], conn.execute(query, params).fetchall()

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
        from psycopg import sql

        table, columns_table = self._names()
        names = sql.SQL("SELECT source FROM {c}").format(c=columns_table) if sources is None \
            else sql.SQL("SELECT unnest(%(sources)s::text[])")
        query = sql.SQL(
            "SELECT min(lo), max(hi) FROM ({names}) AS s(name), LATERAL (SELECT min(received) "
            "AS lo, max(received) AS hi FROM {t} WHERE source = s.name) AS bounds"
        ).format(names=names, t=table)
        params = {} if sources is None else {"sources": list(sources)}
        row = self._read(lambda conn: conn.execute(query, params).fetchone(), missing=None)
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
                        self._reader_conn = self._connect("reader")
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
                                       f"{_first_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ plumbing
    def _connect(self, role: str) -> Any:
        import psycopg

        dsn = os.environ.get(self.dsn_env)
        if not dsn:
            raise HistoryError(f"environment variable {self.dsn_env} (history_dsn_env) is not set")
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
        if "application_name" not in psycopg.conninfo.conninfo_to_dict(dsn):
            kwargs["application_name"] = f"citybrain:history:{role}"
        try:
            conn = psycopg.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise HistoryError(f"cannot connect to the history database: "
                               f"{_first_line(exc)}") from exc
        conn.execute("SET TimeZone = 'UTC'")
        return conn

    def _split(self) -> tuple[str | None, str]:
        schema, _, name = self.table.rpartition(".")
        return schema or None, name

    def _names(self) -> tuple[Any, Any]:
        from psycopg import sql

        schema, name = self._split()
        parts = (schema,) if schema else ()
        return sql.Identifier(*parts, name), sql.Identifier(*parts, f"{name}_columns")

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


def open_history(live: LiveSettings, now: Callable[[], pd.Timestamp]) -> PostgresHistory | None:
    """The configured history store, or None when the history is kept in memory only."""
    if live.history_store != "postgresql":
        return None
    return PostgresHistory.from_settings(live, now)


def state_at(history: PostgresHistory | None, source: str, live: LiveStore,
             moment: pd.Timestamp, using: ReplayStore = "auto") -> pd.DataFrame:
    """One live source as it was at ``moment``, from PostgreSQL or from memory.

    ``auto`` asks PostgreSQL whenever it is complete for the moment
    (:meth:`PostgresHistory.complete_for`) and falls back to memory otherwise, or when
    the query fails (logged), so a replay never stops on a database outage.
    """
    if using == "memory" or history is None:
        if using == "history":
            raise ValueError("no PostgreSQL history is configured ([live] history_store)")
        return live.state_at(moment)
    if using == "history":
        return history.state_at(source, moment, live.window)
    if not history.complete_for(source, moment, live.window):
        return live.state_at(moment)
    try:
        return history.state_at(source, moment, live.window)
    except HistoryError as exc:
        history._warn("read", "history: replaying %s from memory: %s", source, exc)
        return live.state_at(moment)


# ------------------------------------------------------------------- encoding
def encode(source: str, frame: pd.DataFrame,
           received: pd.Timestamp) -> tuple[list[tuple[Any, ...]], list[list[str]]]:
    """Rows ``(source, id, received, time, lat, lon, cell, payload JSON)`` and the schema.

    The latest version per id wins, as in :meth:`LiveStore.add`. The schema lists every
    column of the frame with its dtype, so a read rebuilds the same frame.
    """
    frame = frame.drop(columns=[c for c in INTERNAL_COLUMNS if c in frame])
    frame = frame.drop_duplicates("id", keep="last")
    schema = [[str(c), str(frame[c].dtype)] for c in frame.columns]
    n = len(frame)
    ids = frame["id"].astype(str).tolist()
    times = _datetimes(frame["time"]) if "time" in frame else [None] * n
    lats = _floats(frame["lat"]) if "lat" in frame else [None] * n
    lons = _floats(frame["lon"]) if "lon" in frame else [None] * n
    cells = frame["cell"].astype("Int64").tolist() if "cell" in frame else [None] * n
    cells = [None if c is None or c is pd.NA else int(c) for c in cells]
    payload_columns = [(str(c), _json_values(frame[c])) for c in frame.columns
                       if c not in TYPED_COLUMNS]
    at = _pydatetime(received)
    rows = []
    for i in range(n):
        # Missing values are left out: sparse attribute columns cost nothing.
        payload = {name: values[i] for name, values in payload_columns if values[i] is not None}
        rows.append((source, ids[i], at, times[i], lats[i], lons[i], cells[i],
                     json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)))
    return rows, schema


def decode(source: str, schema: list[list[str]], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """The frame of ``rows`` (id, received, time, lat, lon, cell, payload) with ``schema``."""
    payloads = [r[6] or {} for r in rows]
    typed = {"id": [r[0] for r in rows], "time": [r[2] for r in rows],
             "lat": [r[3] for r in rows], "lon": [r[4] for r in rows],
             "cell": [r[5] for r in rows], "source": [source] * len(rows)}
    columns = {}
    for name, dtype in schema:
        values = typed[name] if name in typed else [p.get(name) for p in payloads]
        columns[name] = _column(values, dtype)
    return pd.DataFrame(columns)


def _column(values: list[Any], dtype_name: str) -> pd.Series:
    """A column of JSON/driver values restored to ``dtype_name``."""
    try:
        dtype = pd.api.types.pandas_dtype(dtype_name)
    except TypeError:
        return pd.Series(values, dtype=object)
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        if isinstance(dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert(dtype.tz).astype(dtype)
        return parsed.dt.tz_localize(None).astype(dtype)
    if dtype.kind == "f":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=dtype)
    try:
        return pd.Series(values, dtype=object).astype(dtype)
    except (TypeError, ValueError):  # e.g. nulls in an int column: keep what was stored
        return pd.Series(values, dtype=object).infer_objects()


def _json_values(series: pd.Series) -> list[Any]:
    """A column's values as JSON-ready Python values, None where missing."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        return [None if pd.isna(v) else v.isoformat() for v in series]
    if dtype.kind == "f":
        values = series.to_numpy(dtype=float)
        return [None if math.isnan(v) else v if math.isfinite(v) else
                ("Infinity" if v > 0 else "-Infinity") for v in values.tolist()]
    return [_plain(v) for v in series.tolist()]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def _datetimes(series: pd.Series) -> list[datetime | None]:
    if not (isinstance(series.dtype, pd.DatetimeTZDtype) or series.dtype.kind == "M"):
        series = pd.to_datetime(series, utc=True, errors="coerce")
    if getattr(series.dt, "tz", None) is None:
        series = series.dt.tz_localize("UTC")
    return [None if pd.isna(v) else v.to_pydatetime(warn=False) for v in series]


def _floats(series: pd.Series) -> list[float | None]:
    return [None if math.isnan(v) else v for v in pd.to_numeric(series, errors="coerce")
            .to_numpy(dtype=float).tolist()]


def _pydatetime(moment: pd.Timestamp) -> datetime:
    # PostgreSQL keeps microseconds; dropping the nanoseconds floors positive times.
    return pd.Timestamp(moment).to_pydatetime(warn=False)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _close_quietly(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as exc:  # closing a dead socket may fail; it is gone either way
            log.debug("closing history connection: %s", exc)


__all__ = ["PostgresHistory", "HistoryError", "ReplayStore", "open_history", "state_at",
           "encode", "decode"]
