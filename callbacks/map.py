"""The map: its section of the page, viewport tracking, drawing, and picking a cell.
Glue only; see render.figures."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import h3.api.basic_int as h3i
import pandas as pd
from dash import Dash, Input, Output, Patch, State, ctx, dcc, html, no_update

from callbacks import ids
from callbacks.ops_panel import OPS_OVERLAYS, overlay_traces
from callbacks.tour import caption_component
from config.i18n import t
from geo.hexes import from_hex
from render.figures import HexPlan, MapView, map_figure, plan_hexes, value_patch, z_values
from render.zoom import zoom_scale
from store.cache import drawn_values, remember_drawn

if TYPE_CHECKING:
    from config.city import MapSettings
    from services import Services
    from store.city import CityData


def viewport(relayout: dict[str, Any] | None) -> tuple[float, list[float], list[float] | None] | None:
    """(zoom, [lat, lon], bbox) from a map ``relayoutData`` event, or None if it has no view."""
    if not relayout:
        return None
    zoom = relayout.get("map.zoom")
    center = relayout.get("map.center")
    if zoom is None or center is None:
        return None
    corners = (relayout.get("map._derived") or {}).get("coordinates")
    bbox = None
    if corners:
        lons = [c[0] for c in corners]
        lats = [c[1] for c in corners]
        bbox = [min(lons), min(lats), max(lons), max(lats)]
    return float(zoom), [float(center["lat"]), float(center["lon"])], bbox


def replay_moment(replay: dict[str, Any] | None, data: CityData) -> pd.Timestamp | None:
    """The city time the time slider is showing, or None when live (or caught up)."""
    if not replay:
        return None
    start = pd.Timestamp(replay["start"])
    elapsed = max(0.0, time.time() - float(replay["wall"]) / 1000.0) * float(replay["speed"])
    moment = start + pd.Timedelta(seconds=elapsed)
    return None if moment >= data.clock.now() else moment


def snap_bbox(bbox: list[float]) -> list[float]:
    """Grow a viewport to a grid of half its size, so small pans do not redraw the map."""
    west, south, east, north = bbox
    step_x = max((east - west) / 2, 1e-4)
    step_y = max((north - south) / 2, 1e-4)

    def down(v: float, step: float) -> float:
        return round((v // step) * step, 6)

    def up(v: float, step: float) -> float:
        return round(-((-v) // step) * step, 6)

    return [down(west, step_x), down(south, step_y), up(east, step_x), up(north, step_y)]


def next_view(seen: tuple[float, list[float], list[float] | None], current: dict[str, Any],
              settings: MapSettings) -> Any:
    """The ``VIEW`` store after the camera moved to ``seen``: ``no_update`` unless the
    resolution, the (snapped) viewport or points-versus-hexagons changed."""
    zoom, center, bbox = seen
    scale = zoom_scale(zoom, settings)
    new_bbox = snap_bbox(bbox) if (scale.needs_viewport and bbox) else None
    if scale == zoom_scale(float(current.get("zoom", zoom)), settings) \
            and new_bbox == current.get("bbox"):
        return no_update
    return {"zoom": zoom, "center": center, "bbox": new_bbox}


def cell_at_click(click: dict[str, Any] | None, zoom: float, settings: MapSettings) -> Any:
    """The cell a map click selects (hex id text), or ``no_update``.

    A hexagon click selects that cell; a point click selects the cell around the point.
    """
    if not click or not click.get("points"):
        return no_update
    point = click["points"][0]
    location = point.get("location")
    if isinstance(location, str):
        try:
            from_hex(location)
        except ValueError:
            return no_update  # a base-map polygon, not a cell
        return location
    if "lat" in point and "lon" in point:
        # The cell the point is counted in: latLngToCell's at the shown resolution.
        res = zoom_scale(zoom, settings).res
        return format(h3i.latlng_to_cell(point["lat"], point["lon"], res), "x")
    return no_update


def status_chips(data: CityData, plan: HexPlan, layer_id: str, language: str,
                 elapsed_ms: float, stale: bool, moment: pd.Timestamp | None,
                 values_key: str | None = None) -> list[Any]:
    """The chips under the controls: live or replayed time, resolution, what is drawn
    (with ``data-*`` hooks), how long it took, and any warnings."""
    if plan.mode == "hex":
        count, drawn = len(plan.values), len(plan.grid)
        text = f"{count:,} / {drawn:,} {t('map.cells', language)}"
    else:
        count = drawn = 0 if plan.points is None else len(plan.points)
        text = f"{count:,} {t('map.points', language)}"
    data_attributes: dict[str, Any] = {  # stable hooks for tests and wall scripts
        "data-count": str(count), "data-drawn": str(drawn), "data-mode": plan.mode,
        "data-res": str(plan.res),
        # The digest of the values the page should now hold (see remember_drawn).
        "data-values": values_key or ""}
    zone = data.config.city.timezone
    if moment is None:
        when = data.clock.now().tz_convert(zone).strftime("%m-%d %H:%M")
        live = html.Span(f"● {t('map.live', language)} {when}", className="cb-chip cb-live",
                         id=ids.LIVE_CHIP)
    else:
        when = moment.tz_convert(zone).strftime("%m-%d %H:%M")
        live = html.Span(f"⏪ {t('replay.showing', language)} {when}",
                         className="cb-chip cb-replay", id=ids.LIVE_CHIP)
    chips = [
        live,
        html.Span(f"{t('map.resolution', language)} {plan.res}", className="cb-chip"),
        html.Span(text, className="cb-chip", id="map-count", **data_attributes),
        html.Span(f"{elapsed_ms:.0f} ms", className="cb-chip cb-muted"),
    ]
    if plan.mode == "hex" and plan.values.empty:
        chips.append(html.Span(t("map.no_data", language), className="cb-chip cb-warn"))
    if plan.capped:
        chips.append(html.Span(t("map.capped", language), className="cb-chip cb-warn"))
    if plan.sampled:
        chips.append(html.Span(t("map.sampled", language), className="cb-chip cb-warn"))
    if stale:
        chips.append(html.Span(t("map.stale", language), className="cb-chip cb-stale"))
    return chips


def map_section() -> html.Section:
    """The map, the banner that says when it is not live, and the tour's caption.

    The graph holds no figure: the draw callback draws it on load (a large figure
    in ``app.layout`` costs seconds to serialise).
    """
    return html.Section(className="cb-map-wrap", children=[
        html.Div(id=ids.STALE_BANNER, className="cb-stale-banner", role="alert"),
        caption_component(),
        dcc.Graph(id=ids.MAP, className="cb-map",
                  config={"displaylogo": False, "scrollZoom": True,
                          "showSendToCloud": False,
                          "displayModeBar": False, "responsive": True},
                  style={"height": "100%", "width": "100%"}),
    ])


def register(app: Dash, services: Services) -> None:
    data = services.store
    settings = services.config.map

    @app.callback(
        Output(ids.VIEW, "data"),
        Output(ids.CAMERA, "data"),
        Input(ids.MAP, "relayoutData"),
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def track_view(relayout: dict[str, Any] | None, current: dict[str, Any]) -> Any:
        """Remember the camera always; redraw only when the resolution or the (snapped)
        viewport really changes."""
        seen = viewport(relayout)
        if seen is None:
            return no_update, no_update
        zoom, center, _ = seen
        return next_view(seen, current, settings), {"zoom": zoom, "center": center}

    @app.callback(
        Output(ids.MAP, "figure"),
        Output(ids.MAP_STATUS, "children"),
        Output(ids.RENDERED, "data"),
        Input(ids.HEX_LAYER, "value"),
        Input(ids.METRIC, "value"),
        Input(ids.OVERLAYS, "value"),
        Input(ids.OUTLINE, "value"),
        Input(ids.VIEW, "data"),
        Input(ids.SELECTED_CELL, "data"),
        Input(ids.AREA, "data"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.THEME, "data"),
        Input(ids.TICK, "n_intervals"),
        Input(ids.REPLAY, "data"),
        Input(ids.OPS_FINGERPRINT, "data"),
        State(ids.REVISION, "data"),
        State(ids.RENDERED, "data"),
        State(ids.CAMERA, "data"),
    )
    def draw(layer_id: str, metric: str | None, overlays: list[str] | None, outline: str | None,
             view: dict[str, Any], selected: str | None, area: dict[str, str] | None,
             language: str, theme: str, _tick: int | None, replay: dict[str, Any] | None,
             _ops: Any, revision: str | None, rendered: dict[str, Any] | None,
             camera: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        """Draw the map; on a tick send only what changed.

        A full figure goes out when what is drawn changes shape (layer, metric,
        resolution, viewport, overlays, language, theme). A tick with the same grid
        sends a ``Patch`` of the hexagon values alone; a tick with no new data
        sends nothing.
        """
        started = time.perf_counter()
        bbox = view.get("bbox")
        moment = replay_moment(replay, data)
        # A full figure resets the map to its own centre and zoom (dcc.Graph does not
        # keep the user's view across new figures), so it carries the user's camera.
        where = camera or view
        map_view = MapView(
            hex_layer=layer_id,
            metric=metric,
            zoom=float(view.get("zoom", data.config.city.zoom)),
            center=(float(where["center"][0]), float(where["center"][1])),
            camera_zoom=float(where["zoom"]) if "zoom" in where else None,
            bbox=tuple(bbox) if bbox else None,  # type: ignore[arg-type]
            overlays=tuple(overlays or ()),
            outline=outline,
            selected_cell=from_hex(selected) if selected else None,
            area=(area["level"], area["name"]) if area else None,
            language=language,
            theme=theme,
            revision=revision or "city",
            moment=moment,
        )
        # The public (anonymous, exhibition) sees suppressed counts, never people as points.
        audience = services.audience()
        disclosure = services.disclosure if audience == "public" else None
        structure = json.dumps([layer_id, metric, overlays, outline, view, selected, area,
                                language, theme, revision, audience], sort_keys=True, default=str)
        ops_overlays = tuple(o for o in overlays or () if o in OPS_OVERLAYS)

        def extras() -> list[dict[str, Any]]:
            return overlay_traces(services, ops_overlays, language, map_view.bbox)

        def with_ops(patch: Any) -> Any:
            """``patch`` also replacing the events/alerts traces, or None if not on the map."""
            placed = (rendered or {}).get("extra") or {}
            traces = extras()
            if [trace["uid"] for trace in traces] != list(placed):
                return None
            for trace in traces:
                patch["data"][placed[trace["uid"]]] = trace
            return patch

        # Several inputs can change in one request (a tick and the events fingerprint).
        changed = set(ctx.triggered_prop_ids)
        ops_key = f"{ids.OPS_FINGERPRINT}.data"
        same_structure = rendered is not None and rendered.get("structure") == structure
        ops_changed = ops_key in changed and bool(ops_overlays) and same_structure
        changed.discard(ops_key)
        if not changed and ops_key in ctx.triggered_prop_ids:
            # Only events or alerts changed: replace their traces alone.
            if not ops_changed:
                return no_update, no_update, no_update
            patch = with_ops(Patch())
            if patch is not None:
                return patch, no_update, no_update
            # (the map does not hold those traces yet: it is drawn whole below)
        stale = moment is None and data.layer_stale(layer_id)
        tick_only = bool(changed) and changed <= {f"{ids.TICK}.n_intervals", f"{ids.REPLAY}.data"} \
            and same_structure
        if tick_only and rendered is not None and moment is None and rendered.get("version") == data.version \
                and rendered.get("stale") == stale and rendered.get("moment") is None:
            patch = with_ops(Patch()) if ops_changed else None
            return (no_update if patch is None else patch), no_update, no_update
        try:
            if tick_only:
                assert rendered is not None
                plan = plan_hexes(data, map_view, disclosure)
                if plan.mode == "hex" and plan.grid_key() == rendered.get("grid"):
                    figure = value_patch(plan, rendered["hex_index"], layer_id, stale, theme,
                                         drawn=drawn_values(rendered.get("values")),
                                         restyle=rendered.get("stale") != stale)
                    if ops_changed:
                        figure = with_ops(figure) or figure
                else:
                    drawn_extra = extras()
                    figure, plan = map_figure(data, map_view, drawn_extra, disclosure)
            else:
                drawn_extra = extras()
                figure, plan = map_figure(data, map_view, drawn_extra, disclosure)
        except KeyError:  # a metric from another layer, mid-switch: wait for the right one
            return no_update, no_update, no_update
        if isinstance(figure, dict):
            hex_index = next(i for i, t in enumerate(figure["data"]) if t.get("uid") == "hexes")
            extra_uids = {trace["uid"] for trace in drawn_extra}
            extra_index = {t["uid"]: i for i, t in enumerate(figure["data"])
                           if t.get("uid") in extra_uids}
        else:
            hex_index = rendered["hex_index"] if rendered is not None else 0
            extra_index = (rendered or {}).get("extra") or {}
        values_key = remember_drawn(z_values(plan.z)) if plan.mode == "hex" else None
        state = {"structure": structure, "grid": plan.grid_key() if plan.mode == "hex" else None,
                 "values": values_key,
                 "hex_index": hex_index, "extra": extra_index, "version": data.version, "stale": stale,
                 "moment": None if moment is None else moment.isoformat()}
        elapsed_ms = (time.perf_counter() - started) * 1000
        chips = status_chips(data, plan, layer_id, language, elapsed_ms, stale, moment,
                             values_key)
        return figure, chips, state

    @app.callback(
        Output(ids.SELECTED_CELL, "data"),
        Input(ids.MAP, "clickData"),
        State(ids.VIEW, "data"),
        prevent_initial_call=True,
    )
    def pick_cell(click: dict[str, Any] | None, view: dict[str, Any]) -> Any:
        """A hexagon click selects that cell; a point click selects the cell around the point."""
        return cell_at_click(click, float(view.get("zoom", 10)), settings)
