"""Cursor paging for every list route: ``?limit=`` and an opaque ``?cursor=``.

A page is the first ``limit`` rows *after* a position in a fixed order (keyset
paging), never "skip N rows": a row inserted or removed while a client walks the
pages cannot shift the others, so no row is served twice and none that existed at
the first page is skipped. The order is on keys that never change for a row (an
event's ``(received_at, id)``, an alert's ``(first_seen, sequence)``, a cell's id).

The position is handed out as ``next_cursor``: base64url text of the route's name
and the last row's key. Clients treat it as opaque; a cursor this API did not give
out, or one from another route, is a JSON 400. Every paged answer carries the next
cursor in the ``X-Next-Cursor`` header and as a ``Link: <…>; rel="next"`` header
(RFC 8288), and a body that is an object also has a ``next_cursor`` field; on the
last page there is no next cursor. Lists keep their bodies: a list answer is still
a JSON list.

Example::

    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    after = parse_cursor(request.args.get("cursor"), "events", (str, int))
    rows = store.page(after, limit + 1)          # one extra row says "there is more"
    rows, following = split_page(rows, limit, key=lambda r: [r.time, r.id])
    return paged(jsonify(rows), "events", following)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Response, request

from api.errors import ApiError
from api.params import bad_parameter

T = TypeVar("T")


def parse_limit(raw: str | None, default: int | None, maximum: int) -> int | None:
    """``?limit=``: an integer in 1 … ``maximum``; ``default`` when absent (None: no limit)."""
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise bad_parameter("limit", f"limit must be an integer, got {raw[:40]!r}") from None
    if not 1 <= limit <= maximum:
        raise bad_parameter("limit", f"limit must be between 1 and {maximum}, got {raw[:40]}")
    return limit


def encode_cursor(route: str, key: Sequence[Any]) -> str:
    """The opaque text for "after the row with ``key``" on ``route``."""
    text = json.dumps({"r": route, "k": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_cursor(raw: str | None, route: str, types: Sequence[type]) -> list[Any] | None:
    """``?cursor=`` as the key it stands for (None when absent); a JSON 400 when it is not
    a cursor of ``route`` whose key has one value of each of ``types``."""
    if raw is None or raw == "":
        return None
    bad = bad_cursor(raw)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(decoded, dict) or decoded.get("r") != route:
        raise bad
    key = decoded.get("k")
    if not isinstance(key, list) or len(key) != len(types) or not all(
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(key, types, strict=True)):
        raise bad
    return key


def bad_cursor(raw: str) -> ApiError:
    """The 400 for a cursor this list did not give out."""
    return bad_parameter("cursor", f"cursor {raw[:40]!r} is not a cursor of this list: pass the "
                         "next_cursor of a previous page unchanged, or leave it out to start")


def split_page(rows: Sequence[T], limit: int | None,
               key: Callable[[T], Sequence[Any]]) -> tuple[list[T], Sequence[Any] | None]:
    """``rows`` fetched with one more than ``limit`` → (the page, the key to continue after).

    The key is None when ``rows`` held no more than ``limit``: this was the last page.
    """
    if limit is None or len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    return page, key(page[-1])


def keyset_page(rows: Sequence[T], key: Callable[[T], tuple[Any, ...]],
                after: Sequence[Any] | None, limit: int | None,
                descending: bool = True) -> tuple[list[T], Sequence[Any] | None]:
    """Page an in-memory list in ``key`` order (descending by default): the rows whose key
    comes after ``after`` (all when None), at most ``limit``, and the key to continue after."""
    ordered = sorted(rows, key=key, reverse=descending)
    if after is not None:
        bound = tuple(after)
        ordered = [r for r in ordered if (key(r) < bound if descending else key(r) > bound)]
    return split_page(ordered, limit, lambda r: list(key(r)))


def paged(response: Response, route: str, following: Sequence[Any] | None) -> Response:
    """Put the next cursor (when there is a next page) on ``response``'s headers."""
    if following is None:
        return response
    cursor = encode_cursor(route, following)
    args = request.args.to_dict(flat=False)
    args["cursor"] = [cursor]
    response.headers["X-Next-Cursor"] = cursor
    response.headers["Link"] = f'<{request.path}?{urlencode(args, doseq=True)}>; rel="next"'
    return response


def next_cursor(route: str, following: Sequence[Any] | None) -> str | None:
    """The ``next_cursor`` field of an object body: None on the last page."""
    return None if following is None else encode_cursor(route, following)


__all__ = ["bad_cursor", "encode_cursor", "keyset_page", "next_cursor", "paged", "parse_cursor",
           "parse_limit", "split_page"]
