"""Vital signs and alerts of a running city, and their JSON API.

:class:`VitalSigns` ties a city's indicators, their sample history and its alert
book together: :meth:`VitalSigns.refresh` evaluates every indicator at the city's
time, records the samples, and checks the rules on the same readings; the
results are kept so that many pages (and the API) can read them without
recomputing. The UI calls :meth:`VitalSigns.current`; the ingest loop may call
:meth:`VitalSigns.refresh` after each round.

The blueprint (:func:`create_signs_blueprint`):

- ``GET /api/signs``: ``{"time", "indicators": [reading …]}`` (see
  :meth:`~ops.signs.indicators.IndicatorReading.as_dict`);
- ``GET /api/alerts?state=active|cleared|all``: ``{"time", "alerts": […]}``;
- ``POST /api/alerts/<id>/ack`` (JSON body, may be ``{}``): acknowledges an alert.
  When an ``authorize`` hook is given, it must return True (e.g. "the user is an
  operator") or the answer is 403; ``actor`` names who acknowledged. Without a hook
  anyone may acknowledge — connect it whenever users are configured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ops.signs.alerts import AlertBook, AlertChanges
from ops.signs.indicators import IndicatorHistory, IndicatorReading, evaluate_all, reference_time
from ops.signs.settings import Indicator, OpsSettings, Rule, parse_ops_settings

if TYPE_CHECKING:
    from flask import Blueprint

    from store.city import CityData


class VitalSigns:
    """One city's indicators, sample history and alert book, refreshed together.

    Example::

        signs = VitalSigns.from_config(data, raw_toml)
        readings, alerts = signs.current()     # cached for ``max_age`` wall seconds
    """

    def __init__(self, data: CityData, indicators: Sequence[Indicator], rules: Sequence[Rule] = (),
                 *, history: IndicatorHistory | None = None, max_age: float = 2.0,
                 with_forecast: bool = True) -> None:
        self.data = data
        self.indicators = tuple(indicators)
        self.history = history or IndicatorHistory()
        self.book = AlertBook(rules, self.indicators, self.history)
        self.max_age = max_age
        self.with_forecast = with_forecast
        self._readings: list[IndicatorReading] = []
        self._changes: AlertChanges | None = None
        self._computed_at = -float("inf")
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, data: CityData, raw: Mapping[str, Any] | OpsSettings,
                    **options: Any) -> VitalSigns:
        """From the parsed TOML (its ``indicators`` and ``rules``) or parsed settings."""
        settings = raw if isinstance(raw, OpsSettings) else parse_ops_settings(
            raw, data.config.sources)
        return cls(data, settings.indicators, settings.rules, **options)

    def refresh(self, now: pd.Timestamp | None = None) -> tuple[list[IndicatorReading], AlertChanges]:
        """Evaluate every indicator and rule at ``now`` (default: the city's time)."""
        now = reference_time(self.data) if now is None else pd.Timestamp(now)
        with self._lock:
            readings = evaluate_all(self.data, self.indicators, now, self.history,
                                    self.with_forecast)
            changes = self.book.evaluate(self.data, now, {r.name: r for r in readings})
            self._readings, self._changes = readings, changes
            self._computed_at = time.monotonic()
            return readings, changes

    def current(self) -> tuple[list[IndicatorReading], AlertChanges]:
        """The latest readings and alert changes, refreshed when older than ``max_age`` s."""
        with self._lock:
            if self._changes is not None and time.monotonic() - self._computed_at < self.max_age:
                return self._readings, self._changes
        return self.refresh()


def create_signs_blueprint(signs: VitalSigns, authorize: Callable[[], bool] | None = None,
                           actor: Callable[[], str] | None = None) -> Blueprint:
    """``/api/signs`` and ``/api/alerts`` for ``signs`` (see module docs)."""
    from flask import Blueprint, Response, jsonify, request

    api = Blueprint("citybrain_signs", __name__, url_prefix="/api")

    @api.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    def error(status: int, message: str, **detail: Any) -> tuple[Response, int]:
        return jsonify({"error": message, "status": status, **detail}), status

    @api.get("/signs")
    def get_signs() -> Any:
        readings, _ = signs.current()
        moment = readings[0].time if readings else reference_time(signs.data)
        return jsonify({"time": moment.isoformat(), "indicators": [r.as_dict() for r in readings]})

    @api.get("/alerts")
    def get_alerts() -> Any:
        state = request.args.get("state", "active")
        if state not in ("active", "cleared", "all"):
            return error(400, f"unknown state {state!r}", valid_states=["active", "cleared", "all"])
        _, changes = signs.current()
        return jsonify({"time": changes.time.isoformat(), "errors": changes.errors,
                        "suppressed": changes.suppressed,
                        "alerts": signs.book.as_dicts(state)})  # type: ignore[arg-type]

    @api.post("/alerts/<alert_id>/ack")
    def ack(alert_id: str) -> Any:
        if authorize is not None and not authorize():
            return error(403, "acknowledging alerts needs the operator role")
        # JSON only: a cross-site HTML form cannot send it, so a session cannot be misused.
        if not request.is_json or not isinstance(request.get_json(silent=True), dict):
            return error(415, "send a JSON object (Content-Type: application/json), e.g. {}")
        who = actor() if actor is not None else "anonymous"
        try:
            alert = signs.book.ack(alert_id, who, reference_time(signs.data))
        except KeyError:
            return error(404, f"no alert {alert_id!r}", id=alert_id)
        return jsonify(alert.as_dict())

    return api


__all__ = ["VitalSigns", "create_signs_blueprint"]
