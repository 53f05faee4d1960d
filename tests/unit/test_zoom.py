"""One resolution-for-zoom: render.zoom.zoom_scale, which the figure and the map callbacks use."""

from __future__ import annotations

import pytest

from config.city import MapSettings
from render.figures import MapView, plan_hexes
from render.zoom import ZoomScale, zoom_scale

MANHATTAN = (-74.02, 40.70, -73.93, 40.80)


@pytest.mark.parametrize(("zoom", "res"), [(5, 7), (9.0, 8), (11.4, 8), (11.5, 9), (13, 10),
                                            (18, 10)])
def test_resolution_follows_zoom(zoom: float, res: int) -> None:
    steps = ((0.0, 7), (9.0, 8), (11.5, 9), (12.75, 10))
    assert zoom_scale(zoom, MapSettings(res_by_zoom=steps)).res == res


@pytest.mark.parametrize(("zoom", "expected"), [
    (8.0, ZoomScale(res=7, whole_city_res=8, points=False)),
    (10.0, ZoomScale(res=8, whole_city_res=8, points=False)),
    (12.0, ZoomScale(res=9, whole_city_res=8, points=False)),
    (15.0, ZoomScale(res=10, whole_city_res=8, points=True)),
])
def test_the_first_two_steps_show_the_whole_city_and_close_zooms_show_points(
        zoom: float, expected: ZoomScale) -> None:
    scale = zoom_scale(zoom, MapSettings())
    assert scale == expected
    assert scale.needs_viewport == (zoom > 11)
    assert scale.coarser().res == expected.res - 1


def test_a_single_step_is_the_whole_city_at_every_zoom() -> None:
    settings = MapSettings(res_by_zoom=((0.0, 6),), points_zoom=30)
    assert zoom_scale(3, settings).whole_city and zoom_scale(20, settings).whole_city


@pytest.mark.parametrize("zoom", [8.0, 10.0, 12.0])
def test_the_figure_draws_what_the_scale_says(demo_data, zoom: float) -> None:
    scale = zoom_scale(zoom, demo_data.config.map)
    whole = plan_hexes(demo_data, MapView(hex_layer="people", zoom=zoom))
    in_view = plan_hexes(demo_data, MapView(hex_layer="people", zoom=zoom, bbox=MANHATTAN))
    assert in_view.res == scale.res and not in_view.capped
    # Whole-city scales ignore the viewport; finer ones draw only what is in it.
    assert (list(whole.grid) == list(in_view.grid)) == scale.whole_city
    assert len(in_view.grid) <= len(whole.grid)
