"""Contract case for the ngsi-ld adapter: the sample as entities of a local NGSI-LD broker.

Each sample row is a ``ServiceRequest`` entity in the normalized representation:
its id in a ``requestId`` Property (the entity id is a URN), ``category``,
``agency`` and ``status`` Properties, ``dateObserved`` / ``dateClosed`` as
DateTime values and a ``location`` GeoProperty (GeoJSON: [lon, lat]; none for the
row without coordinates). Pages of five make the adapter page by offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.contract.cases_files import make_adapter
from tests.contract.sample import all_rows, source_table
from tests.http_fixtures import NgsiLdServer, with_utc_zone


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _entity(row: dict[str, Any]) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:ServiceRequest:{row['id']}",
        "type": "ServiceRequest",
        "requestId": _property(row["id"]),
        "category": _property(row["category"]),
        "agency": _property(row["agency"]),
        "status": _property(row["status"]),
        "dateObserved": _property({"@type": "DateTime", "@value": with_utc_zone(row["time"])}),
    }
    if row["closed_time"] is not None:
        entity["dateClosed"] = _property({"@type": "DateTime", "@value": with_utc_zone(row["closed_time"])})
    if row["lat"] is not None:
        entity["location"] = {"type": "GeoProperty",
                              "value": {"type": "Point", "coordinates": [row["lon"], row["lat"]]}}
    return entity


def ngsild_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    server = NgsiLdServer([_entity(row) for row in all_rows()]).start()
    request.addfinalizer(server.stop)
    table = source_table("ngsi-ld", endpoint=server.url, entity_type="ServiceRequest",
                         page_size=5)
    table.update(id="requestId", time="dateObserved", closed_time="dateClosed")
    return make_adapter(tmp_path, table)


CASES = {"ngsi-ld": ngsild_case}
