"""Request parameters parsed once, each refusal a JSON 400 that names the parameter.

Every route reads its path and query parameters through these helpers, so a bad
value is always ``{"error": …, "status": 400, "parameter": "<name>"}`` and never
reaches a store or h3 as a value it cannot take (a negative or 80-bit cell id, an
event id past SQL's BIGINT). Example::

    cell = cell_param(request.args.get("cell"), "cell")            # any valid cell
    cell = cell_param(cell_id, "cell_id", resolutions=(7, 8, 9, 10))
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest

from api.errors import ApiError
from geo.hexes import cell_resolution, from_hex

#: The largest id a BIGINT column (PostgreSQL, SQLite) holds: no event has a larger one.
MAX_ID = 2**63 - 1


def bad_parameter(name: str, message: str, **detail: Any) -> ApiError:
    """The 400 for parameter ``name``: its message and ``"parameter": name``."""
    return ApiError(400, message, parameter=name, **detail)


def cell_param(text: str, name: str, resolutions: Collection[int] | None = None) -> int:
    """``text`` as an H3 cell (1 to 16 hex digits, valid for h3), else a 400 naming ``name``.

    With ``resolutions``, a cell at any other resolution is refused too (a profile of a
    resolution-0 cell or a pentagon the size of a continent answers nothing the city has).
    """
    try:
        cell = from_hex(text)
    except ValueError as exc:
        raise bad_parameter(name, f"{name}: {exc} (an H3 cell id is 15 hex digits, "
                                  "e.g. 8a2a1072b59ffff)") from None
    if resolutions is not None and cell_resolution(cell) not in resolutions:
        served = sorted(resolutions)
        raise bad_parameter(name, f"{name}: cell {text} is at resolution "
                                  f"{cell_resolution(cell)}; this city serves resolutions "
                                  f"{served[0]} to {served[-1]}",
                            valid_resolutions=served)
    return cell


def id_param(value: int, name: str) -> int:
    """A numeric id from the path: 1 … :data:`MAX_ID`, else a 400 naming ``name``."""
    if not 1 <= value <= MAX_ID:
        shown = str(value) if abs(value).bit_length() <= 128 else "a larger number"
        raise bad_parameter(name, f"{name} must be between 1 and {MAX_ID}, got {shown}")
    return value


def why_not_json(error: BadRequest) -> str:
    """What was wrong with a JSON body (Flask hides werkzeug's reason outside debug mode)."""
    cause = error.__cause__
    description = cause.description if isinstance(cause, BadRequest) else error.description
    return str(description).removeprefix("Failed to decode JSON object: ")[:200]


def json_object() -> dict[str, Any]:
    """The request's JSON object body, else a 400 naming ``body`` and saying what is wrong
    (not JSON, nested too deep — :mod:`api.limits` — or not an object)."""
    try:
        body = request.get_json(silent=False)
    except BadRequest as exc:
        raise bad_parameter("body", f"the body is not usable JSON: {why_not_json(exc)}") from None
    if not isinstance(body, dict):
        raise bad_parameter("body", "expected a JSON object")
    return body


__all__ = ["MAX_ID", "bad_parameter", "cell_param", "id_param", "json_object", "why_not_json"]
