"""The one validation vocabulary every config section is written in.

Each helper takes ``where`` (the place in the file, e.g. ``"[live].window"``) and
the raw TOML value, and returns the checked value or raises :class:`ConfigError`
with a message that starts with ``where`` and, for a choice, lists what is valid
(the model is geopandas' ``_config.py``: one small vocabulary, not a fork per
section). Feature modules that contribute a section parser import these, never
their own copies.

Example::

    where = "[events]"
    check_keys(where, table, {"store", "merge_window"})
    store = choice(f"{where}.store", table.get("store", "sqlite"), ("sqlite", "postgresql"), "store")
    window = positive_duration(f"{where}.merge_window", table.get("merge_window", "2h"))
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal, overload

__all__ = [
    "ConfigError", "check_keys", "choice", "duration", "env_name", "number", "parse_duration",
    "positive_duration", "require", "table_name", "text", "unique_names",
]


class ConfigError(ValueError):
    """The city config is invalid; the message says where and what is valid."""


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A table name, optionally schema-qualified; short enough for the index names built on it.
_TABLE_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,39}")


def check_keys(where: str, table: Mapping[str, Any], valid: Collection[str]) -> None:
    """Refuse keys of ``table`` that are not in ``valid``, listing the valid ones."""
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(sorted(valid))}"
        )


def require(where: str, table: Mapping[str, Any], key: str) -> Any:
    """``table[key]``, or an error naming the missing key."""
    if key not in table:
        raise ConfigError(f"{where}: missing required key {key!r}")
    return table[key]


def choice(where: str, value: Any, valid: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``valid``; else an error listing them (``what``: "layer", …)."""
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"{where}: unknown {what} {value!r}; valid {what}s are: {', '.join(valid)}")
    return str(value)


def number(where: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """A number (not a bool) within ``[lo, hi]`` (either bound optional)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{where}: {value!r} is outside [{lo}, {hi}]")
    return float(value)


def parse_duration(where: str, value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"7d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value[-1:] in _DURATION_UNITS:
        try:
            return float(value[:-1]) * _DURATION_UNITS[value[-1]]
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a duration like 90, '90s', '15m', '2h' or '7d', got {value!r}")


#: The vocabulary's name for :func:`parse_duration` (both spellings are used).
duration = parse_duration


def positive_duration(where: str, value: Any) -> float:
    """A duration (see :func:`parse_duration`) greater than zero, in seconds."""
    seconds = parse_duration(where, value)
    if seconds <= 0:
        raise ConfigError(f"{where}: must be positive, got {value!r}")
    return seconds


@overload
def text(where: str, value: Any, *, optional: Literal[False] = False) -> str: ...
@overload
def text(where: str, value: Any, *, optional: Literal[True]) -> str | None: ...
def text(where: str, value: Any, *, optional: bool = False) -> str | None:
    """A non-empty string, stripped; with ``optional``, ``None`` passes as ``None``."""
    if optional and value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


@overload
def env_name(where: str, value: Any, *, optional: Literal[False] = False) -> str: ...
@overload
def env_name(where: str, value: Any, *, optional: Literal[True]) -> str | None: ...
def env_name(where: str, value: Any, *, optional: bool = False) -> str | None:
    """The *name* of an environment variable: secrets never go in the file itself."""
    if optional and value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ConfigError(f"{where}: expected the name of an environment variable such as "
                          f"CITY_API_TOKEN (the secret itself never goes in the file), got {value!r}")
    return value


def table_name(where: str, value: Any) -> str:
    """A SQL table name, optionally ``schema.table``, safe to put into SQL text."""
    if not isinstance(value, str) or not _TABLE_NAME.fullmatch(value):
        raise ConfigError(f"{where}: expected a table name like 'citybrain_history' or "
                          f"'schema.table' (letters, digits, _; at most 40 characters), "
                          f"got {value!r}")
    return value


def unique_names(where: str, names: Iterable[str], what: str) -> None:
    """Refuse names given more than once, listing them (``what``: "source", "rule", …)."""
    seen: set[str] = set()
    duplicates: set[str] = set()
    for name in names:
        (duplicates if name in seen else seen).add(name)
    if duplicates:
        raise ConfigError(f"{where}: duplicate {what} name(s): {', '.join(sorted(duplicates))}")
