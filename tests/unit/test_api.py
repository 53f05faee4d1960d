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


OFFICER = {"Authorization": "Bearer duty-officer-token-for-tests-only"}


@pytest.fixture()
def officer(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Headers of the demo's operator: 311 requests and taxi pickups are person-level in
    the demo ([privacy]), so only a viewer or operator reads their small counts."""
    monkeypatch.setenv("CITYBRAIN_DUTY_OFFICER_TOKEN", "duty-officer-token-for-tests-only")
    return OFFICER


@pytest.mark.parametrize("audience", ["detail", "public"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_cells_equal_what_the_map_draws(api, demo_app, demo_data, officer, layer: str,
                                        audience: str) -> None:
    public = audience == "public"
    rows = api.get(f"/api/layers/{layer}/cells?res=8",
                   headers={} if public else officer).get_json()
    assert rows and all({"cell", "value"} <= set(r) for r in rows)
    if public:  # suppressed cells: no value on the map, null and "< 10" in the API
        hidden = {r["cell"] for r in rows if r["value"] is None}
        assert all(r["suppressed"] == "< 10" for r in rows if r["cell"] in hidden)
        assert bool(hidden) == (layer == "government")  # 311 requests: person-level
        rows = [r for r in rows if r["cell"] not in hidden]
    figure, plan = map_figure(demo_data, MapView(hex_layer=layer, zoom=10.0,
                                                 center=(40.7, -74.0)),
                              disclosure=demo_app.services.disclosure if public else None)
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


def test_cells_metric_and_resolution(api, officer) -> None:
    body = api.get("/api/layers/government/cells?res=7&metric=open", headers=officer).get_json()
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


# ------------------------------------------------- one error shape, one Services object
HALL_TOKEN = "hall-wall-token-for-tests-only"
OFFICER_TOKEN = "duty-officer-token-for-tests-only"


def _one_shape(response, status: int) -> dict:
    """The answer is ``{"error": text, "status": the HTTP status, ...}`` as JSON."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)[:200]
    body = response.get_json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["status"] == status
    return body


#: A real failure of each blueprint of the demo app: (method, url, JSON body or None, status).
ERRORS_BY_BLUEPRINT = {
    "citybrain_api": [("GET", "/api/layers/weather/cells", None, 404),
                      ("GET", "/api/cells/not-a-cell", None, 400),
                      ("DELETE", "/api/anything", None, 404)],
    "citybrain_events": [("GET", "/api/events", None, 401),                # no user
                         ("GET", "/api/events/987654321", None, 404),      # domain error
                         ("GET", "/api/events?limit=0", None, 400),
                         ("POST", "/api/events/987654321/transition", {"to": "closed"}, 403)],
    "citybrain_signs": [("GET", "/api/alerts?state=bogus", None, 400),
                        ("POST", "/api/alerts/nope/ack", {}, 403)],
}


@pytest.fixture(scope="module")
def live_app(live_config):
    """The live demo city (events and vital signs), not ingesting."""
    from app import create_app

    return create_app(live_config, start_ingest=False)


def test_every_blueprint_answers_errors_as_json_in_one_shape(
        live_app, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask

    from api import blueprints
    from api.errors import ApiError

    monkeypatch.setenv("CITYBRAIN_HALL_WALL_TOKEN", HALL_TOKEN)
    monkeypatch.setenv("CITYBRAIN_DUTY_OFFICER_TOKEN", OFFICER_TOKEN)
    client = live_app.server.test_client()
    for cases in ERRORS_BY_BLUEPRINT.values():
        for method, url, body, status in cases:
            # Reading events needs a viewer or operator (privacy by role); the wall's
            # exhibition token is what may not transition.
            token = OFFICER_TOKEN if method == "GET" and url.startswith("/api/events") \
                else HALL_TOKEN
            headers = {} if status == 401 else {"Authorization": f"Bearer {token}"}
            answer = client.open(url, method=method, json=body, headers=headers)
            _one_shape(answer, status)
            if status == 401:
                assert answer.headers["WWW-Authenticate"] == 'Bearer realm="citybrain"'
    assert _one_shape(client.get("/api/events/987654321", headers={
        "Authorization": f"Bearer {OFFICER_TOKEN}"}), 404)["id"] == 987654321
    # The exhibition wall never reads an event, not even to learn that an id is unused.
    assert _one_shape(client.get("/api/events/987654321", headers={
        "Authorization": f"Bearer {HALL_TOKEN}"}), 403)

    # Every blueprint, including any added later, answers an ApiError in the one shape.
    served = blueprints(live_app.services)
    assert {bp.name for bp in served} == {*ERRORS_BY_BLUEPRINT, "citybrain_health"}
    assert {bp.name for bp in served} <= set(live_app.server.blueprints)
    for blueprint in served:
        def fail() -> None:
            raise ApiError(418, "a teapot", kind="test")

        blueprint.add_url_rule("/__test_error", f"fail_{blueprint.name}", fail)
        bare = Flask(__name__)
        bare.register_blueprint(blueprint)
        body = _one_shape(bare.test_client().get(f"{blueprint.url_prefix}/__test_error"), 418)
        assert body == {"error": "a teapot", "status": 418, "kind": "test"}, blueprint.name


def test_create_app_exposes_one_services_object(live_app, live_config) -> None:
    from ops.events.pipeline import EventPipeline
    from ops.signs.service import VitalSigns
    from services import CallbackErrors, Services
    from store.city import CityData
    from store.ingest import IngestEngine

    services = live_app.services
    assert isinstance(services, Services)
    assert services.config is live_config
    assert isinstance(services.store, CityData) and services.store.config is live_config
    assert isinstance(services.ingest, IngestEngine)
    assert isinstance(services.events, EventPipeline)
    assert isinstance(services.signs, VitalSigns)
    assert services.auth is services.events.auth
    assert set(services.auth.users) == {"duty-officer", "analyst", "hall-wall"}
    assert services.replication is None  # one process, no shared live state
    assert isinstance(services.lineage, str) and services.lineage
    assert isinstance(services.callback_errors, CallbackErrors)
    assert live_app.server.secret_key == services.secret_key and services.secret_key
    assert not services.ingest.running  # start_ingest=False


@pytest.fixture(scope="module")
def plain_app(demo_config):
    """The demo city without its event pipeline, users and vital signs, not ingesting."""
    import dataclasses

    from app import create_app

    return create_app(dataclasses.replace(demo_config, sections={}),
                      start_ingest=False)


def test_a_city_without_events_or_signs_has_none(plain_app, live_app) -> None:
    services = plain_app.services
    assert services.events is None and services.signs is None and services.auth is None
    assert services.secret_key is None and not plain_app.server.secret_key
    assert {"citybrain_events", "citybrain_signs"}.isdisjoint(plain_app.server.blueprints)
    assert services.lineage and services.lineage != live_app.services.lineage
    _one_shape(plain_app.server.test_client().get("/api/events"), 404)  # the /api catch-all


def test_a_failed_callback_is_counted_in_health(plain_app) -> None:
    from app import on_callback_error

    client = plain_app.server.test_client()
    assert client.get("/api/health").get_json()["callback_errors"] == {"count": 0}
    plain_app._on_error(ValueError("boom"))  # what Dash calls when a callback raises
    assert plain_app.services.callback_errors.as_dict() == {"count": 1, "last": "ValueError: boom"}
    assert client.get("/api/health").get_json()["callback_errors"] == {
        "count": 1, "last": "ValueError: boom"}
    on_callback_error(ValueError("elsewhere"))  # without an app's counter: only logged


def test_docs_api_names_every_route(live_app) -> None:
    """docs/api.md lists every route the app serves under /api (parameters by any name)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    documented = {re.sub(r"<[^>]+>", "<>", path)
                  for path in re.findall(r"`(?:GET|POST) (/api/[^`?\s]*)", doc)}
    served = {re.sub(r"<[^>]+>", "<>", rule.rule).rstrip("/")
              for rule in live_app.server.url_map.iter_rules()
              if rule.rule.startswith("/api/") and "<path:" not in rule.rule}
    assert served and served <= documented, sorted(served - documented)
