"""``/api/signs`` and ``/api/alerts``: the city's vital signs and alerts over HTTP.

- ``GET /api/signs``: ``{"time", "indicators": [reading …]}`` (see
  :meth:`~ops.signs.indicators.IndicatorReading.as_dict`); ``time`` is when they
  were evaluated, each reading's ``time`` the moment its value is for (a bucketed
  indicator's stops at its sources' ``watermark``, also given);
- ``GET /api/alerts?state=active|cleared|all&limit=&cursor=``: ``{"time", "errors",
  "suppressed", "alerts": […], "next_cursor"}``, newest first (by ``first_seen``, then
  the alert's number); every alert unless ``limit`` (1 … 1,000) is given, then paged
  by cursor (:mod:`api.paging`);
- ``POST /api/alerts/<id>/ack`` (JSON body, may be ``{}``): acknowledges an alert.
  When an ``authorize`` hook is given, it must return True (e.g. "the user is an
  operator") or the answer is 403; ``actor`` names who acknowledged. Without a hook
  anyone may acknowledge — connect it whenever users are configured
  (:func:`operator_hooks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.auth import no_users
from api.errors import ApiError, install
from api.health import stamp_worker
from api.paging import keyset_page, next_cursor, paged, parse_cursor, parse_limit
from ops.auth import Auth
from ops.signs.indicators import reference_time
from ops.signs.service import VitalSigns

ALERT_STATES = ("active", "cleared", "all")
MAX_LIMIT = 1000


def operator_hooks(auth: Auth | None) -> tuple[Callable[[], bool], Callable[[], str]]:
    """``(authorize, actor)`` for :func:`create_signs_blueprint`: only a signed-in operator
    of ``auth`` may acknowledge, and is named as the actor. Without users (no ``auth``,
    or no ``[[users]]``) nobody may, and the 403 says how to add users."""

    def authorize() -> bool:
        if auth is None or not auth.users:
            raise no_users()
        user = auth.user_for_request()
        return user is not None and user.role == "operator"

    def actor() -> str:
        user = None if auth is None else auth.user_for_request()
        return "anonymous" if user is None else str(user.name)

    return authorize, actor


def create_signs_blueprint(signs: VitalSigns, authorize: Callable[[], bool] | None = None,
                           actor: Callable[[], str] | None = None) -> Blueprint:
    """``/api/signs`` and ``/api/alerts`` for ``signs`` (see module docs)."""
    api = Blueprint("citybrain_signs", __name__, url_prefix="/api")
    install(api)

    @api.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return stamp_worker(response)

    @api.get("/signs")
    def get_signs() -> Any:
        readings, changes = signs.current()
        # Each indicator carries its own time: bucketed ones stop at their data's watermark.
        return jsonify({"time": changes.time.isoformat(),
                        "indicators": [r.as_dict() for r in readings]})

    @api.get("/alerts")
    def get_alerts() -> Any:
        state = request.args.get("state", "active")
        if state not in ALERT_STATES:
            raise ApiError(400, f"unknown state {state[:40]!r}", parameter="state",
                           valid_states=list(ALERT_STATES))
        limit = parse_limit(request.args.get("limit"), None, MAX_LIMIT)
        after = parse_cursor(request.args.get("cursor"), "alerts", (int, int))
        _, changes = signs.current()
        page, following = keyset_page(signs.book.listed(state),  # type: ignore[arg-type]
                                      lambda a: a.order_key, after, limit)
        body = {"time": changes.time.isoformat(), "errors": changes.errors,
                "suppressed": changes.suppressed, "alerts": [a.as_dict() for a in page],
                "next_cursor": next_cursor("alerts", following)}
        return paged(jsonify(body), "alerts", following)

    @api.post("/alerts/<alert_id>/ack")
    def ack(alert_id: str) -> Any:
        if authorize is not None and not authorize():
            raise ApiError(403, "acknowledging alerts needs the operator role")
        # JSON only: a cross-site HTML form cannot send it, so a session cannot be misused.
        if not request.is_json or not isinstance(request.get_json(silent=True), dict):
            raise ApiError(415, "send a JSON object (Content-Type: application/json), e.g. {}")
        who = actor() if actor is not None else "anonymous"
        try:
            alert = signs.book.ack(alert_id, who, reference_time(signs.data))
        except KeyError:
            raise ApiError(404, f"no alert {alert_id!r}", id=alert_id) from None
        return jsonify(alert.as_dict())

    return api


__all__ = ["create_signs_blueprint", "operator_hooks"]
