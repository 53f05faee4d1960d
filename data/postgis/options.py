"""The options of a postgis source, checked once when the config loads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.kit import ConfigError, env_name, parse_duration
from data.base import SourceError

if TYPE_CHECKING:
    from types import ModuleType

DEFAULT_LIMIT = 50_000
DEFAULT_CONNECT_TIMEOUT = 5.0


def import_psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError as exc:  # the driver is an optional extra
        raise SourceError("the postgis adapter needs psycopg 3: "
                          "pip install 'citybrain[postgis]'") from exc
    return psycopg


@dataclass(frozen=True)
class PostgisSettings:
    """The adapter's options, checked once (see :func:`parse_options`)."""

    dsn: str | None
    dsn_env: str | None
    password_env: str | None
    table: tuple[str, ...] | None
    query: str | None
    geometry_column: str | None
    bbox: tuple[float, float, float, float] | None
    time_window: float | None
    cursor_column: str | None
    limit: int
    connect_timeout: float

    @property
    def target(self) -> str:
        """How messages name what is read: the table, or ``query``."""
        return ".".join(self.table) if self.table else "query"


def _identifier(where: str, value: Any) -> str:
    # Identifier() quotes anything safely; this only refuses what cannot be a name.
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 63:
        raise ConfigError(f"{where}: expected a column or table name (1-63 characters), "
                          f"got {value!r}")
    return value


def _table_name(where: str, value: Any) -> tuple[str, ...]:
    parts = value.split(".") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or not 1 <= len(parts) <= 2:
        raise ConfigError(f"{where}: expected 'table' or 'schema.table' (or a list "
                          f"['schema', 'table'] for names with dots), got {value!r}")
    return tuple(_identifier(where, p) for p in parts)


def _bbox(where: str, value: Any) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected [west, south, east, north] in degrees, "
                          f"got {value!r}") from exc
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ConfigError(f"{where}: {value!r} is not a [west, south, east, north] box "
                          "in WGS84 degrees")
    return west, south, east, north


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def parse_options(where: str, options: Mapping[str, Any],
                  fields: Mapping[str, str] | None = None) -> PostgisSettings:
    """Check a postgis source's options; every mistake is a :class:`ConfigError`.

    ``fields`` is the source's field mapping, needed to check ``time_window``.
    """
    dsn, dsn_env = options.get("dsn"), options.get("dsn_env")
    if (dsn is None) == (dsn_env is None):
        raise ConfigError(f"{where}: set exactly one of 'dsn' (a libpq connection string) or "
                          "'dsn_env' (the environment variable holding it)")
    if dsn is not None:
        psycopg = import_psycopg()
        try:
            parsed = psycopg.conninfo.conninfo_to_dict(str(dsn))
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"{where}.dsn: not a valid connection string: {exc}") from exc
        if "password" in parsed:
            raise ConfigError(f"{where}.dsn: a password does not belong in the config file; "
                              "name the environment variable holding it with password_env")
    table, query = options.get("table"), options.get("query")
    if (table is None) == (query is None):
        raise ConfigError(f"{where}: set exactly one of 'table' or 'query'")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise ConfigError(f"{where}.query: expected a SELECT statement, got {query!r}")
    time_window = options.get("time_window")
    if time_window is not None and "time" not in (fields or {}):
        raise ConfigError(f"{where}.time_window: needs the time column mapped (time = \"…\")")
    limit = options.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"{where}.limit: expected a whole number of rows >= 1, got {limit!r}")
    return PostgisSettings(
        dsn=None if dsn is None else str(dsn),
        dsn_env=env_name(f"{where}.dsn_env", dsn_env, optional=True),
        password_env=env_name(f"{where}.password_env", options.get("password_env"), optional=True),
        table=None if table is None else _table_name(f"{where}.table", table),
        query=None if query is None else str(query).strip().rstrip(";").strip(),
        geometry_column=(None if options.get("geometry_column") is None
                         else _identifier(f"{where}.geometry_column", options["geometry_column"])),
        bbox=None if options.get("bbox") is None else _bbox(f"{where}.bbox", options["bbox"]),
        time_window=(None if time_window is None
                     else parse_duration(f"{where}.time_window", time_window)),
        cursor_column=(None if options.get("cursor_column") is None
                       else _identifier(f"{where}.cursor_column", options["cursor_column"])),
        limit=limit,
        connect_timeout=_positive(f"{where}.connect_timeout",
                                  options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
    )


__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_LIMIT", "PostgisSettings", "import_psycopg",
           "parse_options"]
