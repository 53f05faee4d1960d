"""Limits on request bodies, for the whole server (the JSON API and Dash's callbacks).

- :data:`MAX_BODY_BYTES` is Flask's ``MAX_CONTENT_LENGTH``: a larger body is refused
  with 413 before it is read (JSON under ``/api/``, :mod:`api.errors`).
- :class:`DepthCheckedJSON` is the server's JSON provider: a body nested deeper than
  :data:`MAX_JSON_DEPTH` is refused as bad JSON (400) before it is parsed, so 100,000
  ``[`` never reach the parser's recursion (a ``RecursionError``, once a 500).

Python's ``json`` has no depth option, hence the scan: strings are cut out with one
regular expression and the depth is a cumulative sum over the brackets left (numpy),
so the check costs a few milliseconds per MiB and runs only on bodies with more
brackets than the limit.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from flask import Flask
from flask.json.provider import DefaultJSONProvider

#: The largest request body the server reads (Dash's callback payloads included).
MAX_BODY_BYTES = 2 * 1024 * 1024
#: The deepest nesting of arrays and objects a JSON body may have (Dash's own are < 20).
MAX_JSON_DEPTH = 64

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class JSONTooDeep(ValueError):
    """A JSON text nested deeper than allowed (a ValueError, so Flask answers 400)."""


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text, brackets inside strings not counted.

    >>> json_depth('{"a": [1, [2, "]]]["]]}')
    3
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    bare = _STRINGS.sub(b'""', raw) if b'"' in raw else raw
    steps = _OPEN[np.frombuffer(bare, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def check_depth(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JSONTooDeep` when ``text`` nests deeper than ``limit``."""
    brackets = text.count("[") + text.count("{") if isinstance(text, str) \
        else text.count(b"[") + text.count(b"{")
    if brackets > limit and (depth := json_depth(text)) > limit:
        raise JSONTooDeep(f"JSON nested {depth} levels deep; at most {limit} are accepted")


class DepthCheckedJSON(DefaultJSONProvider):
    """Flask's JSON provider, refusing texts nested deeper than :data:`MAX_JSON_DEPTH`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        check_depth(s)
        return super().loads(s, **kwargs)


def install_limits(server: Flask) -> None:
    """Put the body size limit and the depth-checked JSON parser on ``server``."""
    if not server.config.get("MAX_CONTENT_LENGTH"):
        server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    provider = DepthCheckedJSON(server)
    # Keep how the app writes JSON (Dash or a test may have tuned it); only reading changes.
    for name in ("ensure_ascii", "sort_keys", "compact", "mimetype"):
        setattr(provider, name, getattr(server.json, name, getattr(provider, name)))
    server.json = provider


__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "DepthCheckedJSON", "JSONTooDeep", "check_depth",
           "install_limits", "json_depth"]
