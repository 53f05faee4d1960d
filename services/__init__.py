"""The running city's services, as one typed object.

``create_app(config)`` builds one :class:`Services` and hands it to every callback
module (``register(app, services)``) and every API blueprint, instead of each of
them finding what it needs under a string key in ``server.extensions``.

This package sits between operations/rendering and callbacks/API in the layering
contract (see ``[tool.importlinter]`` in pyproject.toml): it may import the store,
the event pipeline and the vital signs; callbacks and the API import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.city import CityConfig
    from ops.auth import Auth
    from ops.events.pipeline import EventPipeline
    from ops.signs.service import VitalSigns
    from store.city import CityData
    from store.ingest import IngestEngine
    from store.replication import SharedLive


@dataclass
class CallbackErrors:
    """Callbacks that failed in this process (logged, never shown on a wall), for /api/health."""

    count: int = 0
    last: str | None = None

    def record(self, error: BaseException) -> None:
        self.count += 1
        self.last = f"{type(error).__name__}: {error}"


@dataclass
class Services:
    """Everything a callback or an API route may use, built once per app.

    ``events``, ``signs`` and ``auth`` are None when the city configures no event
    pipeline or vital signs; ``replication`` is None unless several workers share
    the live state.
    """

    config: CityConfig
    store: CityData
    ingest: IngestEngine
    events: EventPipeline | None = None
    signs: VitalSigns | None = None
    auth: Auth | None = None
    replication: SharedLive | None = None
    #: A stable id of this deployment's data lineage (answers the API's X-Citybrain-Lineage).
    lineage: str = ""
    callback_errors: CallbackErrors = field(default_factory=CallbackErrors)
