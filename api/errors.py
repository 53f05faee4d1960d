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

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)
#: The paths answered as JSON whatever goes wrong.
API_PREFIX = "/api/"


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


def install_catch_all(server: Flask) -> None:
    """Answer every failure under ``/api/`` as JSON, on the whole app.

    Blueprints answer their own :class:`ApiError`; this handler answers the rest: a
    404/405/413 … werkzeug raises before any view runs, a lost connection to
    PostgreSQL or Redis as a JSON 503 with ``Retry-After``, and any other unexpected
    error (a recursion limit, a bug) as a JSON 500, logged with its traceback. Other
    paths keep Flask's answers (Dash serves its own).
    """
    def handler(error: Exception) -> Any:
        if not request.path.startswith(API_PREFIX):
            return error if isinstance(error, HTTPException) else InternalServerError(
                original_exception=error)
        if isinstance(error, ApiError):
            return error.response()
        if isinstance(error, HTTPException):
            status = error.code or 500
            return ApiError(status, error.description or error.name,
                            headers=_allow(error)).response()
        log.error("%s %s failed: %s: %s", request.method, request.path, type(error).__name__,
                  error, exc_info=error)
        if _unavailable(error):
            return ApiError(503, f"a service this answer needs is unavailable "
                                 f"({type(error).__name__}); see /api/health",
                            headers={"Retry-After": "5"}, path=request.path).response()
        return ApiError(500, f"internal error ({type(error).__name__}); the log has the details",
                        path=request.path).response()

    def bare_prefix() -> Any:
        # "/api/" and "/api" match no API rule, and Dash would serve its page for them.
        if request.path in (API_PREFIX, API_PREFIX.rstrip("/")):
            return ApiError(404, "not found: see the JSON API in the README",
                            path=request.path).response()
        return None

    server.register_error_handler(Exception, handler)
    server.before_request(bare_prefix)


def _unavailable(error: BaseException) -> bool:
    """True for a lost connection to a database, Redis or a broker (503, try again), not a bug.

    The error or any error it was raised from (a store wraps the driver's) counts.
    """
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import psycopg

        kinds.append(psycopg.OperationalError)
    except ImportError:
        pass
    try:
        import redis

        kinds += [redis.ConnectionError, redis.TimeoutError]
    except ImportError:
        pass
    seen: BaseException | None = error
    for _ in range(10):  # the chain of causes, bounded
        if seen is None:
            return False
        if isinstance(seen, tuple(kinds)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _allow(error: HTTPException) -> dict[str, str]:
    allow = error.get_headers() if error.code == 405 else []
    return {name: value for name, value in allow if name.lower() == "allow"}


def _translated(translate: Callable[[Any], ApiError]) -> Callable[[Exception], Response]:
    def handler(error: Exception) -> Response:
        return handle_api_error(translate(error))

    return handler


__all__ = ["API_PREFIX", "ApiError", "handle_api_error", "install", "install_catch_all"]
