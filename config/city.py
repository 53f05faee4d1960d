"""City configuration: TOML in, a validated frozen object out.

Every table and key is checked. An unknown key, layer, role or adapter is a
:class:`ConfigError` that names the valid choices, so a typo in a city's config
fails at start-up with a message an operator can act on, not as a blank layer
later. Secrets never live in the file: a source names the environment variable
that holds them (``password_env = "CITY_DB_PASSWORD"``).

Config imports no feature: the layers, the adapters and the feature-owned tables
(``[events]``, ``[[rules]]`` …) reach it as a :class:`~config.sections.ConfigSchema`,
which ``app`` assembles. Example::

    from app import load_config

    config = load_config("cities/nyc/city.toml")
    config.city.name            # "New York City"
    config.sources[0].adapter   # "parquet"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from config.clock import parse_start
from config.columns import check_boundary_file
from config.kit import (
    ConfigError,
    check_keys,
    choice,
    env_name,
    number,
    parse_duration,
    positive_duration,
    require,
    table_name,
    unique_names,
)
from config.plausible import PlausibleTimes, parse_plausible
from config.sections import ConfigSchema, LayerSpec, Section, SectionContext
from config.tour import TOUR_KEYS, TourStep, parse_tour
from geo.crs import UnknownCRSError, check_crs

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO_ROOT / "cities" / "nyc" / "city.toml"
SNAPSHOT_CONFIG = REPO_ROOT / "cities" / "nyc" / "snapshot.toml"

Language = Literal["zh-CN", "en"]
Theme = Literal["dark", "light"]
Watermark = Literal["newest", "clock"]
WATERMARKS: tuple[Watermark, ...] = ("newest", "clock")
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")
THEMES: tuple[Theme, ...] = ("dark", "light")


@dataclass(frozen=True)
class CityInfo:
    name: str
    name_zh: str
    center_lat: float
    center_lon: float
    zoom: float
    timezone: str = "UTC"
    language: Language = "zh-CN"
    theme: Theme = "dark"


#: The resolutions ``/api/layers/<id>/cells`` answers at.
API_RESOLUTIONS = range(7, 11)


@dataclass(frozen=True)
class MapSettings:
    """How the map chooses H3 resolutions and how much it may send to a browser."""

    base_res: int = 10
    #: (minimum zoom, resolution) steps, ascending; the last step whose zoom is reached wins.
    res_by_zoom: tuple[tuple[float, int], ...] = ((0.0, 7), (9.0, 8), (11.5, 9), (12.75, 10))
    #: From this zoom on, point layers are drawn as single points.
    points_zoom: float = 14.5
    max_hexes: int = 10_000
    max_points: int = 100_000
    #: Optional raster tile URL template ({z}/{x}/{y}); empty means no base map tiles.
    tile_url: str = ""
    tile_attribution: str = ""

    @property
    def served_resolutions(self) -> tuple[int, ...]:
        """Every resolution the map or the API serves: each point is indexed at all of them."""
        return tuple(sorted({res for _, res in self.res_by_zoom} | {self.base_res}
                            | set(API_RESOLUTIONS)))


@dataclass(frozen=True)
class CacheSettings:
    type: Literal["SimpleCache", "RedisCache", "NullCache"] = "SimpleCache"
    #: Name of the environment variable holding the Redis URL (never the URL itself).
    redis_url_env: str = "CITYBRAIN_REDIS_URL"
    default_timeout: int = 300
    #: Where derived data (cell apportionments) is cached on disk; empty: the user's
    #: cache folder ($XDG_CACHE_HOME/citybrain, else ~/.cache/citybrain); a relative
    #: path is relative to the config file's folder. See :meth:`disk_directory`.
    directory: str = ""
    #: Prefix of every Redis key (cache entries and shared live state), so that
    #: several deployments can share one Redis.
    key_prefix: str = "citybrain:"


    def disk_directory(self, config_dir: Path | None = None,
                       environ: Mapping[str, str] | None = None) -> Path:
        """The folder of the on-disk cache, outside the checkout unless configured there.

        XDG's base directory rule, written out (three lines) rather than a dependency:
        citybrain runs on Linux servers.
        """
        if self.directory:
            path = Path(self.directory).expanduser()
            return path if path.is_absolute() else (config_dir or Path.cwd()) / path
        env = os.environ if environ is None else environ
        base = env.get("XDG_CACHE_HOME") or ""
        root = Path(base) if Path(base).is_absolute() else Path.home() / ".cache"
        return root / "citybrain"


@dataclass(frozen=True)
class LiveSettings:
    """How the live city runs: the clock, refresh and ingest cadence, window bounds."""

    #: City-clock speed: 1 is real time; a demo replay runs faster (e.g. 60).
    speed: float = 1.0
    #: Where the city clock starts (UTC), for replays and "as of" reviews; None: now.
    start: pd.Timestamp | None = None
    #: How often open pages refresh (seconds).
    refresh: float = 3.0
    #: How often streaming sources are polled by the ingest engine (seconds).
    ingest_interval: float = 1.0
    #: How often snapshot sources are re-checked for changes (seconds).
    reload: float = 60.0
    #: Default live window and history kept for replay (city seconds), and row bound.
    window: float = 24 * 3600.0
    history: float = 24 * 3600.0
    max_rows: int = 500_000
    #: Freshness threshold for streaming sources without their own ``stale_after``.
    stale_after: float = 60.0
    #: How several worker processes share the live state (see store.replication): "redis"
    #: (one process ingests, the others replicate), "off" (each process on its own),
    #: or "auto" (redis when the cache is RedisCache).
    shared: Literal["auto", "off", "redis"] = "auto"
    #: Where the replay history is also kept (see store.history): "memory" (only the
    #: ``history`` above) or "postgresql" (every version, for ``history_retention``).
    history_store: Literal["memory", "postgresql"] = "memory"
    #: Name of the environment variable holding the history DSN (never the DSN itself).
    history_dsn_env: str = "CITYBRAIN_HISTORY_DSN"
    #: Table of the PostgreSQL history, optionally schema-qualified ("ops.history").
    history_table: str = "citybrain_history"
    #: How long PostgreSQL keeps versions (city seconds of ``received``).
    history_retention: float = 30 * 86400.0
    #: Rows the history writer holds while PostgreSQL is unreachable; more are dropped
    #: (and counted in /api/health).
    history_backlog: int = 500_000
    #: Row times outside this range are rejected as implausible (see config.plausible).
    plausible_times: PlausibleTimes = field(default_factory=PlausibleTimes)


@dataclass(frozen=True)
class Boundary:
    """One level of administrative boundaries (e.g. borough, then neighbourhood)."""

    path: Path
    name_field: str
    level: str
    title_zh: str
    title_en: str
    id_field: str | None = None
    #: Field holding the name of the enclosing unit one level up, for drill-down.
    parent_field: str | None = None
    #: The file's CRS when it does not declare one (or GCJ-02 / BD-09, which no file can).
    crs: str | None = None


@dataclass(frozen=True)
class Source:
    """One data source feeding one layer; ``fields`` maps normalised names to source columns."""

    name: str
    layer: str
    role: str
    adapter: str
    title_zh: str
    title_en: str
    fields: Mapping[str, str]
    options: Mapping[str, Any]
    base_dir: Path
    crs: str = "EPSG:4326"
    where: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    attribution: str = ""
    simulated: bool = False
    stale_after: float | None = None
    #: Live window and row bound for streaming sources (None: the [live] defaults).
    window: float | None = None
    max_rows: int | None = None
    #: How far the source's data are complete: ``newest`` (its newest event time) or
    #: ``clock`` (up to now: silence means nothing happened). See docs/indicators.md.
    watermark: Watermark = "newest"
    #: Whether the rows go to the event queue; None: as the role says (a government
    #: ``requests`` source does, an ``incidents`` source does not).
    events: bool | None = None
    #: For observations (a role with an ``entity`` field): the source whose rows are
    #: the entities (devices, stations) the observations' ``entity`` ids name.
    entity_source: str | None = None
    #: Times outside this range reject the row (None: [live] plausible_times).
    plausible_times: PlausibleTimes | None = None

    def path(self, key: str = "path") -> Path:
        """An option naming a file, resolved against the config file's folder."""
        return (self.base_dir / str(self.options[key])).resolve()


@dataclass(frozen=True)
class CityConfig:
    city: CityInfo
    map: MapSettings
    cache: CacheSettings
    live: LiveSettings
    boundaries: tuple[Boundary, ...]
    sources: tuple[Source, ...]
    attributions: tuple[str, ...]
    path: Path | None = None
    #: The self-running exhibition tour (``?tour=1``); empty: none configured.
    tour: tuple[TourStep, ...] = ()
    #: The feature-owned tables (events, users, vital signs …), by their section;
    #: read them with :meth:`section`.
    sections: Mapping[Section[Any], Any] = field(default_factory=dict)

    def sources_for(self, layer: str) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.layer == layer)

    def section(self, section: Section[T]) -> T:
        """A feature's own part of the config, typed (its default when the file had none)."""
        return cast(T, self.sections.get(section, section.default))

    def with_section(self, section: Section[T], value: T) -> CityConfig:
        """A copy of this config with ``section`` set to ``value`` (tests, tools)."""
        return replace(self, sections={**self.sections, section: value})


#: The keys of each core table (docs/new-city.md describes every one; a test checks).
CITY_KEYS = frozenset({
    "name", "name_zh", "center", "zoom", "timezone", "language", "theme", "attributions",
})
MAP_KEYS = frozenset({
    "base_res", "res_by_zoom", "points_zoom", "max_hexes", "max_points", "tile_url",
    "tile_attribution",
})
CACHE_KEYS = frozenset({"type", "redis_url_env", "default_timeout", "directory", "key_prefix"})
BOUNDARY_KEYS = frozenset({
    "path", "name_field", "level", "title_zh", "title_en", "id_field", "parent_field", "crs",
})
#: Keys every source may have, whatever its adapter and layer.
SOURCE_COMMON_KEYS = frozenset({
    "name", "layer", "role", "adapter", "title_zh", "title_en", "crs", "where", "attribution",
    "simulated", "stale_after", "window", "max_rows", "watermark", "events",
    "entity_source", "plausible_times",
})
LIVE_KEYS = frozenset({
    "speed", "start", "refresh", "ingest_interval", "reload", "window", "history", "max_rows",
    "stale_after", "shared", "history_store", "history_dsn_env", "history_table",
    "history_retention", "history_backlog", "plausible_times",
})
SHARED_MODES = ("auto", "off", "redis")
HISTORY_STORES = ("memory", "postgresql")


def _check_crs(where: str, crs: str) -> None:
    try:
        check_crs(crs)
    except UnknownCRSError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _timezone(where: str, value: Any) -> str:
    """An IANA time zone name that this machine's zone database knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {value!r}; use an IANA name such as "
                          f"'America/New_York', 'Asia/Shanghai' or 'UTC'") from None
    return str(value)


def _parse_city(table: Mapping[str, Any]) -> CityInfo:
    where = "[city]"
    check_keys(where, table, CITY_KEYS)
    center = require(where, table, "center")
    if not isinstance(center, Mapping):
        raise ConfigError(f"{where}.center: expected {{ lat = …, lon = … }}")
    check_keys(f"{where}.center", center, {"lat", "lon"})
    return CityInfo(
        name=str(require(where, table, "name")),
        name_zh=str(table.get("name_zh", table["name"])),
        center_lat=number(f"{where}.center.lat", require(where, center, "lat"), -90, 90),
        center_lon=number(f"{where}.center.lon", require(where, center, "lon"), -180, 180),
        zoom=number(f"{where}.zoom", table.get("zoom", 10), 0, 22),
        timezone=_timezone(f"{where}.timezone", table.get("timezone", "UTC")),
        language=choice(f"{where}.language", table.get("language", "zh-CN"), LANGUAGES,
                         "language"),  # type: ignore[arg-type]
        theme=choice(f"{where}.theme", table.get("theme", "dark"), THEMES, "theme"),  # type: ignore[arg-type]
    )


def _parse_map(table: Mapping[str, Any]) -> MapSettings:
    where = "[map]"
    check_keys(where, table, MAP_KEYS)
    defaults = MapSettings()
    steps = defaults.res_by_zoom
    if "res_by_zoom" in table:
        raw = table["res_by_zoom"]
        try:
            steps = tuple((float(z), int(r)) for z, r in raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.res_by_zoom: expected [[zoom, res], …], got {raw!r}") from exc
        if [z for z, _ in steps] != sorted(z for z, _ in steps) or not steps:
            raise ConfigError(f"{where}.res_by_zoom: zoom steps must be ascending")
    base_res = int(number(f"{where}.base_res", table.get("base_res", defaults.base_res), 5, 12))
    for _, res in steps:
        if not 0 <= res <= base_res:
            raise ConfigError(f"{where}.res_by_zoom: resolution {res} is outside [0, base_res={base_res}]")
    return MapSettings(
        base_res=base_res,
        res_by_zoom=steps,
        points_zoom=number(f"{where}.points_zoom", table.get("points_zoom", defaults.points_zoom), 0, 24),
        max_hexes=int(number(f"{where}.max_hexes", table.get("max_hexes", defaults.max_hexes), 1)),
        max_points=int(number(f"{where}.max_points", table.get("max_points", defaults.max_points), 1)),
        tile_url=str(table.get("tile_url", "")),
        tile_attribution=str(table.get("tile_attribution", "")),
    )


def _parse_cache(table: Mapping[str, Any]) -> CacheSettings:
    where = "[cache]"
    check_keys(where, table, CACHE_KEYS)
    defaults = CacheSettings()
    return CacheSettings(
        type=choice(f"{where}.type", table.get("type", defaults.type),
                     ("SimpleCache", "RedisCache", "NullCache"), "cache type"),  # type: ignore[arg-type]
        redis_url_env=str(table.get("redis_url_env", defaults.redis_url_env)),
        default_timeout=int(table.get("default_timeout", defaults.default_timeout)),
        directory=str(table.get("directory", defaults.directory)),
        key_prefix=str(table.get("key_prefix", defaults.key_prefix)),
    )


def _parse_live(table: Mapping[str, Any], timezone: str) -> LiveSettings:
    where = "[live]"
    check_keys(where, table, LIVE_KEYS)
    d = LiveSettings()

    def duration(key: str, default: float) -> float:
        return parse_duration(f"{where}.{key}", table[key]) if key in table else default

    return LiveSettings(
        speed=number(f"{where}.speed", table.get("speed", d.speed), 0.001, 100_000),
        start=parse_start(f"{where}.start", table["start"], timezone) if "start" in table else None,
        refresh=duration("refresh", d.refresh),
        ingest_interval=duration("ingest_interval", d.ingest_interval),
        reload=duration("reload", d.reload),
        window=duration("window", d.window),
        history=duration("history", d.history),
        max_rows=int(number(f"{where}.max_rows", table.get("max_rows", d.max_rows), 1)),
        stale_after=duration("stale_after", d.stale_after),
        shared=choice(f"{where}.shared", table.get("shared", d.shared), SHARED_MODES,
                       "sharing mode"),  # type: ignore[arg-type]
        history_store=choice(f"{where}.history_store", table.get("history_store", d.history_store),
                              HISTORY_STORES, "history store"),  # type: ignore[arg-type]
        history_dsn_env=env_name(f"{where}.history_dsn_env",
                                  table.get("history_dsn_env", d.history_dsn_env)),
        history_table=table_name(f"{where}.history_table",
                                  table.get("history_table", d.history_table)),
        history_retention=positive_duration(f"{where}.history_retention",
                                             table.get("history_retention", d.history_retention)),
        history_backlog=int(number(f"{where}.history_backlog",
                                    table.get("history_backlog", d.history_backlog), 1)),
        plausible_times=parse_plausible(f"{where}.plausible_times", table["plausible_times"])
        if "plausible_times" in table else d.plausible_times,
    )


def _parse_boundary(index: int, table: Mapping[str, Any], base_dir: Path) -> Boundary:
    where = f"[[boundaries]] #{index + 1}"
    check_keys(where, table, BOUNDARY_KEYS)
    if table.get("crs") is not None:
        _check_crs(f"{where}.crs", str(table["crs"]))
    level = str(table.get("level", f"level{index + 1}"))
    boundary = Boundary(
        path=(base_dir / str(require(where, table, "path"))).resolve(),
        name_field=str(require(where, table, "name_field")),
        level=level,
        title_zh=str(table.get("title_zh", table.get("title_en", level))),
        title_en=str(table.get("title_en", level)),
        id_field=table.get("id_field"),
        parent_field=table.get("parent_field"),
        crs=None if table.get("crs") is None else str(table["crs"]),
    )
    return boundary


def _parse_source(index: int, table: Mapping[str, Any], base_dir: Path,
                  schema: ConfigSchema) -> Source:
    layer_id = str(require(f"[[sources]] #{index + 1}", table, "layer"))
    name = str(table.get("name", f"{layer_id}-{index + 1}"))
    where = f"[[sources]] {name!r}"
    choice(f"{where}.layer", layer_id, schema.layers, "layer")
    layer = schema.layers[layer_id]
    role_name = str(table.get("role", layer.default_role))
    role = layer.roles.get(role_name)
    if role is None:
        raise ConfigError(f"{where}.role: unknown role {role_name!r} for layer {layer_id!r}; "
                          f"valid roles are: {', '.join(layer.roles)}")
    adapter_name = str(require(where, table, "adapter"))
    choice(f"{where}.adapter", adapter_name, schema.adapter_names(), "adapter")
    adapter = schema.adapter(adapter_name)
    field_keys = set(role.field_names())
    check_keys(where, table, SOURCE_COMMON_KEYS | field_keys | set(adapter.options))
    for option in adapter.required_options:
        require(where, table, option)
    # Adapter-specific validation, at load time not first read.
    adapter.check_options(where, {k: v for k, v in table.items() if k in adapter.options},
                          {k: str(v) for k, v in table.items() if k in field_keys})
    where_filter = table.get("where", {})
    if not isinstance(where_filter, Mapping):
        raise ConfigError(f"{where}.where: expected a table of column = [values]")
    stale_after = table.get("stale_after")
    window = table.get("window")
    if "cell" in table and ("lat" in table or "lon" in table):
        raise ConfigError(f"{where}.cell: a source is placed by an H3 cell id or by lat/lon, "
                          "not both; remove cell or lat/lon")
    events = table.get("events")
    if events is not None and not isinstance(events, bool):
        raise ConfigError(f"{where}.events: expected true or false, got {events!r}")
    if events and role.geometry != "point":
        raise ConfigError(f"{where}.events: only point sources can feed the event queue; "
                          f"role {role_name!r} is {role.geometry}")
    return Source(
        name=name,
        layer=layer_id,
        role=role_name,
        adapter=adapter_name,
        title_zh=str(table.get("title_zh", table.get("title_en", name))),
        title_en=str(table.get("title_en", name)),
        fields={k: str(v) for k, v in table.items() if k in field_keys},
        options={k: v for k, v in table.items() if k in adapter.options},
        base_dir=base_dir,
        crs=str(table.get("crs", "EPSG:4326")),
        where={str(k): tuple(v if isinstance(v, list) else [v]) for k, v in where_filter.items()},
        attribution=str(table.get("attribution", "")),
        simulated=bool(table.get("simulated", False)),
        stale_after=None if stale_after is None else parse_duration(f"{where}.stale_after", stale_after),
        window=None if window is None else parse_duration(f"{where}.window", window),
        max_rows=None if "max_rows" not in table else int(
            number(f"{where}.max_rows", table["max_rows"], 1)),
        watermark=choice(f"{where}.watermark", table.get("watermark", "newest"), WATERMARKS,
                         "watermark"),  # type: ignore[arg-type]
        events=events,
        entity_source=None if table.get("entity_source") is None
        else str(table["entity_source"]),
        plausible_times=parse_plausible(f"{where}.plausible_times", table["plausible_times"])
        if "plausible_times" in table else None,
    )


def check_entity_sources(sources: tuple[Source, ...], layers: Mapping[str, LayerSpec]) -> None:
    """Observations name their entity and time; ``entity_source`` names a source of entities.

    Observations are the rows of a role with an ``entity`` field (a station's
    readings): a source of them maps ``entity`` (the column holding the entity's id)
    and ``time``. Its ``entity_source``, when given, is another point source whose
    rows are the entities (id, location, attributes), not itself observations.
    """
    by_name = {s.name: s for s in sources}
    for source in sources:
        where = f"[[sources]] {source.name!r}"
        observes = "entity" in layers[source.layer].roles[source.role].field_names()
        if observes:
            for key, why in (("entity", "the column holding the id of the device or station "
                                        "each reading is of"),
                             ("time", "the column holding when each reading was taken")):
                if key not in source.fields:
                    raise ConfigError(f"{where}: missing required key {key!r}: {why}")
        if source.entity_source is None:
            continue
        if not observes:
            observing = sorted(f"{lid}/{name}" for lid, layer in layers.items()
                               for name, role in layer.roles.items()
                               if "entity" in role.field_names())
            raise ConfigError(f"{where}.entity_source: only for observations (roles with an "
                              f"'entity' field: {', '.join(observing) or 'none'}); remove it "
                              "or change the role")
        entity = by_name.get(source.entity_source)
        if entity is None or entity.name == source.name:
            others = [s.name for s in sources if s.name != source.name
                      and layers[s.layer].roles[s.role].geometry == "point"]
            raise ConfigError(f"{where}.entity_source: unknown source "
                              f"{source.entity_source!r}; valid sources are: "
                              f"{', '.join(others) or '(none)'}")
        if layers[entity.layer].roles[entity.role].geometry != "point" \
                or entity.entity_source is not None:
            raise ConfigError(f"{where}.entity_source: {entity.name!r} must be a point source "
                              "of entities (id, location, attributes), not areas or "
                              "observations")


#: The top-level tables config itself parses; features add theirs through sections.
CORE_TABLES = ("city", "map", "cache", "live", "boundaries", "sources", "tour")


def parse_config(raw: Mapping[str, Any], base_dir: Path, path: Path | None = None, *,
                 schema: ConfigSchema) -> CityConfig:
    """Validate a parsed TOML document; paths resolve against ``base_dir``.

    ``schema`` holds what the features above config contribute (layers, adapters,
    their own sections); ``app.parse_config`` passes the whole app's.
    """
    check_keys("config", raw, set(CORE_TABLES) | set(schema.tables()))
    city_table = require("config", raw, "city")
    sources = tuple(_parse_source(i, t, base_dir, schema)
                    for i, t in enumerate(raw.get("sources", [])))
    unique_names("[[sources]]", (s.name for s in sources), "source")
    for source in sources:
        _check_crs(f"[[sources]] {source.name!r}.crs", source.crs)
    check_entity_sources(sources, schema.layers)
    attributions = tuple(str(a) for a in city_table.get("attributions", []))
    city = _parse_city(city_table)
    context = SectionContext(base_dir=base_dir, sources=sources, timezone=city.timezone)
    sections = {section: section.read(raw, context) for section in schema.sections}
    return CityConfig(
        city=city,
        map=_parse_map(raw.get("map", {})),
        cache=_parse_cache(raw.get("cache", {})),
        live=_parse_live(raw.get("live", {}), city.timezone),
        boundaries=tuple(_parse_boundary(i, t, base_dir) for i, t in enumerate(raw.get("boundaries", []))),
        sources=sources,
        attributions=attributions,
        path=path,
        tour=parse_tour(raw.get("tour", []), schema.layers),
        sections=sections,
    )


def check_files(config: CityConfig, *, schema: ConfigSchema) -> None:
    """Refuse a config whose files are missing or lack the fields it names.

    Every boundary file and every file source (through its adapter's ``check_source``)
    is checked from its header alone, so this is quick. :func:`parse_config` does not
    do it (a config can be parsed before its data is in place); the command line and
    ``app:server`` do, before building anything, and the same checks run again at the
    first read of each file with the same message.
    """
    for boundary in config.boundaries:
        check_boundary_file(f"[[boundaries]] {boundary.level!r}", boundary)
    for source in config.sources:
        schema.adapter(source.adapter).check_source(f"[[sources]] {source.name!r}", source)


def _read_toml(config_path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {config_path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: tables merge key by key, sources by name.

    A source in ``override`` with the name of a base source replaces it whole;
    new names are added; ``boundaries`` given in ``override`` replace the base's.
    """
    merged: dict[str, Any] = {k: v for k, v in base.items()}
    for key, value in override.items():
        if key == "sources":
            sources = {str(s.get("name")): s for s in base.get("sources", [])}
            for source in value:
                sources[str(source.get("name"))] = source
            merged["sources"] = list(sources.values())
        elif isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return merged


def load_config(path: str | os.PathLike[str] | None = None, *,
                schema: ConfigSchema) -> CityConfig:
    """Load and validate a city config; with no path, the built-in demo city.

    ``schema``: see :func:`parse_config`; ``app.load_config(path)`` passes the app's.

    A config may start with ``extends = "other.toml"`` (a file in the same folder)
    and then only say what differs, e.g. the live demo over the snapshot city.
    """
    config_path = Path(path) if path is not None else DEMO_CONFIG
    raw = _read_toml(config_path)
    seen = {config_path.resolve()}
    while "extends" in raw:
        base_path = (config_path.parent / str(raw.pop("extends"))).resolve()
        if base_path in seen:
            raise ConfigError(f"{config_path}: 'extends' loops back to {base_path.name}")
        if base_path.parent != config_path.resolve().parent:
            raise ConfigError(f"{config_path}: 'extends' must name a file in the same folder")
        seen.add(base_path)
        raw = merge_configs(_read_toml(base_path), raw)
    return parse_config(raw, config_path.resolve().parent, config_path.resolve(), schema=schema)


__all__ = [
    "BOUNDARY_KEYS", "CACHE_KEYS", "CITY_KEYS", "CORE_TABLES", "DEMO_CONFIG", "HISTORY_STORES",
    "LANGUAGES", "LIVE_KEYS", "MAP_KEYS", "REPO_ROOT", "SHARED_MODES", "SNAPSHOT_CONFIG",
    "SOURCE_COMMON_KEYS", "THEMES", "TOUR_KEYS", "Boundary", "CacheSettings", "CityConfig",
    "CityInfo", "ConfigError", "Language", "LiveSettings", "MapSettings", "Source", "Theme",
    "TourStep", "check_files", "load_config", "merge_configs", "parse_config", "parse_duration",
]
