"""PostgreSQL / PostGIS tables and queries as a source.

The adapter selects rows with psycopg 3, does the heavy filtering (bounding box,
time window, incremental cursor) in SQL where indexes can serve it, and hands a
frame of raw columns to :func:`data.base.normalise` like every other adapter.
A PostGIS geometry column is reprojected to WGS84 by PostGIS itself (its own
``spatial_ref_sys``), so a table stored in a local projection such as NY State
Plane (EPSG:2263) needs no ``crs`` key.

Example::

    [[sources]]
    name = "requests-db"
    layer = "government"
    role = "requests"
    adapter = "postgis"
    dsn = "host=db.city.local port=5432 dbname=ops user=citybrain"
    password_env = "CITY_DB_PASSWORD"
    table = "public.service_requests"
    geometry_column = "geom"
    cursor_column = "updated_at"
    time_window = "7d"
    id = "request_id"
    time = "created_at"

Identifiers from the config (table, columns) are always quoted with
:class:`psycopg.sql.Identifier`, values always travel as query parameters. A
``query`` source is operator-written SQL from the config file: it runs as a
sub-select in a read-only session, so it cannot change the database.

One connection is kept per source. A connection the server dropped (restart,
fail-over, idle kill) is noticed on the next read and reopened once before the
read fails, so a database that comes back needs no restart of citybrain.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from config.kit import ConfigError, env_name, parse_duration
from data.base import AdapterBase, AdapterContext, Batch, SourceError, normalise
from geo.crs import CHINA_DATUMS

if TYPE_CHECKING:
    from types import ModuleType

    import psycopg
    from psycopg import sql

    from config.city import Source

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50_000
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Extra column the point query returns so non-point geometries are counted, not guessed at.
GEOMETRY_TYPE_COLUMN = "citybrain_geometry_type"

_TIME_TYPES = frozenset({"timestamp", "timestamptz", "date"})
_NUMBER_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric", "oid"})


def _import_psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError as exc:  # the driver is an optional extra
        raise SourceError("the postgis adapter needs psycopg 3: "
                          "pip install 'citybrain[postgis]'") from exc
    return psycopg


@dataclass(frozen=True)
class PostgisSettings:
    """The adapter's options, checked once (see :func:`parse_options`)."""

    dsn: str | None
    dsn_env: str | None
    password_env: str | None
    table: tuple[str, ...] | None
    query: str | None
    geometry_column: str | None
    bbox: tuple[float, float, float, float] | None
    time_window: float | None
    cursor_column: str | None
    limit: int
    connect_timeout: float

    @property
    def target(self) -> str:
        """How messages name what is read: the table, or ``query``."""
        return ".".join(self.table) if self.table else "query"


def _identifier(where: str, value: Any) -> str:
    # Identifier() quotes anything safely; this only refuses what cannot be a name.
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 63:
        raise ConfigError(f"{where}: expected a column or table name (1-63 characters), "
                          f"got {value!r}")
    return value


def _table_name(where: str, value: Any) -> tuple[str, ...]:
    parts = value.split(".") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or not 1 <= len(parts) <= 2:
        raise ConfigError(f"{where}: expected 'table' or 'schema.table' (or a list "
                          f"['schema', 'table'] for names with dots), got {value!r}")
    return tuple(_identifier(where, p) for p in parts)


def _bbox(where: str, value: Any) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected [west, south, east, north] in degrees, "
                          f"got {value!r}") from exc
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ConfigError(f"{where}: {value!r} is not a [west, south, east, north] box "
                          "in WGS84 degrees")
    return west, south, east, north


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def parse_options(where: str, options: Mapping[str, Any],
                  fields: Mapping[str, str] | None = None) -> PostgisSettings:
    """Check a postgis source's options; every mistake is a :class:`ConfigError`.

    ``fields`` is the source's field mapping, needed to check ``time_window``.
    """
    dsn, dsn_env = options.get("dsn"), options.get("dsn_env")
    if (dsn is None) == (dsn_env is None):
        raise ConfigError(f"{where}: set exactly one of 'dsn' (a libpq connection string) or "
                          "'dsn_env' (the environment variable holding it)")
    if dsn is not None:
        psycopg = _import_psycopg()
        try:
            parsed = psycopg.conninfo.conninfo_to_dict(str(dsn))
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"{where}.dsn: not a valid connection string: {exc}") from exc
        if "password" in parsed:
            raise ConfigError(f"{where}.dsn: a password does not belong in the config file; "
                              "name the environment variable holding it with password_env")
    table, query = options.get("table"), options.get("query")
    if (table is None) == (query is None):
        raise ConfigError(f"{where}: set exactly one of 'table' or 'query'")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise ConfigError(f"{where}.query: expected a SELECT statement, got {query!r}")
    time_window = options.get("time_window")
    if time_window is not None and "time" not in (fields or {}):
        raise ConfigError(f"{where}.time_window: needs the time column mapped (time = \"…\")")
    limit = options.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"{where}.limit: expected a whole number of rows >= 1, got {limit!r}")
    return PostgisSettings(
        dsn=None if dsn is None else str(dsn),
        dsn_env=env_name(f"{where}.dsn_env", dsn_env, optional=True),
        password_env=env_name(f"{where}.password_env", options.get("password_env"), optional=True),
        table=None if table is None else _table_name(f"{where}.table", table),
        query=None if query is None else str(query).strip().rstrip(";").strip(),
        geometry_column=(None if options.get("geometry_column") is None
                         else _identifier(f"{where}.geometry_column", options["geometry_column"])),
        bbox=None if options.get("bbox") is None else _bbox(f"{where}.bbox", options["bbox"]),
        time_window=(None if time_window is None
                     else parse_duration(f"{where}.time_window", time_window)),
        cursor_column=(None if options.get("cursor_column") is None
                       else _identifier(f"{where}.cursor_column", options["cursor_column"])),
        limit=limit,
        connect_timeout=_positive(f"{where}.connect_timeout",
                                  options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
    )


@dataclass(frozen=True)
class _Probe:
    """What the adapter learns about the relation before each read."""

    columns: dict[str, str]  # name → PostgreSQL type name ("" when not a built-in type)
    srid: int | None  # of the geometry column's first non-null value


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
        # The geometry SRID costs a query (a whole run of a ``query`` source, at worst);
        # it is learnt once per connection and forgotten on any error.
        self._srid: int | None = None
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
        rows = self._run(lambda conn: self._explain(conn, since))
        return "\n".join(str(row[0]) for row in rows)

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    # --------------------------------------------------------------- internals
    def _batch(self, raw: pd.DataFrame, rejected: Counter[str]) -> Batch:
        source = self.source
        if self._geometry_column() is not None and source.crs.upper() not in CHINA_DATUMS:
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

            column = self._area_geometry_name()
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

    def _area_geometry_name(self) -> str:
        return self.source.fields.get("geometry", "geometry")

    def _geometry_column(self) -> str | None:
        """The PostGIS column to read geometry from; area roles always have one."""
        if self.settings.geometry_column is not None:
            return self.settings.geometry_column
        return self._area_geometry_name() if self.role.geometry == "area" else None

    def _run(self, work: Any) -> Any:
        """Run ``work(connection)``; reopen a dropped connection once, map errors."""
        psycopg = _import_psycopg()
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
                    self._srid = None
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
        psycopg = _import_psycopg()
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._dsn())
        except (SourceError, psycopg.Error):
            return "(unknown server)"
        host = info.get("host") or info.get("hostaddr") or "local socket"
        return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"

    def _connect(self) -> psycopg.Connection[Any]:
        psycopg = _import_psycopg()
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
        self._srid = None

    def _query_error(self, exc: Exception) -> str:
        psycopg = _import_psycopg()
        errors = psycopg.errors
        diag = getattr(exc, "diag", None)
        detail = (diag.message_primary if diag is not None else None) or _first_line(exc)
        target = self.settings.target
        if isinstance(exc, errors.UndefinedTable) and self.settings.table:
            return f"table {target!r} does not exist in {self._where()} ({detail})"
        if isinstance(exc, errors.InsufficientPrivilege):
            return f"no permission to read {target} in {self._where()}: {detail}"
        return f"PostgreSQL error reading {target} at {self._where()}: {detail}"

    # ------------------------------------------------------------------- SQL
    def _relation(self) -> sql.Composable:
        from psycopg import sql

        if self.settings.table is not None:
            return sql.Identifier(*self.settings.table)
        assert self.settings.query is not None
        # The query is the operator's SQL; '%' is doubled so psycopg leaves it alone.
        return sql.SQL("(" + self.settings.query.replace("%", "%%") + "\n)")

    def _probe(self, conn: psycopg.Connection[Any]) -> _Probe:
        from psycopg import sql

        src = sql.Identifier("src")
        cur = conn.execute(sql.SQL("SELECT * FROM {} AS {} LIMIT 0")
                           .format(self._relation(), src))
        columns: dict[str, str] = {}
        for column in cur.description or ():
            info = conn.adapters.types.get(column.type_code)
            columns[column.name] = info.name if info is not None else ""
        geometry = self._geometry_column()
        srid = None
        if geometry is not None:
            self._require_columns(columns, [(geometry, "geometry_column")])
            if self._srid is not None:
                return _Probe(columns=columns, srid=self._srid)
            row = conn.execute(
                sql.SQL("SELECT ST_SRID({g}) FROM {rel} AS {src} WHERE {g} IS NOT NULL LIMIT 1")
                .format(g=sql.Identifier("src", geometry), rel=self._relation(), src=src)
            ).fetchone()
            srid = None if row is None else int(row[0])
            self._srid = srid
        return _Probe(columns=columns, srid=srid)

    def _require_columns(self, columns: Mapping[str, str],
                         wanted: Sequence[tuple[str, str]]) -> None:
        missing = [f"{name!r} ({why})" for name, why in wanted if name not in columns]
        if missing:
            raise SourceError(f"{self.settings.target}: missing column(s) {', '.join(missing)}; "
                              f"it has: {', '.join(list(columns)[:40])}")

    def _statement(self, conn: psycopg.Connection[Any], since: Any,
                   incremental: bool) -> tuple[sql.Composed, dict[str, Any]]:
        """The SELECT for one read, and its parameters (all values are parameters)."""
        from psycopg import sql

        settings, fields, role = self.settings, self.source.fields, self.role
        probe = self._probe(conn)
        params: dict[str, Any] = {}

        def value(key: str, item: Any) -> sql.Composable:
            params[key] = item
            return sql.Placeholder(key)

        def col(name: str) -> sql.Composable:
            return sql.Identifier("src", name)

        china = self.source.crs.upper() in CHINA_DATUMS
        geometry = self._geometry_column()
        computed: dict[str, sql.Composable] = {}
        conditions: list[sql.Composable] = []
        if geometry is not None:
            geom: sql.Composable = col(geometry)
            if probe.srid == 0:
                # No SRID in the data: the source's crs says what the numbers are.
                geom = sql.SQL("ST_SetSRID({}, {})").format(geom, value("crs_srid",
                                                                        self._crs_srid()))
            wgs84 = geom if china else sql.SQL("ST_Transform({}, 4326)").format(geom)
            if role.geometry == "area":
                computed[self._area_geometry_name()] = sql.SQL("ST_AsBinary({})").format(wgs84)
            else:
                is_point = sql.SQL("ST_GeometryType({}) = 'ST_Point'").format(geom)
                # POINT(0 0) in the table's own CRS is a placeholder for "no position";
                # reprojected it would be a spot at sea, so it is passed on as (0, 0) for
                # the normaliser to reject. The inner CASE keeps ST_X off non-points.
                for key, axis in (("lat", "ST_Y"), ("lon", "ST_X")):
                    computed[fields.get(key, key)] = sql.SQL(
                        "CASE WHEN {p} THEN (CASE WHEN ST_X({g}) = 0 AND ST_Y({g}) = 0 THEN 0 "
                        "ELSE {axis}({w}) END) END").format(p=is_point, g=geom, w=wgs84,
                                                             axis=sql.SQL(axis))
                computed[GEOMETRY_TYPE_COLUMN] = sql.SQL("ST_GeometryType({})").format(geom)
            if settings.bbox is not None:
                conditions.append(self._geometry_bbox(col(geometry), wgs84, probe, value, china))
        elif settings.bbox is not None:
            conditions.append(self._latlon_bbox(col, probe, value))

        if settings.time_window is not None:
            conditions.append(self._time_condition(col, probe, value))
        cursor_column = settings.cursor_column
        if cursor_column is not None:
            self._require_columns(probe.columns, [(cursor_column, "cursor_column")])
            if incremental and since is not None:
                conditions.append(sql.SQL("{} > {}").format(col(cursor_column),
                                                            value("since", since)))

        # Unmapped lat/lon are read from columns of those names, as normalise expects.
        wanted = set(fields.values()) | set(self.source.where)
        if role.geometry == "point":
            wanted |= {fields.get("lat", "lat"), fields.get("lon", "lon")}
        if cursor_column is not None:
            wanted.add(cursor_column)
        plain = [c for c in probe.columns if c in wanted and c not in computed and c != geometry]
        select = [col(c) for c in plain]
        select += [sql.SQL("{} AS {}").format(expr, sql.Identifier(name))
                   for name, expr in computed.items()]
        if not select:
            select = [sql.SQL("NULL AS {}").format(sql.Identifier("citybrain_nothing"))]
        statement = sql.SQL("SELECT {} FROM {} AS {}").format(
            sql.SQL(", ").join(select), self._relation(), sql.Identifier("src"))
        if conditions:
            statement += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
        if incremental and cursor_column is not None:
            statement += sql.SQL(" ORDER BY {} LIMIT {}").format(
                col(cursor_column), value("limit", settings.limit))
        return statement, params

    def _crs_srid(self) -> int:
        from pyproj import CRS

        code = CRS.from_user_input(self.source.crs).to_epsg()
        if code is None:
            raise SourceError(f"{self.settings.target}: geometry has no SRID and crs "
                              f"{self.source.crs!r} has no EPSG code to give it")
        return int(code)

    def _geometry_bbox(self, geom: sql.Composable, wgs84: sql.Composable, probe: _Probe,
                       value: Any, china: bool) -> sql.Composable:
        from psycopg import sql

        assert self.settings.bbox is not None
        west, south, east, north = self.settings.bbox
        if probe.srid is None:
            # Only NULL geometries, which lie in no box.
            return sql.SQL("{} IS NOT NULL").format(geom)
        envelope = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
            value("west", west), value("south", south), value("east", east),
            value("north", north))
        if probe.srid == 4326 or china:
            if probe.srid != 4326:
                envelope = sql.SQL("ST_SetSRID({}, {})").format(envelope,
                                                                value("srid", probe.srid))
            return sql.SQL("{} && {}").format(geom, envelope)
        # && in the column's own SRID lets a GiST index answer; the box's edges are
        # densified first because they curve in a projected CRS. ST_Intersects in WGS84
        # then trims to the exact box.
        step = value("step", max(east - west, north - south) / 32)
        native = sql.SQL("ST_Transform(ST_Segmentize({}, {}), {})").format(
            envelope, step, value("native_srid", probe.srid or self._crs_srid()))
        if probe.srid == 0:
            native = sql.SQL("ST_SetSRID({}, 0)").format(native)
        return sql.SQL("{} && {} AND ST_Intersects({}, {})").format(geom, native, wgs84, envelope)

    def _latlon_bbox(self, col: Any, probe: _Probe, value: Any) -> sql.Composable:
        from psycopg import sql

        assert self.settings.bbox is not None
        lat, lon = self.source.fields.get("lat", "lat"), self.source.fields.get("lon", "lon")
        self._require_columns(probe.columns, [(lat, "lat"), (lon, "lon")])
        for name in (lat, lon):
            if probe.columns[name] not in _NUMBER_TYPES:
                raise SourceError(f"{self.settings.target}: bbox needs numeric lat/lon columns; "
                                  f"{name!r} is {probe.columns[name] or 'not a number'}")
        west, south, east, north = self.settings.bbox
        crs = self.source.crs
        if crs.upper() not in CHINA_DATUMS and crs.upper() not in ("EPSG:4326", "WGS84"):
            from pyproj import Transformer

            # Coordinates stored in a projected CRS: the box in that CRS, edges densified.
            transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
            west, south, east, north = transformer.transform_bounds(
                west, south, east, north, densify_pts=21)
        return sql.SQL("{} BETWEEN {} AND {} AND {} BETWEEN {} AND {}").format(
            col(lat), value("south", south), value("north", north),
            col(lon), value("west", west), value("east", east))

    def _time_condition(self, col: Any, probe: _Probe, value: Any) -> sql.Composable:
        from psycopg import sql

        assert self.settings.time_window is not None
        column = self.source.fields["time"]
        self._require_columns(probe.columns, [(column, "time")])
        kind = probe.columns[column]
        # The window follows the city clock (a replayed city's "now"), wall time without one.
        clock = getattr(self.context, "clock", None)
        now = clock.now().to_pydatetime(warn=False) if clock is not None else datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.settings.time_window)
        if kind in _TIME_TYPES:
            return sql.SQL("{} >= {}").format(col(column), value("cutoff", cutoff))
        if kind in _NUMBER_TYPES:
            # Epoch numbers, milliseconds when too large to be seconds (as parse_times reads them).
            return sql.SQL("(CASE WHEN abs({c}) > 1e11 THEN {c} / 1000.0 ELSE {c} END) >= {v}"
                           ).format(c=col(column), v=value("cutoff", cutoff.timestamp()))
        raise SourceError(f"{self.settings.target}: time_window needs a timestamp, date or epoch "
                          f"number column; {column!r} is {kind or 'another type'}")

    def _select(self, conn: psycopg.Connection[Any], since: Any,
                incremental: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
        psycopg = _import_psycopg()
        statement, params = self._statement(conn, since, incremental)
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

    def _explain(self, conn: psycopg.Connection[Any], since: Any) -> list[tuple[Any, ...]]:
        from psycopg import sql

        statement, params = self._statement(conn, since, since is not None)
        return conn.execute(sql.SQL("EXPLAIN ") + statement, params).fetchall()


def _lenient_time_loaders() -> dict[str, type]:
    """Time loaders that return the text of values out of Python's range."""
    psycopg = _import_psycopg()
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


__all__ = ["PostgisAdapter", "PostgisSettings", "parse_options"]
