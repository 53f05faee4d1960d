"""The callbacks package: every feature registers from one typed ``services.Services``,
and the decisions the map and the controls make are plain functions."""

from __future__ import annotations

from typing import Any

import h3
from dash import Dash, no_update

from callbacks import ids
from callbacks.controls import drill_to
from callbacks.map import cell_at_click, next_view, snap_bbox
from config.city import MapSettings

SETTINGS = MapSettings()


def test_every_feature_registers_from_a_typed_services(demo_app: Any, demo_data: Any) -> None:
    from callbacks import register_all
    from callbacks.layout import build_layout
    from services import Services
    from store.ingest import IngestEngine

    app = Dash(__name__, suppress_callback_exceptions=False)
    app.layout = build_layout(demo_data.config, demo_data)
    services = Services(config=demo_data.config, store=demo_data, ingest=IngestEngine(demo_data))
    register_all(app, services)
    # The same callbacks as the app create_app builds, down to the last output.
    assert set(app.callback_map) == set(demo_app.callback_map)
    # One output of each feature module (controls, map, panels, tour, ops_panel,
    # signin, events, signs, alerts): none is left out of register_all.
    outputs = " ".join(app.callback_map)
    for output in (ids.METRIC, ids.MAP, ids.PROFILE, ids.TOUR_CAPTION, ids.OPS_FINGERPRINT,
                   ids.SESSION_USER, ids.EVENT_DETAIL, ids.SIGNS_PANEL, ids.ALERTS_PANEL):
        assert f"{output}." in outputs, output


def test_the_view_store_changes_only_when_what_is_drawn_would() -> None:
    city = {"zoom": 10.0, "center": [40.7, -74.0], "bbox": None}
    # A pan at the whole-city resolution: nothing to redraw.
    assert next_view((10.2, [40.71, -74.01], [-74.2, 40.6, -73.8, 40.8]), city,
                     SETTINGS) is no_update
    # Zoomed in past the whole-city resolution: the viewport, snapped, is drawn.
    seen = [-74.05, 40.70, -73.97, 40.74]
    view = next_view((12.0, [40.71, -74.01], seen), city, SETTINGS)
    west, south, east, north = view["bbox"]
    assert view["zoom"] == 12.0 and view["bbox"] == snap_bbox(seen)
    assert west <= seen[0] and south <= seen[1] and east >= seen[2] and north >= seen[3]
    # A small pan inside the same snapped grid: nothing to redraw.
    assert next_view((12.0, [40.71, -74.0], [-74.049, 40.701, -73.969, 40.741]), view,
                     SETTINGS) is no_update
    # Crossing into points mode redraws even at the same resolution and bbox.
    near = {"zoom": 13.0, "center": [40.7, -74.0], "bbox": None}
    assert next_view((14.6, [40.7, -74.0], None), near, SETTINGS) != no_update


def test_a_click_selects_the_cell_it_lands_in() -> None:
    cell = h3.latlng_to_cell(40.75, -73.99, 9)
    assert cell_at_click({"points": [{"location": cell}]}, 12.0, SETTINGS) == cell
    assert cell_at_click({"points": [{"location": "not-a-cell"}]}, 12.0, SETTINGS) is no_update
    assert cell_at_click(None, 12.0, SETTINGS) is no_update
    # A point counts in its base cell's parent at the zoom's resolution.
    point = {"points": [{"lat": 40.75, "lon": -73.99}]}
    assert cell_at_click(point, 12.0, SETTINGS) == cell
    assert cell_at_click(point, 16.0, SETTINGS) == h3.latlng_to_cell(40.75, -73.99, 10)


def test_drill_down_fits_a_district_and_back_shows_the_city(demo_data: Any) -> None:
    city = demo_data.config.city
    area, view, camera, revision, district = drill_to(demo_data, ids.BACK_TO_CITY, "x", None)
    assert (area, camera, revision, district) == (None, None, "city", None)
    assert view == {"zoom": city.zoom, "center": [city.center_lat, city.center_lon], "bbox": None}
    assert drill_to(demo_data, ids.SUBAREA, None, None) == (no_update,) * 5
    top = demo_data.boundaries[0]
    name = top.names()[0]
    area, view, _, revision, district = drill_to(demo_data, ids.DISTRICT, name, None)
    assert area == {"level": top.spec.level, "name": name} and revision == f"{top.spec.level}:{name}"
    assert view["bbox"] == list(top.bounds(name)) and view["zoom"] > city.zoom
    assert district is no_update
