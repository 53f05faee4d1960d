"""``GET /api/health``: is the city's data fresh, are its sources, workers and dependencies well.

``status`` is ``ok`` unless a source fails, a layer is stale, the history store is
down or any dependency is not ``ok`` (``degraded``). ``dependencies`` names each
one (Redis, PostgreSQL, brokers, sources, event intake, alert evaluation) with its
state, since when and why (:mod:`services.dependencies`); ``down`` lists those not ok.
Each source counts its rejected rows by reason; ``GET /api/dead-letters?source=``
(operators) shows the newest rejected rows and messages with their raw values.
Every ``/api`` answer names the worker process that gave it
(``X-Citybrain-Worker``), so operators and tests can tell gunicorn workers apart.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from api.auth import require_role
from api.errors import ApiError, install
from layers import LAYERS
from services.dependencies import DependencyWatch
from store.city import CityData

if TYPE_CHECKING:
    from services import Services


def health_document(data: CityData, callback_errors: dict[str, Any] | None = None,
                    ingest_running: bool | None = None,
                    sharing: dict[str, Any] | None = None,
                    dependencies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What ``/api/health`` serves; ``sharing`` is this process's part in shared live state,
    ``dependencies`` what :class:`api.dependencies.DependencyWatch` found."""
    sources = [h.as_dict() for h in data.health.values()]
    rejected: dict[str, int] = {}
    for h in data.health.values():
        for reason, n in h.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + int(n)
    stale_layers = [layer for layer in LAYERS if data.layer_stale(layer)]
    failing = [s["name"] for s in sources if s["last_error"]]
    history = data.history_store
    history_down = history is not None and not history.healthy
    not_ok = [d["name"] for d in dependencies or () if d["state"] != "ok"]
    return {
        "status": "ok" if not failing and not stale_layers and not history_down and not not_ok
        else "degraded",
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
        "dependencies": list(dependencies or ()),
        "down": not_ok,
    }


def stamp_worker(response: Response) -> Response:
    """Say which worker process answered (``X-Citybrain-Worker``)."""
    response.headers["X-Citybrain-Worker"] = str(os.getpid())
    return response


def create_health_blueprint(services: Services) -> Blueprint:
    """``/api/health`` for the app whose ``services`` these are."""
    api = Blueprint("citybrain_health", __name__, url_prefix="/api")
    install(api)
    api.after_request(stamp_worker)
    watch = services.dependencies or DependencyWatch(services)

    @api.get("/health")
    def health() -> Any:
        shared = services.replication
        return jsonify(health_document(
            services.store, services.callback_errors.as_dict(), services.ingest.running,
            None if shared is None else shared.status(), watch.report()))

    @api.get("/dead-letters")
    @require_role(services.auth, "operator")
    def dead_letters() -> Any:
        """The newest rejected rows and messages per source (operators only: raw values)."""
        wanted = request.args.get("source")
        sources = services.store.health
        if wanted is not None and wanted not in sources:
            raise ApiError(404, f"unknown source {wanted!r}; sources are: "
                           + ", ".join(sources))
        return jsonify({"sources": [
            {"name": h.name, "rejected_by_reason": dict(sorted(h.rejected.items())),
             "dead_letters": [d.as_dict() for d in reversed(h.dead_letters)]}
            for h in sources.values() if wanted in (None, h.name)]})

    return api


__all__ = ["create_health_blueprint", "health_document", "stamp_worker"]
