"""``/api/events``: the event queue over HTTP, JSON in and out.

- ``GET /api/events?status=&department=&cell=&limit=&cursor=`` (viewer, operator): events,
  newest first (by ``received_at``, then ``id``); ``status`` takes a comma list or
  ``open``, ``cell`` any H3 cell (coarser cells select the events inside them).
  Paged by cursor (:mod:`api.paging`): ``limit`` 1 … 1,000 (100 by default); the
  next page's cursor is in the ``X-Next-Cursor`` and ``Link`` headers.
- ``GET /api/events/<id>`` (viewer, operator): the event, its reports and its audit trail.
- ``GET /api/events/stats`` (viewer, operator): counts, department queues, time to close.
- ``POST /api/events/<id>/transition`` (operator): JSON ``{"to", "department",
  "note", "expected_version"}``; answers the event as changed.
- ``POST /api/events/login`` / ``logout`` and ``GET /api/events/me`` (any role): browser
  sessions. Sign-in is limited per client address and locked per user name after repeated
  wrong passwords (429 with ``Retry-After``; see :mod:`ops.sessions`); logout closes
  the session on the server, so its cookie is refused afterwards.

Events are people: the exhibition role and anonymous callers get 401/403 on the
list, the detail and the stats (they never learn an event id, so sequential ids
cannot be enumerated); the public map and panels show aggregates only
(:mod:`render.privacy`).

Errors are JSON with an HTTP status: 400 a bad request or a transition the
lifecycle refuses (nothing changes), 401 no known user, 403 a role that may not
(or, to everyone, a city without ``[[users]]``: ``"reason": "no_users"``),
404 no such event, 409 the event changed meanwhile, 429 too many sign-in tries. Text from the public is
returned as JSON strings and responses say ``nosniff``: a browser never renders it
as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from api.auth import require_role
from api.errors import ApiError, install
from api.health import stamp_worker
from api.paging import bad_cursor, paged, parse_cursor, parse_limit, split_page
from api.params import MAX_ID, bad_parameter, cell_param, id_param, json_object
from ops.events.model import (
    OPEN_STATUSES,
    STATUSES,
    ConflictError,
    EventNotFound,
    PermissionDenied,
    TransitionError,
)
from ops.events.pipeline import EventPipeline
from ops.sessions import SignInRefused

READ_ROLES = ("operator", "viewer", "exhibition")
#: Events are people's reports (free text, names, exact places): only these roles read
#: them. The exhibition role and anonymous callers never see an event or its id.
DETAIL_ROLES = ("operator", "viewer")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_NOTE = 2000
#: The longest status or department name a transition may name.
MAX_NAME = 200
_TRANSITION_KEYS = frozenset({"to", "department", "note", "expected_version"})


#: What the lifecycle's refusals mean over HTTP (nothing changes on any of them).
_DOMAIN_ERRORS: dict[type[Exception], Callable[[Any], ApiError]] = {
    EventNotFound: lambda exc: ApiError(404, str(exc), id=exc.event_id),
    TransitionError: lambda exc: ApiError(400, str(exc), parameter="to", id=exc.event_id,
                                          current=exc.current,
                                          requested=exc.requested, allowed=list(exc.allowed)),
    ConflictError: lambda exc: ApiError(409, str(exc), id=exc.event_id,
                                        expected_version=exc.expected, current_version=exc.actual),
    PermissionDenied: lambda exc: ApiError(403, str(exc)),
    SignInRefused: lambda exc: ApiError(503 if exc.reason == "unavailable" else 429, str(exc),
                                        headers={"Retry-After": str(exc.retry_after)},
                                        reason=exc.reason, retry_after=exc.retry_after),
}


def _before(raw: str | None) -> tuple[datetime, int] | None:
    """``?cursor=`` as the keyset position ``(received_at, id)`` it continues after."""
    key = parse_cursor(raw, "events", (str, int))
    if key is None or raw is None:
        return None
    try:
        at = datetime.fromisoformat(key[0])
    except ValueError:
        raise bad_cursor(raw) from None
    if at.tzinfo is None:
        raise bad_cursor(raw)
    return at, key[1]


def _statuses(raw: str | None) -> list[str] | None:
    """``status=dispatched,in_progress``; ``open`` means every open status."""
    if not raw:
        return None
    wanted: list[str] = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        if part == "open":
            wanted.extend(sorted(OPEN_STATUSES))
        elif part in STATUSES:
            wanted.append(part)
        else:
            raise bad_parameter("status", f"unknown status {part[:40]!r}",
                                valid_statuses=[*STATUSES, "open"])
    return wanted


def _transition_body() -> dict[str, Any]:
    if not request.is_json:
        # Also keeps cross-site HTML forms (which cannot send JSON) from using a session.
        raise ApiError(415, "send the transition as JSON (Content-Type: application/json)")
    body = json_object()
    unknown = sorted(set(body) - _TRANSITION_KEYS)
    if unknown:
        raise bad_parameter("body", f"unknown field(s) {', '.join(unknown)[:200]}",
                            valid_fields=sorted(_TRANSITION_KEYS))
    to = body.get("to")
    if not isinstance(to, str) or not to or len(to) > MAX_NAME:
        raise bad_parameter("to", "'to' (the next status) is required",
                            valid_statuses=list(STATUSES))
    department = body.get("department")
    if department is not None and (not isinstance(department, str) or not department.strip()
                                   or len(department) > MAX_NAME):
        raise bad_parameter("department", f"'department' must be a non-empty string of at "
                                          f"most {MAX_NAME} characters")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise bad_parameter("note", f"'note' must be a string of at most {MAX_NOTE} characters")
    for field in ("department", "note"):
        if "\x00" in (body.get(field) or ""):
            # PostgreSQL refuses NUL in text: say so here rather than fail in the store.
            raise bad_parameter(field, f"'{field}' must not contain NUL characters")
    version = body.get("expected_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or not 0 <= version <= MAX_ID):
        raise bad_parameter("expected_version",
                            f"'expected_version' must be an integer between 0 and {MAX_ID}")
    return {"to": to, "department": department, "note": note, "expected_version": version}


def create_events_blueprint(pipeline: EventPipeline) -> Blueprint:
    """The ``/api/events`` blueprint serving ``pipeline``; its users are ``pipeline.auth``."""
    api = Blueprint("citybrain_events", __name__, url_prefix="/api/events")
    install(api, _DOMAIN_ERRORS)
    auth = pipeline.auth
    # The sign-in limits and cookie flags go on whichever app serves this blueprint.
    api.record_once(lambda state: auth.guard.install(cast(Flask, state.app)))

    @api.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return stamp_worker(response)

    @api.get("", strict_slashes=False)
    @require_role(auth, *DETAIL_ROLES)
    def list_events() -> Any:
        cell_text = request.args.get("cell")
        cell = cell_param(cell_text, "cell") if cell_text else None
        department = request.args.get("department") or None
        limit = parse_limit(request.args.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
        assert limit is not None  # the default is a number
        events = pipeline.events(status=_statuses(request.args.get("status")),
                                 department=department, cell=cell, limit=limit + 1,
                                 before=_before(request.args.get("cursor")))
        page, following = split_page(
            events, limit, lambda e: [e.received_at.astimezone(UTC).isoformat(), e.id])
        now = pipeline.now()
        return paged(jsonify([e.as_dict(now) for e in page]), "events", following)

    @api.get("/stats")
    @require_role(auth, *DETAIL_ROLES)
    def stats() -> Any:
        return jsonify(pipeline.stats())

    @api.get("/<int:event_id>")
    @require_role(auth, *DETAIL_ROLES)
    def event_detail(event_id: int) -> Any:
        event, reports, audit = pipeline.detail(id_param(event_id, "event_id"))
        return jsonify({"event": event.as_dict(pipeline.now()),
                        "reports": [r.as_dict() for r in reports],
                        "audit": [a.as_dict() for a in audit]})

    @api.post("/<int:event_id>/transition")
    @require_role(auth, "operator")
    def transition(event_id: int) -> Any:
        id_param(event_id, "event_id")
        body = _transition_body()
        user = g.citybrain_user
        event = pipeline.transition(event_id, body["to"], actor=user.name, role=user.role,
                                    department=body["department"], note=body["note"],
                                    expected_version=body["expected_version"])
        return jsonify(event.as_dict(pipeline.now()))

    @api.post("/login")
    def login() -> Any:
        if not current_app.secret_key:
            raise ApiError(501, "browser sessions are off: the app has no SECRET_KEY; "
                                "use a bearer token")
        body = json_object() if request.is_json else None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                or not isinstance(body.get("password"), str):
            raise bad_parameter("body", "send JSON {\"name\": …, \"password\": …}")
        user = auth.attempt(body["name"], body["password"])
        if user is None:
            raise ApiError(401, "unknown user or wrong password")
        auth.login(user)
        return jsonify({"name": user.name, "role": user.role})

    @api.post("/logout")
    def logout() -> Any:
        if current_app.secret_key:
            auth.logout()
        return jsonify({"ok": True})

    @api.get("/me")
    @require_role(auth, *READ_ROLES)
    def me() -> Any:
        return jsonify({"name": g.citybrain_user.name, "role": g.citybrain_user.role})

    return api


__all__ = ["create_events_blueprint"]
