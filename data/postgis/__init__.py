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

from data.postgis.adapter import PostgisAdapter
from data.postgis.options import PostgisSettings, parse_options
from data.postgis.query import PostgisQuery

__all__ = ["PostgisAdapter", "PostgisQuery", "PostgisSettings", "parse_options"]
