"""The map figure: offline style, caps on what reaches the browser, viewport culling."""

from __future__ import annotations

import dataclasses
import json

import pytest

from render.figures import MapView, map_figure, map_style

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


def applied(z: list, patch) -> list:
    """What Dash's renderer makes of ``z`` (the hexagon trace's values) under a Patch."""
    z = list(z)
    for op in patch.to_plotly_json()["operations"]:
        location, value = op["location"], op["params"].get("value")
        assert op["operation"] == "Assign"
        if location[2:] == ["z"]:
            z = list(value)
        elif location[2:3] == ["z"]:
            z[location[3]] = value
    return z


def test_ticks_send_only_changed_values_and_rebuild_the_exact_map(live_config) -> None:
    """A replayed city ticks: each value Patch, applied to what the page holds, gives
    exactly the new figure's values — with one assignment per changed cell."""
    import numpy as np

    from render.figures import plan_hexes, value_patch, z_values
    from store.city import CityData

    data = CityData.load(live_config)
    sources = data.streaming_sources()
    view = MapView(hex_layer="government", zoom=12.5, center=(40.75, -73.98),
                   bbox=(-74.02, 40.72, -73.94, 40.78), language="en")
    shown = plan_hexes(data, view)
    held = shown.z
    delta_ticks = 0
    for _ in range(6):
        data.clock._wall_start -= 3.0  # three wall seconds pass on the 120x clock
        for source in sources:
            data.refresh_source(source, incremental=True)
        plan = plan_hexes(data, view)
        assert plan.grid_key() == shown.grid_key()
        patch = value_patch(plan, 1, "government", stale=False,
                            drawn=z_values(held), restyle=False)
        ops = patch.to_plotly_json()["operations"]
        changed = int(np.sum(z_values(held) != z_values(plan.z)))
        held = applied(held, patch)
        assert held == plan.z
        if 0 < changed < len(plan.z) // 20:
            assert sum(1 for op in ops if len(op["location"]) == 4) == changed
            assert not any(op["location"] == ["data", 1, "z"] for op in ops)
            delta_ticks += 1
        assert not any("colorscale" in op["location"] for op in ops)  # restyle=False
    assert delta_ticks >= 3, "the replay should change a few cells per tick"


def test_value_patch_sends_the_whole_list_when_that_is_shorter_or_nothing_is_known(
        demo_data) -> None:
    from render.figures import plan_hexes, value_patch, z_values

    plan = plan_hexes(demo_data, MapView(hex_layer="people", zoom=10))
    everything_changed = z_values(plan.z) + 1
    for drawn in (None, everything_changed, z_values(plan.z)[:-1]):
        patch = value_patch(plan, 1, "people", stale=True, drawn=drawn)
        locations = [op["location"] for op in patch.to_plotly_json()["operations"]]
        assert ["data", 1, "z"] in locations and ["data", 1, "colorscale"] in locations
        assert applied([0] * len(plan.z), patch) == plan.z
    same = value_patch(plan, 1, "people", stale=False, drawn=z_values(plan.z), restyle=False)
    assert [op["location"] for op in same.to_plotly_json()["operations"]] == [["data", 1, "zmax"]]


def test_drawn_values_are_shared_by_content_and_expire(demo_app) -> None:
    import numpy as np

    from store.cache import CACHE, drawn_values, remember_drawn

    values = np.array([1.0, np.nan, 3.5])
    with demo_app.server.app_context():
        key = remember_drawn(values)
        assert key == remember_drawn(values.copy())
        got = drawn_values(key)
        assert got is not None and np.array_equal(got, values, equal_nan=True)
        assert drawn_values(None) is None and drawn_values("drawn:unknown") is None
        CACHE.delete(key)
        assert drawn_values(key) is None
