"""The one error of the JSON API, and the one handler that answers it.

Every blueprint under ``/api`` answers a failure as JSON with one shape::

    {"error": "<what went wrong>", "status": <the HTTP status>, ...detail}

A route raises :class:`ApiError`; :func:`install` puts the one handler on a
blueprint (each blueprint installs it on itself, so it also answers when mounted on
a bare Flask app in tests). Errors of the domain (an event that does not exist, a
transition the lifecycle refuses) are translated into an :class:`ApiError` by the
blueprint that knows them, through the same handler.

Example::

    api = Blueprint("things", __name__, url_prefix="/api/things")
    install(api)

    @api.get("/<name>")
    def thing(name):
        raise ApiError(404, f"no thing {name!r}", name=name)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, jsonify


class ApiError(Exception):
    """A failed API request: an HTTP ``status``, a ``message`` and JSON ``detail`` fields.

    ``headers`` are sent with the answer (e.g. ``WWW-Authenticate`` on a 401).
    """

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None,
                 **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """The JSON answer: ``{"error", "status", **detail}`` with ``status`` as HTTP status."""
        response = jsonify({"error": self.message, "status": self.status, **self.detail})
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def handle_api_error(error: ApiError) -> Response:
    """The one error handler of every API blueprint."""
    return error.response()


def install(blueprint: Blueprint,
            translations: Mapping[type[Exception], Callable[[Any], ApiError]] | None = None) -> None:
    """Answer :class:`ApiError` (and the domain errors in ``translations``) as JSON on ``blueprint``.

    ``translations`` maps an exception type to the :class:`ApiError` it means, e.g.
    ``{EventNotFound: lambda exc: ApiError(404, str(exc), id=exc.event_id)}``.
    """
    blueprint.register_error_handler(ApiError, handle_api_error)
    for kind, translate in (translations or {}).items():
        blueprint.register_error_handler(kind, _translated(translate))


def _translated(translate: Callable[[Any], ApiError]) -> Callable[[Exception], Response]:
    def handler(error: Exception) -> Response:
        return handle_api_error(translate(error))

    return handler


__all__ = ["ApiError", "handle_api_error", "install"]
