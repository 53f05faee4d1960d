"""The SQL of the PostgreSQL history: its two tables, and every statement run on them.

One table ``<table>`` holds a row per version (primary key ``(source, id, received)``),
``<table>_columns`` the dtypes of each source's columns. Every function takes an open
psycopg connection (autocommit, UTC); the queueing, retries and bookkeeping around them
live in :class:`store.history.postgres.PostgresHistory`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import pandas as pd

from store.history.rows import pydatetime

CONNECT_TIMEOUT = 3  # seconds


class HistoryError(RuntimeError):
    """The PostgreSQL history cannot answer (unreachable, refused, misconfigured)."""


def connect(dsn_env: str, role: str) -> Any:
    """A psycopg connection to the DSN held in ``dsn_env``; raises :class:`HistoryError`."""
    import psycopg

    dsn = os.environ.get(dsn_env)
    if not dsn:
        raise HistoryError(f"environment variable {dsn_env} (history_dsn_env) is not set")
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
    if "application_name" not in psycopg.conninfo.conninfo_to_dict(dsn):
        kwargs["application_name"] = f"citybrain:history:{role}"
    try:
        conn = psycopg.connect(dsn, **kwargs)
    except psycopg.Error as exc:
        raise HistoryError(f"cannot connect to the history database: "
                           f"{first_line(exc)}") from exc
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def split_name(table: str) -> tuple[str | None, str]:
    """``(schema or None, name)`` of a possibly schema-qualified table name."""
    schema, _, name = table.rpartition(".")
    return schema or None, name


def table_names(table: str) -> tuple[Any, Any]:
    """The identifiers of the versions table and of its ``_columns`` table."""
    from psycopg import sql

    schema, name = split_name(table)
    parts = (schema,) if schema else ()
    return sql.Identifier(*parts, name), sql.Identifier(*parts, f"{name}_columns")


def ensure_tables(conn: Any, table: str) -> None:
    """Create both tables and their indexes unless they exist."""
    from psycopg import sql

    versions, columns_table = table_names(table)
    name = split_name(table)[1]
    with conn.transaction():
        # Several workers may start at once; CREATE … IF NOT EXISTS alone can race.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [table])
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {t} (source text NOT NULL, id text NOT NULL, "
            "received timestamptz NOT NULL, time timestamptz, lat double precision, "
            "lon double precision, cell bigint, payload jsonb NOT NULL DEFAULT '{{}}', "
            "PRIMARY KEY (source, id, received))").format(t=versions))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (source, received)")
                     .format(i=sql.Identifier(f"{name}_source_received"), t=versions))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (source, time)")
                     .format(i=sql.Identifier(f"{name}_source_time"), t=versions))
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {c} (source text PRIMARY KEY, columns jsonb NOT NULL, "
            "updated timestamptz NOT NULL DEFAULT now())").format(c=columns_table))


def create_incoming(conn: Any) -> None:
    """The session's staging table that writes ``COPY`` into."""
    # Outside any transaction, so a rolled-back write cannot take it along.
    conn.execute(
        "CREATE TEMP TABLE citybrain_history_incoming (ord bigint, source text, "
        "id text, received timestamptz, time timestamptz, lat double precision, "
        "lon double precision, cell bigint, payload jsonb) ON COMMIT DELETE ROWS")


def write_rows(conn: Any, table: str, rows: list[tuple[Any, ...]],
               schemas: dict[str, list[list[str]]]) -> None:
    """Store ``rows`` (``ord`` first, as :func:`store.history.rows.encode` made them) and
    the changed ``schemas``, in one transaction."""
    from psycopg import sql

    versions, columns_table = table_names(table)
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
                "EXCLUDED.payload)").format(t=versions))
        for source, schema in schemas.items():
            conn.execute(sql.SQL(
                "INSERT INTO {c} (source, columns) VALUES (%s, %s::jsonb) "
                "ON CONFLICT (source) DO UPDATE SET columns = EXCLUDED.columns, "
                "updated = now()").format(c=columns_table), [source, json.dumps(schema)])


def delete_before(conn: Any, table: str, cutoff: pd.Timestamp) -> int:
    """Delete versions received before ``cutoff``; returns the rows deleted."""
    from psycopg import sql

    versions, columns_table = table_names(table)
    deleted = 0
    # Per source, so each delete is a range on the (source, received) index.
    sources = [r[0] for r in conn.execute(
        sql.SQL("SELECT source FROM {c}").format(c=columns_table))]
    for source in sources:
        cursor = conn.execute(
            sql.SQL("DELETE FROM {t} WHERE source = %s AND received < %s").format(t=versions),
            [source, pydatetime(cutoff)])
        deleted += max(cursor.rowcount, 0)
    return deleted


def read_state(conn: Any, table: str, source: str, moment: pd.Timestamp,
               since: pd.Timestamp) -> tuple[list[list[str]] | None, list[tuple[Any, ...]]]:
    """The schema of ``source`` (None when it never wrote) and the latest version per id
    received by ``moment`` whose time lies in ``[since, moment]`` (floored to microseconds:
    a superset of the window, for the caller to filter exactly)."""
    from psycopg import sql

    versions, columns_table = table_names(table)
    params = {"source": source, "moment": pydatetime(moment), "since": pydatetime(since)}
    query = sql.SQL(
        "WITH candidates AS (SELECT DISTINCT id FROM {t} WHERE source = %(source)s "
        "AND received <= %(moment)s AND time >= %(since)s AND time <= %(moment)s), "
        "latest AS (SELECT DISTINCT ON (h.id) h.id, h.received, h.time, h.lat, h.lon, "
        "h.cell, h.payload FROM {t} AS h JOIN candidates USING (id) "
        "WHERE h.source = %(source)s AND h.received <= %(moment)s "
        "ORDER BY h.id, h.received DESC) "
        "SELECT * FROM latest WHERE time >= %(since)s AND time <= %(moment)s "
        "ORDER BY received, id").format(t=versions)
    found = conn.execute(sql.SQL("SELECT columns FROM {c} WHERE source = %s")
                         .format(c=columns_table), [source]).fetchone()
    if found is None:
        return None, []
    return found[0], conn.execute(query, params).fetchall()


def read_span(conn: Any, table: str, sources: Iterable[str] | None) -> tuple[Any, Any] | None:
    """Earliest and latest ``received`` stored of ``sources`` (all when None), as the
    driver returns them."""
    from psycopg import sql

    versions, columns_table = table_names(table)
    names = sql.SQL("SELECT source FROM {c}").format(c=columns_table) if sources is None \
        else sql.SQL("SELECT unnest(%(sources)s::text[])")
    query = sql.SQL(
        "SELECT min(lo), max(hi) FROM ({names}) AS s(name), LATERAL (SELECT min(received) "
        "AS lo, max(received) AS hi FROM {t} WHERE source = s.name) AS bounds"
    ).format(names=names, t=versions)
    params = {} if sources is None else {"sources": list(sources)}
    return conn.execute(query, params).fetchone()  # type: ignore[no-any-return]


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (driver errors run over several)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
