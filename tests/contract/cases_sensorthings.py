"""Contract case for the sensorthings adapter: the sample as Things of a local SensorThings 1.1 service.

Each sample row is a Thing (``@iot.id`` = the row's id) with one GeoJSON Location
(none for the row without coordinates), the row's agency, status and closing time
as Thing ``properties``, and one Datastream named after the row's category whose
latest Observation carries the row's time. Pages of five Things make the adapter
follow ``@iot.nextLink``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.contract.cases_files import make_adapter
from tests.contract.sample import all_rows, source_table
from tests.http_fixtures import SensorThingsServer, sensorthings_thing, with_utc_zone


def sensorthings_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    server = SensorThingsServer().start()
    request.addfinalizer(server.stop)
    server.things = [
        sensorthings_thing(
            server.endpoint, row["id"], f"Request {row['id']}",
            properties={"agency": row["agency"], "status": row["status"],
                        "closed_time": with_utc_zone(row["closed_time"])},
            location=None if row["lat"] is None else (row["lon"], row["lat"]),
            datastreams=[{"id": f"{row['id']}-count", "name": row["category"], "unit": "1",
                          "observation": (with_utc_zone(row["time"]), 1)}],
        )
        for row in all_rows()
    ]
    table = source_table("sensorthings", endpoint=server.endpoint, page_size=5)
    table.update(id="thing_id", category="datastream", agency="properties.agency",
                 status="properties.status", closed_time="properties.closed_time")
    return make_adapter(tmp_path, table)


CASES = {"sensorthings": sensorthings_case}
