"""The ``[events]`` and ``[[users]]`` tables of a city config: TOML in, frozen objects out.

Checked the way :mod:`config.city` checks the rest of the file: an unknown key is a
:class:`~config.city.ConfigError` naming the valid ones. Secrets never live in the
file: the PostgreSQL DSN, password hashes and API tokens are read from environment
variables whose *names* the config gives.

Example::

    [events]
    store = "sqlite"
    path = "../../var/events.sqlite3"
    merge_window = "2h"
    default_department = "311 triage"
    default_sla = "72h"

    [events.departments]
    "Noise*" = "NYPD"

    [events.sla]
    "Noise*" = "8h"                       # calendar time
    "Street Light*" = "3 business days"   # working days of [events.calendar]

    [events.calendar]
    hours = "09:00-17:00"
    holidays = ["2026-12-24"]
    country = "US"                        # and the public holidays of the holidays package

    [[users]]
    name = "duty-officer"
    role = "operator"
    password_hash_env = "CITYBRAIN_DUTY_OFFICER_PASSWORD_HASH"
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from config.kit import ConfigError, check_keys, choice, number, parse_duration, text, unique_names
from config.sections import Section
from ops.events.calendar import Sla, WorkCalendar, parse_calendar, parse_sla_duration

StoreKind = Literal["sqlite", "postgresql"]
RoleName = Literal["operator", "viewer", "exhibition"]
STORES: tuple[StoreKind, ...] = ("sqlite", "postgresql")
ROLES: tuple[RoleName, ...] = ("operator", "viewer", "exhibition")

_EVENTS_KEYS = frozenset({
    "store", "path", "dsn_env", "table_prefix", "merge_window", "merge_res",
    "default_department", "default_sla", "max_escalation", "use_source_agency",
    "departments", "sla", "agencies", "calendar",
})
_USER_KEYS = frozenset({"name", "role", "password_hash_env", "token_env"})
# Table names are put into SQL text, so the prefix must be a plain identifier.
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,30}$")


@dataclass(frozen=True)
class EventsSettings:
    """How events are stored, merged, dispatched and supervised.

    ``departments`` and ``sla`` map a category *or* a case-insensitive glob pattern
    (``"Noise*"``) to a department / an :class:`~ops.events.calendar.Sla` (calendar time,
    or business hours or days on ``calendar``); exact categories win over patterns, and
    patterns are tried in the order the file lists them.
    """

    store: StoreKind = "sqlite"
    #: SQLite file (resolved against the config's folder).
    path: Path = Path("var/events.sqlite3")
    #: Name of the environment variable holding the PostgreSQL DSN (never the DSN itself).
    dsn_env: str = "CITYBRAIN_EVENTS_DSN"
    #: Prepended to the table names (``events``, ``reports``, ``audit``).
    table_prefix: str = ""
    #: Reports of one category in neighbouring cells within this many seconds are one event.
    merge_window: float = 2 * 3600.0
    merge_res: int = 9
    default_department: str = "unassigned"
    default_sla: Sla = Sla(72 * 3600.0)
    #: Overdue events step up one escalation level per further SLA period, up to this level.
    max_escalation: int = 3
    #: A report whose source names an agency goes to that agency (through ``agencies``).
    use_source_agency: bool = True
    departments: Mapping[str, str] = field(default_factory=dict)
    sla: Mapping[str, Sla] = field(default_factory=dict)
    #: Source agency → department, for sources whose agency codes differ from departments.
    agencies: Mapping[str, str] = field(default_factory=dict)
    #: Working hours and holidays that business-time SLAs count on (``[events.calendar]``).
    calendar: WorkCalendar | None = None


@dataclass(frozen=True)
class User:
    """A person or screen that may use the events API; secrets stay in the environment."""

    name: str
    role: RoleName
    #: Environment variable holding a werkzeug ``generate_password_hash`` string.
    password_hash_env: str | None = None
    #: Environment variable holding the user's API token.
    token_env: str | None = None


def _table(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of category = value, got {value!r}")
    return value


def _sla(where: str, value: Any, calendar: WorkCalendar | None) -> Sla:
    seconds, basis = parse_sla_duration(where, value)
    if basis != "calendar" and calendar is None:
        raise ConfigError(f"{where}: {value!r} is business time, which needs the city's working "
                          "calendar: add [events.calendar] (hours, holidays), or give calendar "
                          "time such as '72h'")
    return Sla(seconds, basis, calendar if basis != "calendar" else None)


def parse_events_settings(table: Mapping[str, Any], base_dir: Path,
                          timezone: str = "UTC") -> EventsSettings:
    """Validate an ``[events]`` table; the SQLite path resolves against ``base_dir``,
    working hours and holidays are in the city's ``timezone``."""
    where = "[events]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    check_keys(where, table, _EVENTS_KEYS)
    defaults = EventsSettings()
    store = choice(f"{where}.store", table.get("store", defaults.store), STORES, "store")
    prefix = str(table.get("table_prefix", defaults.table_prefix))
    if prefix and not _PREFIX.match(prefix):
        raise ConfigError(f"{where}.table_prefix: {prefix!r} must be lower-case letters, digits "
                          "and underscores, starting with a letter or underscore")
    merge_window = parse_duration(f"{where}.merge_window",
                                  table.get("merge_window", defaults.merge_window))
    calendar = None if "calendar" not in table else \
        parse_calendar(table["calendar"], timezone, f"{where[:-1]}.calendar]")
    default_sla = defaults.default_sla if "default_sla" not in table else \
        _sla(f"{where}.default_sla", table["default_sla"], calendar)
    if merge_window < 0:
        raise ConfigError(f"{where}.merge_window: must not be negative")
    departments = {
        text(f"{where}.departments key", k): text(f"{where}.departments.{k!r}", v)
        for k, v in _table(f"{where}.departments", table.get("departments", {})).items()}
    sla = {}
    for key, value in _table(f"{where}.sla", table.get("sla", {})).items():
        sla[text(f"{where}.sla key", key)] = _sla(f"{where}.sla.{key!r}", value, calendar)
    agencies = {
        text(f"{where}.agencies key", k): text(f"{where}.agencies.{k!r}", v)
        for k, v in _table(f"{where}.agencies", table.get("agencies", {})).items()}
    use_source_agency = table.get("use_source_agency", defaults.use_source_agency)
    if not isinstance(use_source_agency, bool):
        raise ConfigError(f"{where}.use_source_agency: expected true or false")
    return EventsSettings(
        store=store,  # type: ignore[arg-type]
        path=(base_dir / str(table.get("path", defaults.path))).resolve(),
        dsn_env=text(f"{where}.dsn_env", table.get("dsn_env", defaults.dsn_env)),
        table_prefix=prefix,
        merge_window=merge_window,
        merge_res=int(number(f"{where}.merge_res", table.get("merge_res", defaults.merge_res),
                              0, 15)),
        default_department=text(f"{where}.default_department",
                                 table.get("default_department", defaults.default_department)),
        default_sla=default_sla,
        max_escalation=int(number(f"{where}.max_escalation",
                                   table.get("max_escalation", defaults.max_escalation), 1, 10)),
        use_source_agency=use_source_agency,
        departments=departments,
        sla=sla,
        agencies=agencies,
        calendar=calendar,
    )


def parse_users(entries: Sequence[Mapping[str, Any]]) -> tuple[User, ...]:
    """Validate ``[[users]]``: each needs a name, a role and a password or token variable."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError("[[users]]: expected an array of tables")
    users = []
    for index, entry in enumerate(entries):
        where = f"[[users]] #{index + 1}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table")
        check_keys(where, entry, _USER_KEYS)
        name = text(f"{where}.name", entry.get("name"))
        where = f"[[users]] {name!r}"
        role = choice(f"{where}.role", entry.get("role"), ROLES, "role")
        password_env = entry.get("password_hash_env")
        token_env = entry.get("token_env")
        if password_env is None and token_env is None:
            raise ConfigError(f"{where}: needs password_hash_env or token_env (the name of an "
                              "environment variable; the secret itself never goes in the file)")
        users.append(User(
            name=name,
            role=role,  # type: ignore[arg-type]
            password_hash_env=None if password_env is None
            else text(f"{where}.password_hash_env", password_env),
            token_env=None if token_env is None else text(f"{where}.token_env", token_env),
        ))
    unique_names("[[users]]", (u.name for u in users), "user")
    return tuple(users)


#: ``[events]`` as the city file's section: ``config.section(EVENTS_SECTION)`` is the
#: pipeline's settings, None when the city has no event pipeline.
EVENTS_SECTION = Section[EventsSettings | None](
    "events", ("events",),
    lambda tables, context: parse_events_settings(tables["events"], context.base_dir, context.timezone),
    default=None, keys={"events": _EVENTS_KEYS})
#: ``[[users]]``: who may use the events API and the operations UI.
USERS_SECTION = Section[tuple[User, ...]](
    "users", ("users",), lambda tables, _context: parse_users(tables["users"]),
    default=(), keys={"users": _USER_KEYS})


__all__ = [
    "EVENTS_SECTION", "ROLES", "STORES", "USERS_SECTION", "EventsSettings", "User",
    "parse_events_settings", "parse_users",
]
