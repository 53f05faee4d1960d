"""The validation vocabulary of the ``[[indicators]]`` and ``[[rules]]`` tables.

Both tables name a layer role, filter its rows, pick its columns and give durations;
these checks are shared so that an indicator and a rule refuse a typo with the same
words. Errors are :class:`~config.city.ConfigError` naming the valid choices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

# The config's own vocabulary, re-exported so that a signs parser needs one ``kit``.
from config.kit import (
    ConfigError,
    check_keys,
    choice,
    number,
    positive_duration,
    text,
    unique_names,
)

Direction = Literal["above", "below"]
Severity = Literal["info", "warn", "alarm"]
Band = Literal["upper", "lower", "mean"]

DIRECTIONS: tuple[Direction, ...] = ("above", "below")
SEVERITIES: tuple[Severity, ...] = ("info", "warn", "alarm")
BANDS: tuple[Band, ...] = ("upper", "lower", "mean")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def entry_name(where: str, value: Any) -> str:
    """A name that can appear in ids and URLs (letters, digits, ``_-.:``, at most 64)."""
    name = text(where, value)
    if not _NAME.match(name):
        raise ConfigError(f"{where}: {name!r} must be letters, digits, '_', '-', '.' or ':' "
                          "(at most 64, starting with a letter or digit)")
    return name


def table_entries(where: str, entries: Any) -> Sequence[Mapping[str, Any]]:
    """``entries`` checked to be an array of tables."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError(f"{where}: expected an array of tables")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} #{index + 1}: expected a table")
    return entries


def optional_number(where: str, table: Mapping[str, Any], key: str) -> float | None:
    """``table[key]`` as a number, or None when the key is absent."""
    return None if key not in table else number(f"{where}.{key}", table[key])


def where_filter(where: str, value: Any, columns: Sequence[str],
                 ) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """A ``where = { column = [values] }`` filter on a role's columns, as (column, values) pairs."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of column = [values]")
    out = []
    for column, values in value.items():
        choice(f"{where}", column, list(columns), "column")
        out.append((str(column), tuple(values if isinstance(values, list) else [values])))
    return tuple(out)


def role_columns(layer: str, role: str) -> tuple[str, ...]:
    """The columns a layer role's normalised rows have (derived ones included)."""
    from layers import LAYERS
    from store.city import empty_role_frame  # the store's own definition of a role frame

    columns = list(empty_role_frame(layer, role).columns)
    if LAYERS[layer].roles[role].geometry == "point" and "name" not in columns:
        columns.append("name")  # normalise() adds the label as `name`
    return tuple(c for c in columns if c != "geometry")


def layer_role(where: str, table: Mapping[str, Any], default_role: str | None = None,
               ) -> tuple[str, str]:
    """The ``layer`` and ``role`` of a table (the layer's default role when none is given)."""
    from layers import LAYERS

    if "layer" not in table:
        raise ConfigError(f"{where}: missing required key 'layer'")
    layer = choice(f"{where}.layer", table["layer"], list(LAYERS), "layer")
    roles = LAYERS[layer].roles
    role = str(table.get("role", default_role or LAYERS[layer].default_role))
    if role not in roles:
        raise ConfigError(f"{where}.role: unknown role {role!r} for layer {layer!r}; "
                          f"valid roles are: {', '.join(roles)}")
    return layer, role


def source_name(where: str, table: Mapping[str, Any], layer: str, role: str,
                sources: Sequence[Any]) -> str | None:
    """The table's ``source``, checked against the layer role's sources when they are known."""
    if "source" not in table:
        return None
    name = text(f"{where}.source", table["source"])
    if sources:
        valid = [s.name for s in sources if s.layer == layer and s.role == role]
        choice(f"{where}.source", name, valid, f"{layer}/{role} source")
    return name


def role_column(where: str, value: Any, columns: Sequence[str]) -> str:
    """``value`` as one of a role's ``columns``."""
    return choice(where, text(where, value), list(columns), "column")


def is_time_column(layer: str, role: str, column: str) -> bool:
    """True when ``column`` of a layer role holds times."""
    from layers import LAYERS

    if column == "time":
        return True
    spec = LAYERS[layer].roles[role].field(column)
    return spec is not None and spec.kind == "time"


__all__ = [
    "BANDS", "DIRECTIONS", "SEVERITIES", "Band", "ConfigError", "Direction", "Severity",
    "check_keys", "choice", "entry_name", "is_time_column", "layer_role", "number",
    "optional_number", "positive_duration", "role_column", "role_columns", "source_name",
    "table_entries", "text", "unique_names", "where_filter",
]
