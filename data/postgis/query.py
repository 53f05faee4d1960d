"""The SQL a postgis source runs: built from its options, the relation's columns and its SRID.

Identifiers from the config (table, columns) are always quoted with
:class:`psycopg.sql.Identifier`, values always travel as query parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from data.base import AdapterContext, SourceError
from data.postgis.options import PostgisSettings
from geo.crs import CHINA_DATUMS

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from config.city import Source
    from layers.base import Role

#: Extra column the point query returns so non-point geometries are counted, not guessed at.
GEOMETRY_TYPE_COLUMN = "citybrain_geometry_type"

_TIME_TYPES = frozenset({"timestamp", "timestamptz", "date"})
_NUMBER_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric", "oid"})


@dataclass(frozen=True)
class _Probe:
    """What the adapter learns about the relation before each read."""

    columns: dict[str, str]  # name → PostgreSQL type name ("" when not a built-in type)
    srid: int | None  # of the geometry column's first non-null value



class PostgisQuery:
    """The statements for one source; remembers its geometry SRID per connection."""

    def __init__(self, settings: PostgisSettings, source: Source, role: Role,
                 context: AdapterContext) -> None:
        self.settings = settings
        self.source = source
        self.role = role
        self.context = context
        # The geometry SRID costs a query (a whole run of a ``query`` source, at worst);
        # it is learnt once per connection and forgotten on any error.
        self._srid: int | None = None

    def forget_srid(self) -> None:
        """After an error or a new connection: learn the SRID again on the next read."""
        self._srid = None

    def area_geometry_name(self) -> str:
        return self.source.fields.get("geometry", "geometry")

    def geometry_column(self) -> str | None:
        """The PostGIS column to read geometry from; area roles always have one."""
        if self.settings.geometry_column is not None:
            return self.settings.geometry_column
        return self.area_geometry_name() if self.role.geometry == "area" else None

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
        geometry = self.geometry_column()
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

    def statement(self, conn: psycopg.Connection[Any], since: Any,
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
        geometry = self.geometry_column()
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
                computed[self.area_geometry_name()] = sql.SQL("ST_AsBinary({})").format(wgs84)
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
        now = self.context.clock.now().to_pydatetime(warn=False)
        cutoff = now - timedelta(seconds=self.settings.time_window)
        if kind in _TIME_TYPES:
            return sql.SQL("{} >= {}").format(col(column), value("cutoff", cutoff))
        if kind in _NUMBER_TYPES:
            # Epoch numbers, milliseconds when too large to be seconds (as parse_times reads them).
            return sql.SQL("(CASE WHEN abs({c}) > 1e11 THEN {c} / 1000.0 ELSE {c} END) >= {v}"
                           ).format(c=col(column), v=value("cutoff", cutoff.timestamp()))
        raise SourceError(f"{self.settings.target}: time_window needs a timestamp, date or epoch "
                          f"number column; {column!r} is {kind or 'another type'}")

    def explain(self, conn: psycopg.Connection[Any], since: Any) -> list[tuple[Any, ...]]:
        from psycopg import sql

        statement, params = self.statement(conn, since, since is not None)
        return conn.execute(sql.SQL("EXPLAIN ") + statement, params).fetchall()


__all__ = ["GEOMETRY_TYPE_COLUMN", "PostgisQuery"]
