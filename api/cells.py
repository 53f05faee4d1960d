"""Read-only JSON API for other city systems: health, layers, cells, place profiles.

What it serves is computed by the same functions the map uses
(:meth:`CityData.cells`, :func:`render.profile.cell_profile`), so the API and the
map cannot disagree. Errors are JSON with an HTTP status, never an HTML page.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, jsonify, request

from geo.hexes import cell_center, from_hex, to_hex
from layers import LAYERS
from render.profile import cell_profile
from store.cache import CACHE
from store.city import CityData

API_RESOLUTIONS = range(7, 11)


class ApiError(Exception):
    def __init__(self, status: int, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def _data() -> CityData:
    from flask import current_app

    return current_app.extensions["citybrain"]  # type: ignore[no-any-return]


def layer_cells(data: CityData, layer_id: str, res: int, metric_name: str | None) -> list[dict[str, Any]]:
    """``[{cell, value, lat, lon}]`` for a layer metric at ``res``: exactly what the map draws."""
    metric = data.metric(layer_id, metric_name)
    values = data.cells(layer_id, metric, res)
    out = []
    for cell, value in zip(values.index.to_numpy(), values.to_numpy(), strict=True):
        lat, lon = cell_center(int(cell))
        out.append({"cell": to_hex(int(cell)), "value": round(float(value), 6),
                    "lat": round(lat, 6), "lon": round(lon, 6)})
    return out


def health_document(data: CityData, callback_errors: dict[str, Any] | None = None,
                    ingest_running: bool | None = None,
                    sharing: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``/api/health`` serves; ``sharing`` is this process's part in shared live state."""
    sources = [h.as_dict() for h in data.health.values()]
    rejected: dict[str, int] = {}
    for h in data.health.values():
        for reason, n in h.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + int(n)
    stale_layers = [layer for layer in LAYERS if data.layer_stale(layer)]
    failing = [s["name"] for s in sources if s["last_error"]]
    history = data.history_store
    history_down = history is not None and not history.healthy
    return {
        "status": "ok" if not failing and not stale_layers and not history_down else "degraded",
        "city": data.config.city.name,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_version": data.version,
        "layers": {layer: {"stale": layer in stale_layers,
                           "sources": [s.name for s in data.config.sources_for(layer)]}
                   for layer in LAYERS},
        "clock": {"city_time": data.clock.now().isoformat(), "speed": data.clock.speed},
        "ingest": {"streaming_sources": [s.name for s in data.streaming_sources()],
                   "running": ingest_running,
                   **(sharing or {"shared": None, "role": "standalone", "pid": os.getpid()})},
        "history": {"store": "memory", "seconds": data.config.live.history} if history is None
        else history.status(),
        "callback_errors": dict(callback_errors or {"count": 0}),
        "rows_rejected": int(sum(rejected.values())),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "sources": sources,
    }


def create_blueprint() -> Blueprint:
    api = Blueprint("citybrain_api", __name__, url_prefix="/api")

    @api.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return jsonify({"error": exc.message, "status": exc.status, **exc.detail}), exc.status

    @api.after_request
    def _worker(response: Any) -> Any:
        # Which gunicorn worker answered: operators (and tests) can tell them apart.
        response.headers["X-Citybrain-Worker"] = str(os.getpid())
        return response

    @api.get("/health")
    def health() -> Any:
        from flask import current_app

        engine = current_app.extensions.get("citybrain_ingest")
        shared = current_app.extensions.get("citybrain_shared")
        return jsonify(health_document(
            _data(), current_app.extensions.get("citybrain_callback_errors"),
            None if engine is None else engine.running,
            None if shared is None else shared.status()))

    @api.get("/layers")
    def layers() -> Any:
        data = _data()
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
        data = _data()
        if layer_id not in LAYERS:
            raise ApiError(404, f"unknown layer {layer_id!r}", valid_layers=list(LAYERS))
        raw_res = request.args.get("res", "8")
        try:
            res = int(raw_res)
        except ValueError:
            raise ApiError(400, f"res must be an integer, got {raw_res!r}") from None
        if res not in API_RESOLUTIONS:
            raise ApiError(400, f"res must be between {API_RESOLUTIONS.start} and "
                                f"{API_RESOLUTIONS.stop - 1}, got {res}")
        metric_name = request.args.get("metric")
        try:
            metric = data.metric(layer_id, metric_name)
        except KeyError as exc:
            raise ApiError(400, str(exc.args[0]),
                           valid_metrics=[m.name for m in LAYERS[layer_id].metrics(
                               data.config.sources)]) from None
        for _ in range(5):
            version = data.version
            try:
                payload = _cached_cells(layer_id, res, metric.name, version, _lineage())
                break
            except DataMoved:
                continue  # new data arrived mid-computation: again, at the new version
        else:  # the data moves faster than one computation: say which version it started at
            payload = layer_cells(data, layer_id, res, metric.name)
        response = jsonify(payload)
        response.headers["X-Citybrain-Stale"] = "1" if data.layer_stale(layer_id) else "0"
        response.headers["X-Citybrain-Data-Version"] = str(version)
        return response

    @api.get("/cells/<cell_id>")
    def cell(cell_id: str) -> Any:
        try:
            cell = from_hex(cell_id)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return jsonify(cell_profile(_data(), cell))

    @api.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def _not_found(rest: str) -> Any:
        # Dash serves its page for any unknown path; under /api/ the answer is JSON.
        raise ApiError(404, "not found", path=f"/api/{rest}")

    return api


@CACHE.memoize()
def _cached_cells(layer_id: str, res: int, metric_name: str, version: int,
                  lineage: str) -> list[dict[str, Any]]:
    """Memoised per data version: every worker sharing the cache serves the same payload.

    ``lineage`` says whose versions these are: the shared live state's session when
    workers replicate one log (so they share entries), else this app alone (so a
    Redis cache never hands one process's version 7 to another, or to a restart).
    """
    data = _data()
    payload = layer_cells(data, layer_id, res, metric_name)
    if data.version != version:
        # Computed while new data arrived: the body belongs to no single version, and
        # memoised under ``version`` another worker would serve it as that version.
        raise DataMoved(version)
    return payload


class DataMoved(Exception):
    """The data version changed during a computation memoised per version."""


def _lineage() -> str:
    from flask import current_app

    return str(current_app.extensions["citybrain_lineage"])


def register_api(server: Flask, data: CityData) -> None:
    server.extensions["citybrain"] = data
    server.extensions["citybrain_lineage"] = getattr(data, "lineage", None) or uuid.uuid4().hex
    server.register_blueprint(create_blueprint())


__all__ = ["register_api", "layer_cells", "health_document"]
