"""Contract case for the postgis adapter: the sample as a table on the real PostgreSQL.

Coordinates are nullable floats and the request time is TEXT, so the sample's bad
rows (no coordinates, latitude 140.5, "not a time") reach the adapter as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.contract.cases_files import make_adapter
from tests.contract.sample import all_rows, source_table
from tests.pgtools import throwaway_schema


def postgis_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    from psycopg import sql

    dsn = request.getfixturevalue("postgres_dsn")
    context = throwaway_schema(dsn, prefix="cb_contract")
    conn, schema = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    table = sql.Identifier(schema, "requests")
    conn.execute(sql.SQL(
        "CREATE TABLE {} (id text PRIMARY KEY, time text, lat double precision, "
        "lon double precision, category text, agency text, status text, "
        "closed_time timestamp)").format(table))
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%(id)s, %(time)s, %(lat)s, %(lon)s, %(category)s, "
                    "%(agency)s, %(status)s, %(closed_time)s::timestamp)").format(table),
            all_rows())
    return make_adapter(tmp_path, source_table("postgis", table=f"{schema}.requests", dsn=dsn))


CASES = {"postgis": postgis_case}
