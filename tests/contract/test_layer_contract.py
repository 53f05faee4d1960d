"""The layer contract: every registered layer draws hexes, points, a legend and a profile.

One parametrized test per promise over :data:`layers.LAYERS` (h3-py's "the bindings
match" test is the model), on the demo city. Then a throwaway sixth layer, defined
and registered in the test only, is served by the app with no other edit: map
hexes, points at close zoom, legend, profile and ``/api/layers``.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import h3
import pytest

from layers import LAYERS, events_layer, outline_layers
from layers.base import Field, Layer, Metric, Role
from render.figures import MapView, map_figure
from render.profile import cell_profile, cell_selector

REPO = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("geo", "config", "data", "store", "render", "ops", "services", "api", "callbacks")
MANHATTAN = (-74.02, 40.70, -73.93, 40.80)
TIMES_SQUARE = (40.7580, -73.9855)


def _trace(figure: dict, uid: str) -> dict:
    return next(t for t in figure["data"] if t["uid"] == uid)


@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_every_layer_draws_hexes_with_a_legend(demo_data, layer_id: str) -> None:
    layer = LAYERS[layer_id]
    metric = demo_data.metric(layer_id, None)
    figure, plan = map_figure(demo_data, MapView(hex_layer=layer_id, zoom=10.0,
                                                 center=(40.7, -74.0), language="en"))
    hexes = _trace(figure, "hexes")
    assert plan.mode == "hex" and hexes["type"] == "choroplethmap"
    assert len(hexes["locations"]) == len(hexes["z"]) == len(plan.grid) > 0
    assert any(z for z in hexes["z"]), "a layer with data draws some non-empty hexagon"
    # the legend: the layer's symbol and metric on the colour bar, its own colour scale
    assert hexes["colorbar"]["title"]["text"].startswith(f"{layer.symbol} {metric.title_en}")
    assert [c for _, c in hexes["colorscale"]] == list(layer.colorscale)
    assert hexes["name"] == layer.title_en


@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_every_layer_draws_points_close_up(demo_data, layer_id: str) -> None:
    layer = LAYERS[layer_id]
    point_metrics = [m for m in layer.metrics(demo_data.config.sources)
                     if m.role in layer.point_roles]
    view = MapView(hex_layer=layer_id, zoom=15.0, center=(40.75, -73.98), bbox=MANHATTAN)
    if not point_metrics:  # an area layer stays hexagons however close, and draws outlines
        _, plan = map_figure(demo_data, view)
        assert plan.mode == "hex" and layer in outline_layers()
        key = next(k for k, _, _ in demo_data.outline_choices() if k.startswith(f"{layer_id}:"))
        lats, _ = demo_data.outlines(key)
        assert len(lats) > 0
        return
    figure, plan = map_figure(demo_data, MapView(
        hex_layer=layer_id, metric=point_metrics[0].name, zoom=15.0, center=(40.75, -73.98),
        bbox=MANHATTAN))
    points = _trace(figure, "hexes")
    assert plan.mode == "points" and points["type"] == "scattermap"
    assert len(points["lat"]) == len(plan.points) > 0
    assert points["marker"]["color"] == layer.marker_colour


@pytest.mark.parametrize("layer_id", [lid for lid, layer in LAYERS.items()
                                      if layer.overlay == "points"])
def test_every_point_overlay_draws_in_its_layers_colour(demo_data, layer_id: str) -> None:
    figure, _ = map_figure(demo_data, MapView(zoom=12.0, center=(40.75, -73.98),
                                              bbox=MANHATTAN, overlays=(layer_id,)))
    overlay = _trace(figure, f"overlay-{layer_id}")
    assert overlay["lat"] and overlay["marker"]["color"] == LAYERS[layer_id].marker_colour


@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_every_layer_has_a_profile(demo_data, layer_id: str) -> None:
    layer = LAYERS[layer_id]
    cell = h3.str_to_int(h3.latlng_to_cell(*TIMES_SQUARE, 8))
    section = cell_profile(demo_data, cell)["layers"][layer_id]
    assert section["symbol"] == layer.symbol and section["title_en"] == layer.title_en
    names = [m.name for m in layer.metrics(demo_data.config.sources)]
    shown = [m["name"] for m in section["metrics"]]
    assert shown and shown == [name for name in names if name in shown]  # in the layer's order
    assert section["metrics"][0]["value"], "Times Square has something of every layer"
    expected = {(role.name, f.name) for role in layer.roles.values() if role.geometry == "point"
                for f in role.fields + role.derived_breakdowns if f.breakdown}
    assert {(b["role"], b["field"]) for b in section["breakdowns"]} <= expected
    select = cell_selector(cell)
    if any(select(rows).any() for role in layer.roles.values() if role.geometry == "point"
           and len(rows := demo_data.frame(layer_id, role.name))):
        assert section["breakdowns"], "a place with point rows breaks them down"


def test_layer_specific_profile_sections_come_from_the_layer(demo_data) -> None:
    profile = cell_profile(demo_data, h3.str_to_int(h3.latlng_to_cell(*TIMES_SQUARE, 8)))
    extras = {lid: set(section) - {"title_zh", "title_en", "symbol", "stale", "metrics",
                                   "breakdowns"}
              for lid, section in profile["layers"].items()}
    assert extras == {lid: set(layer.profile_extras(demo_data, lambda f: f["cell"] < 0, 0, 0))
                      for lid, layer in LAYERS.items()}
    assert profile["population_density"] and any(extras.values())


def test_the_event_queue_is_fed_by_a_role_flag() -> None:
    layer = events_layer()
    assert layer is not None
    assert [r.name for r in layer.roles.values() if r.feeds_events] == ["requests"]


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    """Every string literal in a module except docstrings (config examples live there)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            docstrings.add(id(node.body[0].value))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_layer_id_is_spelled_outside_layers() -> None:
    files = [REPO / "app.py"] + [path for package in APP_PACKAGES
                                 for path in sorted((REPO / package).rglob("*.py"))]
    found = [f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}"
             for path in files
             for node in _string_constants(ast.parse(path.read_text(encoding="utf-8")))
             if node.value in LAYERS]
    assert found == [], "ask the layer registry by property instead of naming a layer"


# ------------------------------------------------------------------ a sixth layer

COMPLAINTS = Role(
    name="complaints",
    geometry="point",
    title_zh="噪声投诉",
    title_en="Noise complaints",
    fields=(Field("category", title_zh="类型", title_en="Type", breakdown=True),),
)
NOISE = Layer(
    id="noise",
    title_zh="噪声",
    title_en="Noise",
    symbol="声",
    roles={"complaints": COMPLAINTS},
    default_role="complaints",
    base_metrics=(Metric("complaints", "噪声投诉", "Noise complaints", role="complaints",
                         unit_zh="件", unit_en="complaints"),),
    colorscale=("#101010", "#303030", "#505050", "#707070", "#909090", "#b0b0b0"),
    overlay="points",
    overlay_role="complaints",
    point_roles=("complaints",),
)
#: (lat, lon, kind) of the complaints: three in one res-8 cell near Times Square, one apart.
COMPLAINT_ROWS = [(40.7580, -73.9855, "music"), (40.7581, -73.9856, "music"),
                  (40.7579, -73.9854, "traffic"), (40.7484, -73.9857, "construction")]


@pytest.fixture()
def noise_city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A city whose only source feeds a sixth layer registered for this test only."""
    from app import load_config

    monkeypatch.setitem(LAYERS, NOISE.id, NOISE)
    with open(tmp_path / "noise.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["complaint_id", "created", "lat", "lon", "kind", "place"])
        for i, (lat, lon, kind) in enumerate(COMPLAINT_ROWS):
            writer.writerow([f"n{i}", f"2024-05-01T0{i}:00:00Z", lat, lon, kind, f"spot {i}"])
    (tmp_path / "city.toml").write_text("""
[city]
name = "Noiseville"
center = { lat = 40.7580, lon = -73.9855 }
zoom = 12
timezone = "America/New_York"
language = "en"

[cache]
type = "SimpleCache"

[[sources]]
name = "noise-complaints"
title_zh = "噪声投诉"
title_en = "Noise complaints"
layer = "noise"
adapter = "csv"
path = "noise.csv"
id = "complaint_id"
time = "created"
lat = "lat"
lon = "lon"
category = "kind"
label = "place"
""", encoding="utf-8")
    return load_config(tmp_path / "city.toml")


def test_a_sixth_layer_is_served_without_any_other_edit(noise_city) -> None:
    from app import create_app
    from callbacks.controls import layer_options, overlay_options
    from store.city import CityData

    app = create_app(noise_city)
    api = app.server.test_client()

    listed = {layer["id"]: layer for layer in api.get("/api/layers").get_json()}
    assert list(listed)[-1] == "noise" and listed["noise"]["default_metric"] == "complaints"
    assert [s["name"] for s in listed["noise"]["sources"]] == ["noise-complaints"]

    cells = {r["cell"]: r["value"] for r in api.get("/api/layers/noise/cells?res=8").get_json()}
    square = h3.latlng_to_cell(*COMPLAINT_ROWS[0][:2], 8)
    assert cells[square] == 3 and sum(cells.values()) == len(COMPLAINT_ROWS)

    profile = api.get(f"/api/cells/{square}").get_json()["layers"]["noise"]
    assert profile["symbol"] == "声" and profile["metrics"][0]["value"] == 3
    assert {i["value"]: i["count"] for i in profile["breakdowns"][0]["items"]} == {
        "music": 2, "traffic": 1}

    assert "noise" in [o["value"] for o in layer_options("en")]
    assert "noise" in [o["value"] for o in overlay_options("en")]

    data = CityData.load(noise_city)
    figure, plan = map_figure(data, MapView(hex_layer="noise", zoom=10.0,
                                            center=(40.758, -73.9855), language="en"))
    hexes = _trace(figure, "hexes")
    assert plan.mode == "hex" and sum(z or 0 for z in hexes["z"]) == len(COMPLAINT_ROWS)
    assert hexes["colorbar"]["title"]["text"].startswith("声 Noise complaints")

    figure, plan = map_figure(data, MapView(hex_layer="noise", zoom=16.0, overlays=("noise",),
                                            center=(40.758, -73.9855)))
    assert plan.mode == "points" and len(plan.points) == len(COMPLAINT_ROWS)
    for uid in ("hexes", "overlay-noise"):
        assert _trace(figure, uid)["marker"]["color"] == NOISE.marker_colour == "#909090"
