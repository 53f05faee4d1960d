"""A shape check of Dash's callback requests before Dash reads them; unknown assets are 404s.

Dash answers a ``/_dash-update-component`` body it cannot read (not an object, an
``output`` no callback has, ``inputs`` that are not a list …) with an HTML 500 from
deep inside its dispatcher. Any client can send one, so the shape is checked first
and a bad one is a JSON 400 naming the field; a callback that fails while running is
still Dash's ``on_error`` (logged, counted, nothing shown). Bodies are parsed with the
server's depth-checked JSON (:mod:`api.limits`).
"""

from __future__ import annotations

from typing import Any

from dash import Dash
from dash.exceptions import DependencyException
from flask import Response, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

_LISTS = ("inputs", "state")


def _why_not_json(error: BadRequest) -> str:
    """What was wrong with the body (Flask hides werkzeug's reason outside debug mode)."""
    cause = error.__cause__
    description = cause.description if isinstance(cause, BadRequest) else error.description
    return str(description).removeprefix("Failed to decode JSON object: ")[:200]


def _refusal(field: str, message: str) -> Response:
    response = jsonify({"error": message, "status": 400, "parameter": field})
    response.status_code = 400
    return response


def _dependency_problem(entry: Any) -> bool:
    """True unless ``entry`` is ``{"id", "property", …}`` or a list of them (a pattern)."""
    items = entry if isinstance(entry, list) else [entry]
    return not all(isinstance(i, dict) and isinstance(i.get("property"), str)
                   and isinstance(i.get("id"), str | dict) for i in items)


def dispatch_problem(body: Any, known_outputs: set[str]) -> tuple[str, str] | None:
    """``(field, why)`` when ``body`` is not a callback request Dash can read, else None."""
    if not isinstance(body, dict):
        return "body", "a callback request is a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or output not in known_outputs:
        return "output", f"no callback has the output {str(output)[:80]!r}"
    if not isinstance(body.get("outputs"), dict | list):
        return "outputs", "outputs must be an object or a list"
    for name in _LISTS:
        value = body.get(name, [])
        if not isinstance(value, list) or any(_dependency_problem(v) for v in value):
            return name, f"{name} must be a list of {{id, property, value}}"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "changedPropIds", "changedPropIds must be a list of strings"
    return None


def install_dispatch_guard(app: Dash) -> None:
    """Check every ``/_dash-update-component`` body's shape before Dash dispatches it (a
    JSON 400 or 413 when it cannot be read), and answer an unknown component-suite file
    with a 404 instead of Dash's 500."""
    path = f"{app.config.requests_pathname_prefix}_dash-update-component"

    def check() -> Response | None:
        if request.path != path or request.method != "POST":
            return None
        try:
            body = request.get_json(silent=False)
        except BadRequest as exc:
            return _refusal("body", f"the body is not usable JSON: {_why_not_json(exc)}")
        except HTTPException as exc:  # 413: larger than the server reads (api.limits)
            response = jsonify({"error": exc.description, "status": exc.code,
                                "parameter": "body"})
            response.status_code = exc.code or 400
            return response
        problem = dispatch_problem(body, set(app.callback_map))
        return None if problem is None else _refusal(*problem)

    def unknown_asset(error: DependencyException) -> Response:
        # Dash raises this for a component-suite file it never registered: a 404, not a 500.
        response = Response(f"not found: {str(error)[:200]}", status=404, mimetype="text/plain")
        return response

    app.server.before_request(check)
    app.server.register_error_handler(DependencyException, unknown_asset)


__all__ = ["dispatch_problem", "install_dispatch_guard"]
