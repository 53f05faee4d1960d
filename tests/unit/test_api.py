"""The read-only JSON API, through Flask's test client on the real demo app."""

from __future__ import annotations

import h3
import pytest

from layers import LAYERS
from render.figures import MapView, map_figure

DEFAULT_METRIC = {"people": "residents", "enterprises": "enterprises", "land": "units",
                  "things": "things", "government": "requests"}


def test_health_reports_sources_and_rejections(api) -> None:
    body = api.get("/api/health").get_json()
    assert body["status"] == "ok"
    names = {s["name"] for s in body["sources"]}
    assert {"nyc-311", "census-tracts", "wifi-hotspots"} <= names
    assert body["rejected_by_reason"]["missing coordinates"] == 164 + 281 + 34
    source = next(s for s in body["sources"] if s["name"] == "nyc-311")
    assert source["rows_loaded"] == 7229 and source["rows_rejected"] == 164
    assert source["last_read"] and source["last_error"] is None and source["stale"] is False


def test_layers_lists_the_five_with_default_metrics(api) -> None:
    body = api.get("/api/layers").get_json()
    assert [layer["id"] for layer in body] == list(LAYERS)
    assert {layer["id"]: layer["default_metric"] for layer in body} == DEFAULT_METRIC
    assert all(layer["title_zh"] and layer["title_en"] for layer in body)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_cells_equal_what_the_map_draws(api, demo_data, layer: str) -> None:
    rows = api.get(f"/api/layers/{layer}/cells?res=8").get_json()
    assert rows and all({"cell", "value"} <= set(r) for r in rows)
    figure, plan = map_figure(demo_data, MapView(hex_layer=layer, zoom=10.0,
                                                 center=(40.7, -74.0)))
    hexes = next(t for t in figure["data"] if t["uid"] == "hexes")
    # The map draws the city's whole grid; cells without data carry 0 (counts).
    drawn = dict(zip(hexes["locations"], hexes["z"], strict=True))
    assert plan.res == 8
    api_values = {r["cell"]: r["value"] for r in rows}
    assert set(api_values) <= set(drawn)
    assert {c for c, z in drawn.items() if z} <= set(api_values)
    decimals = demo_data.metric(layer, None).decimals
    for cell, z in drawn.items():  # drawn at the metric's precision
        assert (z or 0.0) == pytest.approx(api_values.get(cell, 0.0), abs=0.5 * 10 ** -decimals)


def test_cells_metric_and_resolution(api) -> None:
    body = api.get("/api/layers/government/cells?res=7&metric=open").get_json()
    assert sum(r["value"] for r in body) == 1612
    assert all(h3.get_resolution(r["cell"]) == 7 for r in body)
    people = api.get("/api/layers/people/cells?res=10").get_json()
    assert sum(r["value"] for r in people) == pytest.approx(8_175_133, abs=1)


@pytest.mark.parametrize(("url", "status", "text"), [
    ("/api/layers/weather/cells", 404, "unknown layer"),
    ("/api/layers/people/cells?res=12", 400, "res must be between 7 and 10"),
    ("/api/layers/people/cells?res=eight", 400, "res must be an integer"),
    ("/api/layers/people/cells?metric=nope", 400, "unknown metric 'nope'"),
    ("/api/cells/not-a-cell", 400, "not an H3 cell id"),
    ("/api/nothing-here", 404, "not found"),
])
def test_bad_requests_get_json_errors(api, url: str, status: int, text: str) -> None:
    response = api.get(url)
    assert response.status_code == status
    assert response.is_json and text in response.get_json()["error"]


def test_cell_profile_spans_all_five_layers(api) -> None:
    cell = h3.latlng_to_cell(40.7580, -73.9855, 8)  # Times Square
    body = api.get(f"/api/cells/{cell}").get_json()
    assert body["cell"] == cell and body["res"] == 8
    assert set(body["layers"]) == set(LAYERS)
    metrics = {m["name"]: m["value"] for m in body["layers"]["people"]["metrics"]}
    cells = {r["cell"]: r["value"] for r in api.get("/api/layers/people/cells?res=8").get_json()}
    assert metrics["residents"] == pytest.approx(cells[cell], abs=0.01)
    units = body["layers"]["land"]["units"]
    assert {u["source"] for u in units} >= {"boroughs", "neighbourhoods"}
    assert units[0]["units"][0]["name"] == "Manhattan"
    nearest = body["layers"]["government"]["nearest_service_points"]
    assert len(nearest) == 5
    assert nearest == sorted(nearest, key=lambda p: p["distance_km"])
    breakdowns = body["layers"]["government"]["breakdowns"]
    assert any(b["field"] == "category" for b in breakdowns)
