"""The postgis adapter: one psycopg 3 connection per source, reopened once when dropped.

See :mod:`data.postgis` for the options; the SQL is built in :mod:`data.postgis.query`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from data.base import AdapterBase, AdapterContext, Batch, SourceError, normalise
from data.postgis.options import import_psycopg, parse_options
from data.postgis.query import GEOMETRY_TYPE_COLUMN, PostgisQuery
from geo.crs import CHINA_DATUMS

if TYPE_CHECKING:
    import psycopg

    from config.city import Source

log = logging.getLogger(__name__)


class PostgisAdapter(AdapterBase):
    """Rows of a PostgreSQL table or query; points or areas, optionally from PostGIS geometry.

    ``snapshot()`` reads everything within ``bbox`` / ``time_window``; with
    ``cursor_column``, ``updates(since)`` reads only rows whose cursor is greater than
    ``since``, in cursor order, at most ``limit`` per call. Without a cursor column
    ``updates`` is a fresh snapshot.
    """

    name = "postgis"
    options = frozenset({
        "dsn", "dsn_env", "password_env", "table", "query", "geometry_column", "bbox",
        "time_window", "cursor_column", "limit", "connect_timeout",
    })
    required_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Validate the options when the config loads, not at the first read."""
        parse_options(where, options, fields)

    def __init__(self, source: Source, context: AdapterContext) -> None:
        super().__init__(source, context)
        self.settings = parse_options(f"[[sources]] {source.name!r}", source.options,
                                      source.fields)
        self._connection: psycopg.Connection[Any] | None = None
        self.query = PostgisQuery(self.settings, self.source, self.role, context)
        # One source may be refreshed from a poller and a request at once; psycopg
        # serialises a connection's queries, this keeps connect/reconnect single too.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> Batch:
        """Every row within the configured box and window; ``cursor`` is the newest seen."""
        started = datetime.now(UTC)
        raw, cursor, rejected, _ = self._read(since=None, incremental=False)
        batch = self._batch(raw, rejected)
        batch.replace = True
        batch.cursor = cursor if self.settings.cursor_column else started
        return batch

    def updates(self, since: Any) -> Batch:
        """Rows past cursor ``since`` (appended), or a fresh snapshot without a cursor column."""
        if self.settings.cursor_column is None:
            return self.snapshot()
        raw, cursor, rejected, full = self._read(since=since, incremental=True)
        batch = self._batch(raw, rejected)
        batch.replace = False
        batch.cursor = since if cursor is None else cursor
        if full:
            batch.warnings += (f"read {self.settings.limit} rows, the limit per update; "
                               "the rest follow on the next updates",)
        return batch

    def explain(self, since: Any = None) -> str:
        """PostgreSQL's plan for the snapshot query (or the updates query past ``since``).

        Shows where the box, window and cursor filters run, e.g. as an index condition.
        """
        rows = self._run(lambda conn: self.query.explain(conn, since))
        return "\n".join(str(row[0]) for row in rows)

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    # --------------------------------------------------------------- internals
    def _batch(self, raw: pd.DataFrame, rejected: Counter[str]) -> Batch:
        source = self.source
        if self.query.geometry_column() is not None and source.crs.upper() not in CHINA_DATUMS:
            # PostGIS already returned WGS84; GCJ-02/BD-09 shifts are left to normalise.
            source = replace(source, crs="EPSG:4326")
        batch = normalise(raw, source, self.role, self.context)
        batch.rejected.update(rejected)
        return batch

    def _read(self, since: Any, incremental: bool) -> tuple[pd.DataFrame, Any, Counter[str], bool]:
        names, rows = self._run(lambda conn: self._select(conn, since, incremental))
        rejected: Counter[str] = Counter()
        cursor = None
        cursor_column = self.settings.cursor_column
        if cursor_column is not None and cursor_column in names:
            # The cursor moves past rejected rows too, or they would be read forever.
            position = names.index(cursor_column)
            values = [row[position] for row in rows if row[position] is not None]
            cursor = max(values) if values else None
        raw = pd.DataFrame.from_records(rows, columns=names)
        raw = self._decode_geometry(raw, rejected)
        full = incremental and len(rows) >= self.settings.limit
        return raw, cursor, rejected, full

    def _decode_geometry(self, raw: pd.DataFrame, rejected: Counter[str]) -> pd.DataFrame:
        if self.role.geometry == "area":
            import geopandas as gpd
            import shapely

            column = self.query.area_geometry_name()
            values = [None if v is None else bytes(v) for v in raw[column]]
            crs = None if self.source.crs.upper() in CHINA_DATUMS else "EPSG:4326"
            raw[column] = shapely.from_wkb(values)
            return gpd.GeoDataFrame(raw, geometry=column, crs=crs)
        if GEOMETRY_TYPE_COLUMN in raw.columns:
            kind = raw[GEOMETRY_TYPE_COLUMN]
            not_point = kind.notna() & kind.ne("ST_Point")
            if not_point.any():
                rejected["not a point"] += int(not_point.sum())
                raw = raw.loc[~not_point]
            raw = raw.drop(columns=[GEOMETRY_TYPE_COLUMN])
        return raw


    def _run(self, work: Any) -> Any:
        """Run ``work(connection)``; reopen a dropped connection once, map errors."""
        psycopg = import_psycopg()
        with self._lock:
            for attempt in (1, 2):
                fresh = self._connection is None or self._connection.closed
                conn = self._connect() if fresh else self._connection
                assert conn is not None
                try:
                    return work(conn)
                except SourceError:
                    raise
                except psycopg.Error as exc:
                    self.query.forget_srid()
                    lost = conn.closed or conn.broken
                    if lost:
                        self._drop_connection()
                        if not fresh and attempt == 1:
                            log.info("source %s: connection to %s lost (%s); reconnecting",
                                     self.source.name, self._where(), _first_line(exc))
                            continue
                        raise SourceError(f"lost the connection to PostgreSQL at "
                                          f"{self._where()}: {_first_line(exc)}") from exc
                    raise SourceError(self._query_error(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _dsn(self) -> str:
        settings = self.settings
        if settings.dsn is not None:
            return settings.dsn
        assert settings.dsn_env is not None
        dsn = os.environ.get(settings.dsn_env)
        if not dsn:
            raise SourceError(f"environment variable {settings.dsn_env} (dsn_env) is not set")
        return dsn

    def _where(self) -> str:
        """``host:port/dbname`` of the configured server, for messages (never the password)."""
        psycopg = import_psycopg()
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._dsn())
        except (SourceError, psycopg.Error):
            return "(unknown server)"
        host = info.get("host") or info.get("hostaddr") or "local socket"
        return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"

    def _connect(self) -> psycopg.Connection[Any]:
        psycopg = import_psycopg()
        settings = self.settings
        dsn = self._dsn()
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, math.ceil(settings.connect_timeout)),
            "autocommit": True,
        }
        if "application_name" not in psycopg.conninfo.conninfo_to_dict(dsn):
            kwargs["application_name"] = f"citybrain:{self.source.name}"[:63]
        if settings.password_env is not None:
            password = os.environ.get(settings.password_env)
            if password is None:
                raise SourceError(f"environment variable {settings.password_env} "
                                  "(password_env) is not set")
            kwargs["password"] = password
        try:
            conn = psycopg.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise SourceError(f"cannot connect to PostgreSQL at {self._where()}: "
                              f"{_first_line(exc)}") from exc
        try:
            # Naive timestamps mean the city's local time, as in every other adapter;
            # read-only so an operator's query cannot change the database.
            conn.execute("SELECT set_config('TimeZone', %s, false), "
                         "set_config('default_transaction_read_only', 'on', false)",
                         [self.context.timezone])
        except psycopg.Error as exc:
            conn.close()
            raise SourceError(f"PostgreSQL at {self._where()} refused the session settings: "
                              f"{_first_line(exc)}") from exc
        from psycopg.types.numeric import FloatLoader

        conn.adapters.register_loader("numeric", FloatLoader)
        self._connection = conn
        return conn

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception as exc:  # closing a dead socket may fail; it is gone either way
                log.debug("closing connection: %s", exc)
            self._connection = None
        self.query.forget_srid()

    def _query_error(self, exc: Exception) -> str:
        psycopg = import_psycopg()
        errors = psycopg.errors
        diag = getattr(exc, "diag", None)
        detail = (diag.message_primary if diag is not None else None) or _first_line(exc)
        target = self.settings.target
        if isinstance(exc, errors.UndefinedTable) and self.settings.table:
            return f"table {target!r} does not exist in {self._where()} ({detail})"
        if isinstance(exc, errors.InsufficientPrivilege):
            return f"no permission to read {target} in {self._where()}: {detail}"
        return f"PostgreSQL error reading {target} at {self._where()}: {detail}"


    def _select(self, conn: psycopg.Connection[Any], since: Any,
                incremental: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
        psycopg = import_psycopg()
        statement, params = self.query.statement(conn, since, incremental)
        try:
            cur = conn.execute(statement, params)
            rows = cur.fetchall()
        except psycopg.DataError:
            if conn.closed:
                raise
            # A value Python cannot hold ('infinity', a BC date): read times leniently
            # so the one row is rejected by normalise instead of failing the source.
            cur = conn.cursor()
            for type_name, loader in _lenient_time_loaders().items():
                cur.adapters.register_loader(type_name, loader)
            rows = cur.execute(statement, params).fetchall()
        names = [c.name for c in cur.description or ()]
        return names, rows


def _lenient_time_loaders() -> dict[str, type]:
    """Time loaders that return the text of values out of Python's range."""
    psycopg = import_psycopg()
    from psycopg.types import datetime as pg_datetime

    def lenient(base: type) -> type:
        class Lenient(base):  # type: ignore[valid-type,misc]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except psycopg.DataError:
                    return bytes(data).decode("utf-8", "replace")

        return Lenient

    return {
        "timestamp": lenient(pg_datetime.TimestampLoader),
        "timestamptz": lenient(pg_datetime.TimestamptzLoader),
        "date": lenient(pg_datetime.DateLoader),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__



__all__ = ["PostgisAdapter"]
