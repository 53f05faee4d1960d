"""Read-only JSON API for other city systems: layers, cells, place profiles.

What it serves is computed by the same functions the map uses
(:meth:`CityData.cells`, :func:`render.profile.cell_profile`), so the API and the
map cannot disagree. Errors are JSON with an HTTP status (:mod:`api.errors`), never
an HTML page: also for any unknown path under ``/api/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from flask import Blueprint, jsonify, request

from api.errors import ApiError, install
from api.health import stamp_worker
from api.paging import keyset_page, paged, parse_cursor, parse_limit
from api.params import bad_parameter, cell_param
from config.city import API_RESOLUTIONS
from geo.hexes import cell_center, to_hex
from layers import LAYERS
from render.privacy import Disclosure
from render.profile import cell_profile
from store.cache import CACHE
from store.city import CityData

if TYPE_CHECKING:
    from services import Services

#: The largest page of cells one request may ask for (without ``limit``: every cell).
MAX_CELLS_LIMIT = 100_000


def layer_cells(data: CityData, layer_id: str, res: int, metric_name: str | None,
                disclosure: Disclosure | None = None) -> list[dict[str, Any]]:
    """``[{cell, value, lat, lon}]`` for a layer metric at ``res``: exactly what the map draws.

    With a ``disclosure`` (the public audience), cells whose person-level count is
    suppressed come as ``{cell, value: null, suppressed: "< k", lat, lon}``.
    """
    metric = data.metric(layer_id, metric_name)
    values = data.cells(layer_id, metric, res)
    hidden = pd.Index([], dtype=np.int64)
    if disclosure is not None:
        values, hidden = disclosure.cells(layer_id, metric, values)
    out = []
    for cell, value in zip(values.index.to_numpy(), values.to_numpy(), strict=True):
        lat, lon = cell_center(int(cell))
        out.append({"cell": to_hex(int(cell)), "value": round(float(value), 6),
                    "lat": round(lat, 6), "lon": round(lon, 6)})
    for cell in hidden.to_numpy():
        lat, lon = cell_center(int(cell))
        out.append({"cell": to_hex(int(cell)), "value": None,
                    "suppressed": disclosure.shown() if disclosure else None,
                    "lat": round(lat, 6), "lon": round(lon, 6)})
    return out


def create_blueprint(services: Services) -> Blueprint:
    """``/api/layers``, ``/api/layers/<id>/cells``, ``/api/cells/<cell>`` and JSON 404s under ``/api``."""
    api = Blueprint("citybrain_api", __name__, url_prefix="/api")
    install(api)
    api.after_request(stamp_worker)
    data = services.store

    def _disclosure(audience: str) -> Disclosure | None:
        """Suppression for the public audience; None (everything) for viewers and operators."""
        return services.disclosure if audience == "public" else None

    @CACHE.memoize()
    def cached_cells(layer_id: str, res: int, metric_name: str, version: int,
                     lineage: str, audience: str = "detail") -> list[dict[str, Any]]:
        """Memoised per data version: every worker sharing the cache serves the same payload.

        ``lineage`` says whose versions these are: the shared live state's session when
        workers replicate one log (so they share entries), else this app alone (so a
        Redis cache never hands one process's version 7 to another, or to a restart).
        The cache key is the function's qualified name and these arguments, so it is
        the same in every worker.
        """
        payload = layer_cells(data, layer_id, res, metric_name, _disclosure(audience))
        if data.version != version:
            # Computed while new data arrived: the body belongs to no single version, and
            # memoised under ``version`` another worker would serve it as that version.
            raise DataMoved(version)
        return payload

    @api.get("/layers")
    def layers() -> Any:
        return jsonify([{
            "id": layer.id, "title_zh": layer.title_zh, "title_en": layer.title_en,
            "symbol": layer.symbol, "stale": data.layer_stale(layer.id),
            "default_metric": layer.metrics(data.config.sources)[0].name,
            "metrics": [{"name": m.name, "title_zh": m.title_zh, "title_en": m.title_en,
                         "unit_zh": m.unit_zh, "unit_en": m.unit_en, "aggregation": m.agg}
                        for m in layer.metrics(data.config.sources)],
            "sources": [{"name": s.name, "role": s.role, "adapter": s.adapter,
                         "title_zh": s.title_zh, "title_en": s.title_en,
                         "simulated": s.simulated}
                        for s in data.config.sources_for(layer.id)],
        } for layer in LAYERS.values()])

    @api.get("/layers/<layer_id>/cells")
    def cells(layer_id: str) -> Any:
        if layer_id not in LAYERS:
            raise ApiError(404, f"unknown layer {layer_id[:40]!r}", parameter="layer_id",
                           valid_layers=list(LAYERS))
        raw_res = request.args.get("res", "8")
        try:
            res = int(raw_res)
        except ValueError:
            raise bad_parameter("res", f"res must be an integer, got {raw_res[:40]!r}") from None
        if res not in API_RESOLUTIONS:
            raise bad_parameter("res", f"res must be between {API_RESOLUTIONS.start} and "
                                       f"{API_RESOLUTIONS.stop - 1}, got {raw_res[:40]}")
        metric_name = request.args.get("metric")
        try:
            metric = data.metric(layer_id, metric_name)
        except KeyError as exc:
            raise ApiError(400, str(exc.args[0])[:200], parameter="metric",
                           valid_metrics=[m.name for m in LAYERS[layer_id].metrics(
                               data.config.sources)]) from None
        audience = services.audience()
        for _ in range(5):
            version = data.version
            try:
                payload = cached_cells(layer_id, res, metric.name, version, services.lineage,
                                       audience)
                break
            except DataMoved:
                continue  # new data arrived mid-computation: again, at the new version
        else:  # the data moves faster than one computation: say which version it started at
            payload = layer_cells(data, layer_id, res, metric.name, _disclosure(audience))
        limit = parse_limit(request.args.get("limit"), None, MAX_CELLS_LIMIT)
        after = parse_cursor(request.args.get("cursor"), f"cells:{layer_id}:{res}", (str,))
        # Keyset on the cell id: a page of a later data version continues where the last
        # one stopped (each cell is listed once, with its value at that page's version).
        page, following = keyset_page(payload, lambda row: (row["cell"],), after, limit,
                                      descending=False)
        response = paged(jsonify(page), f"cells:{layer_id}:{res}", following)
        response.headers["X-Citybrain-Stale"] = "1" if data.layer_stale(layer_id) else "0"
        response.headers["X-Citybrain-Data-Version"] = str(version)
        return response

    @api.get("/cells/<cell_id>")
    def cell(cell_id: str) -> Any:
        # Only the resolutions the city serves: a resolution-0 cell or a pentagon would
        # answer a profile of millions of km² that none of the city's data can fill.
        cell = cell_param(cell_id, "cell_id", data.config.map.served_resolutions)
        profile = cell_profile(data, cell)
        disclosure = _disclosure(services.audience())
        return jsonify(profile if disclosure is None else disclosure.profile(profile, cell=cell))

    @api.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def _not_found(rest: str) -> Any:
        # Dash serves its page for any unknown path; under /api/ the answer is JSON.
        raise ApiError(404, "not found", path=f"/api/{rest}")

    return api


class DataMoved(Exception):
    """The data version changed during a computation memoised per version."""


__all__ = ["create_blueprint", "layer_cells", "DataMoved"]
