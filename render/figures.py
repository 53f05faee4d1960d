"""The map figure, as a plain dict (building ``go.Figure`` with big GeoJSON is ~40× slower).

The map style is a complete MapLibre style object holding only a background
colour (plus a raster source when the city config names a tile URL), so nothing
is fetched from the network: no tiles, glyphs or sprites. The city's admin
boundaries are drawn as the base map instead. Traces are ordered base → hexes →
overlays → highlights, each with a stable ``uid`` so live updates can patch them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd
from numpy.typing import NDArray

from config.i18n import pick, t
from geo.hexes import cell_ring, cells_geojson, to_hex
from layers import DEFAULT_LAYER, LAYERS
from layers.base import Metric
from render.privacy import Disclosure
from render.text import data_text, data_texts
from render.zoom import zoom_scale
from store.city import CityData, cells_in_view

BBox = tuple[float, float, float, float]

THEMES: dict[str, dict[str, str]] = {
    "dark": {"background": "#050a14", "ground": "#0e1a2d", "line": "#34507a", "text": "#e6edf7",
             "muted": "#8aa0bf", "highlight": "#ffe14d", "hex_line": "rgba(5,10,20,0.35)"},
    "light": {"background": "#c9d6e3", "ground": "#f4f3ee", "line": "#7f93ad", "text": "#16202e",
              "muted": "#4c5d75", "highlight": "#d6336c", "hex_line": "rgba(255,255,255,0.4)"},
}
GLYPHS_URL = "/_citybrain/glyphs/{fontstack}/{range}.pbf"
STALE_SCALE = ["#2a2d33", "#4a4e57", "#6c717c", "#9096a2", "#b8bdc7", "#e0e3e8"]


@dataclass(frozen=True)
class MapView:
    """Everything the map figure depends on; built by the callbacks from the page state."""

    hex_layer: str = DEFAULT_LAYER
    metric: str | None = None
    zoom: float = 10.0
    center: tuple[float, float] = (0.0, 0.0)  # lat, lon
    #: The camera zoom to show (the user's exact zoom); ``zoom`` picks the resolution.
    camera_zoom: float | None = None
    bbox: BBox | None = None
    overlays: tuple[str, ...] = ()
    outline: str | None = None
    selected_cell: int | None = None
    area: tuple[str, str] | None = None  # (boundary level, unit name)
    language: str = "zh-CN"
    theme: str = "dark"
    revision: str = "city"
    #: A past city time to show (the time slider); None is live.
    moment: pd.Timestamp | None = None


@dataclass
class HexPlan:
    """What the hexagon layer will draw, and why (for the status line).

    ``values`` holds the cells that have data; ``grid`` the cells drawn: the city's
    footprint in view plus any data cell outside it, so that live updates change
    values on a stable set of hexagons. ``z`` is aligned with ``grid``; a cell without
    a value holds its aggregation's ``empty`` value (0, or None for no value).
    """

    mode: str  # "hex" or "points"
    res: int
    values: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    grid: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    z: list[float | None] = field(default_factory=list)
    points: pd.DataFrame | None = None
    capped: bool = False
    sampled: bool = False
    moment: pd.Timestamp | None = None

    def grid_key(self) -> str:
        """Identifies the drawn geometry: same key, only values need to travel."""
        digest = hashlib.blake2b(self.grid.tobytes(), digest_size=8).hexdigest()
        return f"{self.mode}:{self.res}:{len(self.grid)}:{digest}"


def plan_hexes(data: CityData, view: MapView, disclosure: Disclosure | None = None) -> HexPlan:
    """Choose the resolution for the zoom, keep the viewport, respect the browser's limits.

    Coarse resolutions draw the whole city; fine ones only the viewport. When even
    the viewport holds more than ``max_hexes`` cells the resolution steps down
    until it fits, and the plan says so. With a ``disclosure`` (the public
    audience), a person-level metric is never drawn as points (exact places), and its
    suppressed cells have no value (:mod:`render.disclosure`).
    """
    settings = data.config.map
    layer = LAYERS[view.hex_layer]
    metric = data.metric(view.hex_layer, view.metric)
    scale = zoom_scale(view.zoom, settings)
    private = disclosure is not None and disclosure.person_level(view.hex_layer, metric.role,
                                                                 metric.source)
    if scale.points and private:  # hexagons at most as fine as the rows' cells
        scale = replace(scale, points=False, res=min(scale.res, settings.base_res))
    if scale.points and metric.role in layer.point_roles:
        rows = _rows_in_view(data, view.hex_layer, metric, view.bbox)
        sampled = len(rows) > settings.max_points
        if sampled:
            rows = rows.iloc[:: int(np.ceil(len(rows) / settings.max_points))]
        return HexPlan(mode="points", res=settings.base_res, points=rows, sampled=sampled)
    capped = False
    while True:
        res = scale.res
        values = (data.cells(view.hex_layer, metric, res) if view.moment is None
                  else data.cells_at(view.hex_layer, metric, res, view.moment))
        hidden = pd.Index([], dtype=np.int64)
        if private:
            assert disclosure is not None
            values, hidden = disclosure.cells(view.hex_layer, metric, values)
        grid = pd.Index(data.footprint(res)).union(values.index)
        if not scale.whole_city:
            in_view = cells_in_view(pd.Series(0.0, index=grid), view.bbox)
            grid = in_view.index
            values = values.loc[values.index.isin(grid)]
        if len(grid) <= settings.max_hexes or res == 0:
            break
        scale = scale.coarser()
        capped = True
    # A drawn cell without a value shows the aggregation's empty value (0 or none).
    z = values.reindex(grid, fill_value=metric.aggregation.empty).to_numpy(dtype=float, copy=True)
    if len(hidden):
        z[np.isin(grid, hidden.to_numpy())] = np.nan  # suppressed: no value, never a 0
    # Values at the metric's own precision (residents as whole people): more digits
    # are noise that gzip cannot squeeze, and every tick resends them.
    decimals = metric.decimals
    rounded = np.round(z, decimals).tolist()
    if np.isnan(z).any():
        rounded = [None if v != v else v for v in rounded]  # NaN: no value (JSON null)
    return HexPlan(mode="hex", res=res, values=values, grid=grid.to_numpy(dtype=np.int64),
                   z=rounded, capped=capped, moment=view.moment)


def _rows_in_view(data: CityData, layer: str, metric: Metric, bbox: BBox | None) -> pd.DataFrame:
    from store.city import filter_rows

    rows = data.frame(layer, metric.role, metric.source)
    if metric.where:
        rows = filter_rows(rows, metric.where)
    return points_in_view(rows, bbox)


def map_style(theme: str, tile_url: str = "", tile_attribution: str = "") -> dict[str, Any]:
    """A MapLibre style that needs nothing from the network (unless a tile URL is set)."""
    colours = THEMES[theme]
    style: dict[str, Any] = {
        "version": 8,
        "name": f"citybrain-{theme}",
        # MapLibre refuses symbol layers (plotly adds one per scattermap trace, for
        # text) in a style without a glyphs URL. Ours is on this server; no text is
        # drawn on the map, so nothing is fetched from it.
        "glyphs": GLYPHS_URL,
        # Not empty on purpose: an empty "sources" object is stripped on the way into
        # plotly, the stored style then never equals the next figure's, and plotly
        # calls setStyle on every update, which MapLibre answers with an error.
        "sources": {"citybrain-none": {"type": "geojson", "data": {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {},
                          "geometry": {"type": "Point", "coordinates": [0, 0]}}]}}},
        "layers": [{"id": "background", "type": "background",
                    "paint": {"background-color": colours["background"]}}],
    }
    if tile_url:
        style["sources"]["basemap"] = {"type": "raster", "tiles": [tile_url], "tileSize": 256,
                                       "attribution": tile_attribution}
        style["layers"].append({"id": "basemap", "type": "raster", "source": "basemap",
                                "paint": {"raster-opacity": 0.55 if theme == "dark" else 0.9}})
    return style


def themed_scale(colours: Sequence[str], theme: str) -> list[str]:
    """The layer's scale; on the light theme low values start pale, not near-black."""
    if theme == "light":
        return ["#f3efe6", *list(colours)[2:]]
    return list(colours)


def colorscale(colours: tuple[str, ...] | list[str]) -> list[list[Any]]:
    n = len(colours)
    return [[i / (n - 1), c] for i, c in enumerate(colours)]


def _fmt(metric: Metric) -> str:
    return f",.{metric.decimals}f"


def z_range(plan: HexPlan) -> float:
    """Top of the colour scale: the 98th percentile, so one outlier does not wash out."""
    values = plan.values.to_numpy(dtype=float)
    zmax = float(np.quantile(values, 0.98)) if len(values) else 1.0
    return zmax if zmax > 0 else 1.0


def hex_trace(plan: HexPlan, metric: Metric, layer_id: str, view: MapView,
              stale: bool = False) -> dict[str, Any]:
    layer = LAYERS[layer_id]
    lang = view.language
    cells = plan.grid
    unit = data_text(pick(lang, metric.unit_zh, metric.unit_en))
    title = data_text(pick(lang, metric.title_zh, metric.title_en))
    layer_title = data_text(layer.title(lang))
    # A stale layer is never drawn as if it were live: grey, faded, and said so.
    colours = STALE_SCALE if stale else themed_scale(layer.colorscale, view.theme)
    return {
        "type": "choroplethmap",
        "uid": "hexes",
        "name": layer.title(lang),
        "geojson": cells_geojson(cells),
        "locations": [to_hex(c) for c in cells],
        "featureidkey": "id",
        "z": plan.z,
        "zmin": 0,
        "zmax": z_range(plan),
        "colorscale": colorscale(colours),
        "marker": {"opacity": 0.4 if stale else 0.78,
                   "line": {"width": 0.4, "color": THEMES[view.theme]["hex_line"]}},
        "colorbar": {
            "title": {"text": f"{layer.symbol} {title}" + (f"<br>({unit})" if unit else ""),
                      "side": "top"},
            "thickness": 14, "len": 0.45, "x": 0.995, "xanchor": "right", "y": 0.02,
            "yanchor": "bottom", "bgcolor": "rgba(0,0,0,0)",
            "tickfont": {"color": THEMES[view.theme]["text"]},
            "title_font": {"color": THEMES[view.theme]["text"]},
            "tickformat": "~s",
        },
        "hovertemplate": (f"<b>{layer.symbol} {layer_title}</b><br>{title}: "
                          f"%{{z:{_fmt(metric)}}} {unit}<br>{t('map.cell', lang)} %{{location}}"
                          f" · res {plan.res}<extra></extra>"),
    }


def value_patch(plan: HexPlan, hex_index: int, layer_id: str, stale: bool,
                theme: str = "dark", drawn: NDArray[np.float64] | None = None,
                restyle: bool = True) -> Any:
    """A Patch that updates only the hexagon values (and the stale look) of a drawn map.

    ``drawn`` is what the map shows now (:func:`z_values` of the last plan sent, same
    grid): then only the cells whose value changed travel, as one assignment each,
    unless that would be longer than the whole value list. ``restyle`` also resends
    the colour scale and opacity (needed when the layer turned stale or fresh).
    """
    from dash import Patch

    patch = Patch()
    trace = patch["data"][hex_index]
    changed = None if drawn is None else changed_cells(drawn, z_values(plan.z))
    if changed is not None and len(changed) * ASSIGN_BYTES < len(orjson.dumps(plan.z)):
        values = trace["z"]
        for i in changed.tolist():
            values[i] = plan.z[i]
    else:
        trace["z"] = plan.z
    trace["zmax"] = z_range(plan)
    if restyle:
        trace["colorscale"] = colorscale(STALE_SCALE if stale else themed_scale(
            LAYERS[layer_id].colorscale, theme))
        trace["marker"]["opacity"] = 0.4 if stale else 0.78
    return patch


#: Bytes one value assignment takes in a serialised Patch
#: (``{"operation":"Assign","location":["data",1,"z",1234],"params":{"value":12.0}}``).
ASSIGN_BYTES = 80


def z_values(z: Sequence[float | None]) -> NDArray[np.float64]:
    """A plan's hexagon values as floats (NaN for no value), to compare two ticks."""
    return np.array(z, dtype=np.float64)  # None becomes NaN


def changed_cells(before: NDArray[np.float64], after: NDArray[np.float64]) -> NDArray[np.intp] | None:
    """Positions whose value differs (NaN equals NaN), or None for another grid's values."""
    if len(before) != len(after):
        return None
    return np.flatnonzero((before != after) & ~(np.isnan(before) & np.isnan(after)))


def points_trace(rows: pd.DataFrame, layer_id: str, view: MapView, uid: str,
                 size: float = 7.0) -> dict[str, Any]:
    layer = LAYERS[layer_id]
    lang = view.language
    # Names and categories come from other systems: plotly renders hover text as HTML.
    names = _hover_column(rows, "name")
    categories = _hover_column(rows, "category")
    return {
        "type": "scattermap",
        "uid": uid,
        "name": layer.title(lang),
        "mode": "markers",
        "lat": np.round(rows["lat"].to_numpy(dtype=float), 5).tolist(),
        "lon": np.round(rows["lon"].to_numpy(dtype=float), 5).tolist(),
        "customdata": np.column_stack([_hover_column(rows, "id"), names,
                                       categories]).tolist() if len(rows) else [],
        "marker": {"size": size, "color": layer.marker_colour, "opacity": 0.85},
        "hovertemplate": (f"<b>{layer.symbol} %{{customdata[1]}}</b><br>%{{customdata[2]}}"
                          "<br>%{customdata[0]}<extra></extra>"),
    }


def _hover_column(rows: pd.DataFrame, column: str) -> np.ndarray:
    """A column as escaped hover text (:func:`render.text.data_text`); "" where missing."""
    if column not in rows:
        return np.full(len(rows), "", dtype=object)
    return data_texts(rows[column])


def line_trace(lats: list[float | None], lons: list[float | None], colour: str, width: float,
               uid: str) -> dict[str, Any]:
    return {"type": "scattermap", "uid": uid, "mode": "lines", "lat": lats, "lon": lons,
            "line": {"color": colour, "width": width}, "hoverinfo": "skip", "showlegend": False}


def base_traces(data: CityData, theme: str) -> list[dict[str, Any]]:
    """The offline base map: the top admin level filled as land, with its outlines."""
    if not data.boundaries:
        return []
    colours = THEMES[theme]
    top = data.boundaries[0]
    features = data.boundary_geojson(top.spec.level)
    return [
        {"type": "choroplethmap", "uid": "base-land", "geojson": features,
         "locations": [f["id"] for f in features["features"]], "featureidkey": "id",
         "z": [0] * len(features["features"]), "zmin": 0, "zmax": 1,
         "colorscale": [[0, colours["ground"]], [1, colours["ground"]]], "showscale": False,
         "marker": {"line": {"width": 1.2, "color": colours["line"]}, "opacity": 1.0},
         "hoverinfo": "skip"},
    ]


def map_figure(data: CityData, view: MapView, extra_traces: Sequence[dict[str, Any]] = (),
               disclosure: Disclosure | None = None) -> tuple[dict[str, Any], HexPlan]:
    """The whole map for a view, and the plan (resolution, counts, caps) behind it.

    ``extra_traces`` (e.g. events and alert cells, built by the caller from its own
    state) are drawn above the overlays and below the highlights. ``disclosure``:
    the public audience's suppression (person-level overlays are left out).
    """
    settings = data.config.map
    colours = THEMES[view.theme]
    metric = data.metric(view.hex_layer, view.metric)
    plan = plan_hexes(data, view, disclosure)
    traces = base_traces(data, view.theme)
    stale = view.moment is None and data.layer_stale(view.hex_layer)
    if plan.mode == "hex":
        traces.append(hex_trace(plan, metric, view.hex_layer, view, stale))
    else:
        traces.append(points_trace(plan.points if plan.points is not None else pd.DataFrame(),
                                   view.hex_layer, view, "hexes", size=8))
    if view.outline:
        lats, lons = data.outlines(view.outline)
        traces.append(line_trace(lats, lons, colours["muted"], 0.8, "outlines"))
    budget = max(1, settings.max_points // max(1, len(view.overlays)))
    for layer_id in view.overlays:
        layer = LAYERS.get(layer_id)  # other overlays (events, alerts) come as extra_traces
        if disclosure is not None and layer is not None and layer.overlay_role \
                and disclosure.person_level(layer_id, layer.overlay_role):
            continue  # people as points: never for the public
        if layer is not None and layer.overlay == "points" and layer.overlay_role:
            rows = data.frame(layer_id, layer.overlay_role)
            rows = points_in_view(rows, view.bbox)
            if len(rows) > budget:
                rows = rows.iloc[:: int(np.ceil(len(rows) / budget))]
            traces.append(points_trace(rows, layer_id, view, f"overlay-{layer_id}", size=6))
    traces.extend(extra_traces)
    if view.area is not None:
        lats, lons = data.unit_outline(*view.area)
        traces.append(line_trace(lats, lons, colours["highlight"], 2.5, "area"))
    if view.selected_cell is not None:
        ring = cell_ring(view.selected_cell)
        traces.append(line_trace([p[1] for p in ring], [p[0] for p in ring],
                                 colours["highlight"], 3.0, "selected"))
    figure = {
        "data": traces,
        "layout": {
            "map": {
                "style": map_style(view.theme, settings.tile_url, settings.tile_attribution),
                "center": {"lat": view.center[0], "lon": view.center[1]},
                "zoom": view.camera_zoom if view.camera_zoom is not None else view.zoom,
                "uirevision": view.revision,
            },
            "uirevision": view.revision,
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "paper_bgcolor": colours["background"],
            "plot_bgcolor": colours["background"],
            "showlegend": False,
            "font": {"color": colours["text"],
                     "family": "'Noto Sans CJK SC', 'Source Han Sans SC', 'Microsoft YaHei', "
                               "'PingFang SC', system-ui, sans-serif"},
            "hoverlabel": {"font": {"size": 15}},
        },
    }
    return figure, plan


def points_in_view(rows: pd.DataFrame, bbox: BBox | None) -> pd.DataFrame:
    """Rows whose point lies inside (west, south, east, north); all rows when bbox is None."""
    if bbox is None or rows.empty:
        return rows
    west, south, east, north = bbox
    lat, lon = rows["lat"].to_numpy(), rows["lon"].to_numpy()
    return rows.loc[(lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)]
