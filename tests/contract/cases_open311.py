"""Contract case for the open311 adapter: the sample served by a local GeoReport v2 server.

Each sample row becomes a service request under the API's own keys
(``service_request_id``, ``requested_datetime``, ``lat``/``long``, ``service_name``,
``agency_responsible``, ``status``); a closed row's ``closed_time`` is its
``updated_datetime``, which the adapter reads as ``closed_datetime``. The source's
look-back reaches back to the sample's day in one date window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.contract.cases_files import make_adapter
from tests.contract.sample import all_rows, source_table
from tests.http_fixtures import Open311Server, open311_request, with_utc_zone


def _request(row: dict[str, Any]) -> dict[str, Any]:
    return open311_request(
        row["id"], with_utc_zone(row["time"]), row["lat"], row["lon"], status=row["status"],
        service_name=row["category"], updated=with_utc_zone(row["closed_time"]),
        agency_responsible=row["agency"],
    )


def open311_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    server = Open311Server([_request(row) for row in all_rows()]).start()
    request.addfinalizer(server.stop)
    days = (datetime.now(UTC) - datetime(2022, 4, 30, tzinfo=UTC)).days + 1
    table = source_table("open311", endpoint=server.endpoint, lookback=f"{days}d",
                         window=f"{days}d")
    table.update(id="service_request_id", time="requested_datetime", lon="long",
                 category="service_name", agency="agency_responsible",
                 closed_time="closed_datetime")
    return make_adapter(tmp_path, table)


CASES = {"open311": open311_case}
