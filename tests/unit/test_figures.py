"""The map figure: offline style, caps on what reaches the browser, viewport culling."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.figures import MapView, map_figure, map_style

MANHATTAN = (-74.02, 40.70, -73.93, 40.80)


def _walk_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_strings(v)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_style_needs_no_network(demo_data, theme: str) -> None:
    figure, _ = map_figure(demo_data, MapView(theme=theme, zoom=10, center=(40.7, -74)))
    style = figure["layout"]["map"]["style"]
    assert style["version"] == 8 and list(style["sources"]) == ["citybrain-none"]
    assert not [s for s in _walk_strings(figure) if "://" in s]
    assert style["glyphs"].startswith("/") and "sprite" not in style  # same origin


def test_tile_url_adds_a_raster_base_map() -> None:
    style = map_style("dark", "https://tiles.example.gov/{z}/{x}/{y}.png", "© City")
    assert style["sources"]["basemap"]["tiles"] == ["https://tiles.example.gov/{z}/{x}/{y}.png"]


def test_fine_resolutions_draw_only_the_viewport(demo_data) -> None:
    whole, whole_plan = map_figure(demo_data, MapView(hex_layer="people", zoom=13.0,
                                                      center=(40.75, -73.98)))
    view, plan = map_figure(demo_data, MapView(hex_layer="people", zoom=13.0,
                                               center=(40.75, -73.98), bbox=MANHATTAN))
    assert plan.res == 10 and not plan.capped
    # the whole city at res 10 is over max_hexes: it would have to step down
    assert whole_plan.capped and whole_plan.res < 10
    assert 0 < len(plan.values) <= demo_data.config.map.max_hexes


def test_hex_count_is_capped_by_lowering_resolution(demo_data) -> None:
    capped_config = dataclasses.replace(
        demo_data.config, map=dataclasses.replace(demo_data.config.map, max_hexes=500))
    original = demo_data.config
    demo_data.config = capped_config
    try:
        _, plan = map_figure(demo_data, MapView(hex_layer="people", zoom=13.0,
                                                center=(40.75, -73.98), bbox=MANHATTAN))
    finally:
        demo_data.config = original
    assert plan.capped and plan.res < 10 and len(plan.values) <= 500


def test_close_zoom_draws_points(demo_data) -> None:
    figure, plan = map_figure(demo_data, MapView(hex_layer="government", zoom=15.0,
                                                 center=(40.75, -73.98), bbox=MANHATTAN))
    assert plan.mode == "points" and plan.points is not None and len(plan.points) > 0
    trace = next(t for t in figure["data"] if t["uid"] == "hexes")
    assert trace["type"] == "scattermap" and len(trace["lat"]) == len(plan.points)


def test_overlays_outlines_and_selection(demo_data) -> None:
    cell = int("882a100d65fffff", 16)
    figure, _ = map_figure(demo_data, MapView(
        hex_layer="government", zoom=10, center=(40.7, -74), overlays=("government",),
        outline="boundary:neighbourhood", selected_cell=cell, area=("borough", "Manhattan")))
    uids = [t["uid"] for t in figure["data"]]
    assert uids == ["base-land", "hexes", "outlines", "overlay-government", "area",
                    "selected"]
    points = next(t for t in figure["data"] if t["uid"] == "overlay-government")
    assert len(points["lat"]) == 723
    json.dumps(figure)  # plain JSON, no numpy left inside


def test_outlines_include_every_part_of_multipolygons(demo_data) -> None:
    lats, lons = demo_data.outlines("boundary:borough")
    rings = sum(1 for v in lats if v is None)
    parts = sum(len(g.geoms) for g in demo_data.boundary("borough").units.geometry)
    assert rings >= parts > 5  # Staten Island, Manhattan … are multi-part
    assert len(lats) == len(lons)
