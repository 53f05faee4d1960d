"""The running city's services, as one typed object.

``create_app(config)`` builds one :class:`Services` and hands it to every callback
module (``register(app, services)``) and every API blueprint, instead of each of
them finding what it needs under a string key in ``server.extensions``.

This package sits between operations/rendering and callbacks/API in the layering
contract (see ``[tool.importlinter]`` in pyproject.toml): it may import the store,
the event pipeline and the vital signs; callbacks and the API import it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from config.city import CityConfig
    from ops.auth import Auth
    from ops.events.pipeline import EventPipeline
    from ops.events.settings import User
    from ops.events.store import EventStore
    from ops.sessions import SessionGuard
    from ops.signs.ledger import AlertLedger, Change
    from ops.signs.service import VitalSigns
    from render.privacy import Audience, Disclosure
    from services.dependencies import DependencyWatch
    from store.city import CityData
    from store.ingest import IngestEngine
    from store.replication import SharedLive

log = logging.getLogger("citybrain")
#: Who is asking, as privacy rules see it: nobody signed in, or a user's role.
Role = Literal["anonymous", "exhibition", "viewer", "operator"]
#: Roles that see details (free text, exact places, small counts); the others see aggregates.
DETAIL_ROLES: frozenset[str] = frozenset({"viewer", "operator"})
#: Event supervision (overdue → escalation) runs when this many *city* seconds have
#: passed since the last run: on an accelerated clock escalation keeps up with the
#: overdue flags (at 120x, every half wall second, after an ingest round).
SUPERVISE_EVERY = 60.0


@dataclass
class CallbackErrors:
    """Callbacks that failed in this process (logged, never shown on a wall), for /api/health."""

    count: int = 0
    last: str | None = None

    def record(self, error: BaseException) -> None:
        self.count += 1
        self.last = f"{type(error).__name__}: {error}"

    def as_dict(self) -> dict[str, Any]:
        """``{"count"}``, and ``"last"`` once a callback failed (as ``/api/health`` says it)."""
        return {"count": self.count} if self.last is None else {"count": self.count,
                                                                 "last": self.last}


@dataclass
class Heartbeat:
    """When a background task (event intake, alert evaluation) last ran well or failed, and why."""

    last_ok: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def beat(self) -> None:
        self.last_ok = datetime.now(UTC)

    def failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        self.last_error_at = datetime.now(UTC)

    @property
    def failing(self) -> bool:
        """True while the latest run failed."""
        return self.last_error_at is not None and (
            self.last_ok is None or self.last_error_at >= self.last_ok)

    def watch(self, task: Callable[[bool], None]) -> Callable[[bool], None]:
        """``task`` (an ingest after-round hook) that beats on success and records a failure."""
        def watched(changed: bool) -> None:
            try:
                task(changed)
            except Exception as exc:
                self.failed(exc)
                raise  # the ingest engine logs it and carries on
            self.beat()

        return watched


@dataclass
class Services:
    """Everything a callback or an API route may use, built once per app.

    ``events``, ``signs`` and ``auth`` are None when the city configures no event
    pipeline or vital signs (``auth`` is the event pipeline's users); ``replication``
    is None unless several workers share the live state.
    """

    config: CityConfig
    store: CityData
    ingest: IngestEngine
    events: EventPipeline | None = None
    signs: VitalSigns | None = None
    auth: Auth | None = None
    replication: SharedLive | None = None
    #: A stable id of this deployment's data lineage (answers the API's X-Citybrain-Lineage).
    lineage: str = ""
    callback_errors: CallbackErrors = field(default_factory=CallbackErrors)
    #: Event intake and alert evaluation after ingest rounds (for ``/api/health``).
    intake: Heartbeat = field(default_factory=Heartbeat)
    alerting: Heartbeat = field(default_factory=Heartbeat)
    #: What /api/health and the page's stale banner say of each dependency (set by build).
    dependencies: DependencyWatch | None = None
    #: The Flask session key (operator sign-in); None when the city has no event pipeline.
    secret_key: str | None = None
    #: Small-cell suppression for the public audience (built by :func:`build`).
    disclosure: Disclosure | None = None

    def user(self) -> User | None:
        """The user of the current request (bearer token or session), judged on the server."""
        from flask import has_request_context

        if self.auth is None or not has_request_context():
            return None
        return self.auth.user_for_request()

    def role(self) -> Role:
        """The current request's role: ``anonymous`` when nobody is signed in."""
        user = self.user()
        return "anonymous" if user is None else user.role

    def audience(self) -> Audience:
        """``"detail"`` for a viewer or operator, else ``"public"`` (aggregates only).

        Nobody signed in is public, with or without configured users, unless the city
        says ``[privacy] anonymous = "viewer"`` (allowed only without ``[[users]]``).
        """
        role = self.role()
        if role in DETAIL_ROLES:
            return "detail"
        if role == "anonymous" and self.disclosure is not None \
                and self.disclosure.settings.anonymous == "viewer":
            return "detail"
        return "public"


def build(config: CityConfig, start_ingest: bool = True) -> Services:
    """Load a city's data and start what runs by itself: ingest, events, vital signs.

    With streaming sources (or files to re-read), the ingest engine starts (one per
    process) unless ``start_ingest`` is False. When the config shares live state
    through Redis (see :mod:`store.replication`), only the elected process ingests
    and the others replicate its changes; with ``start_ingest`` False this process
    only follows. Event intake, event supervision and vital signs run after ingest
    rounds, whether or not a page is open.
    """
    from config.kit import ConfigError
    from ops.events.settings import EVENTS_SECTION, USERS_SECTION
    from ops.signs.settings import SIGNS_SECTION
    from render.privacy import PRIVACY_SECTION, Disclosure
    from services.dependencies import DependencyWatch
    from store.city import CityData
    from store.ingest import IngestEngine
    from store.replication import open_shared

    # Refused before anything starts: several workers without one session key.
    secret_key = _secret_key(config) if config.section(EVENTS_SECTION) is not None else None
    shared = open_shared(config)  # None unless several workers share the live state
    store: CityData
    if shared is not None:
        replicated = shared.open_city()
        store, lineage = replicated, replicated.lineage
    else:
        # This app's own versions: a shared cache never mixes them with another's.
        store, lineage = CityData.load(config), uuid.uuid4().hex
    engine = IngestEngine(store)
    privacy = config.section(PRIVACY_SECTION)
    if privacy.anonymous == "viewer" and config.section(USERS_SECTION):
        raise ConfigError("[privacy].anonymous: \"viewer\" is only for a city without "
                          "[[users]]; with users, sign in as a viewer instead")
    services = Services(config=config, store=store, ingest=engine, replication=shared,
                        lineage=lineage, disclosure=Disclosure(store, privacy))
    services.dependencies = DependencyWatch(services)
    if config.section(EVENTS_SECTION) is not None:
        services.events = _start_events(store, engine, services.intake)
        services.auth = services.events.auth
        services.auth.guard = _signin_guard(config)
        services.secret_key = secret_key
        if not services.auth.users:
            log.warning("events: no users are configured ([[users]] in the city file): "
                        "/api/events answers 403 to everyone and nobody can sign in or "
                        "acknowledge alerts; add [[users]] (see docs/api.md)")
    if config.section(SIGNS_SECTION) is not None:
        services.signs = _start_signs(store, engine, services.alerting,
                                      _alert_ledger(config, services.events))
        if shared is not None:
            live = shared
            services.signs.writes_alerts = lambda: live.role == "leader"
        if services.auth is None:
            log.warning("signs: no users (they are the [[users]] of an [events] table): "
                        "nobody can acknowledge alerts")
    if shared is not None:
        shared.start(engine, lead=start_ingest)
    elif start_ingest and config.sources:
        # Also for file-only cities: changed files are re-read every [live] reload
        # seconds, and vital signs and alerts are evaluated with no page open.
        engine.start()
    return services


def several_workers(config: CityConfig) -> str | None:
    """Why more than one process serves this city (None when one does)."""
    from ops.sessions import serving_workers
    from store.replication import shared_mode

    if shared_mode(config) is not None:
        return "workers share the live state through Redis"
    if config.cache.type == "RedisCache":
        return "the cache is on Redis ([cache] type = \"RedisCache\")"
    workers = serving_workers()
    if workers > 1:
        return f"gunicorn runs {workers} workers"
    return None


def _secret_key(config: CityConfig) -> str:
    """``CITYBRAIN_SECRET_KEY``; one process alone may make up a key that lasts as long as it.

    With several workers a made-up key would differ in each, and a sign-in would hold
    on one worker only: that is a ConfigError naming the variable.
    """
    from config.city import ConfigError

    secret = os.environ.get("CITYBRAIN_SECRET_KEY")
    if not secret:
        why = several_workers(config)
        if why is not None:
            raise ConfigError(f"CITYBRAIN_SECRET_KEY is not set but {why}: set it to the same long "
                              "random value for every worker (see docs/deployment.md)")
        log.warning("CITYBRAIN_SECRET_KEY is not set: operator sign-in lasts only as long "
                    "as this process")
        secret = secrets.token_hex(32)
    return secret


def _signin_guard(config: CityConfig) -> SessionGuard:
    """Sign-in limits and open sessions, in Redis when the city uses Redis (shared by workers)."""
    from ops.sessions import SIGNIN_SECTION, SessionGuard
    from store.cache import redis_url
    from store.replication import shared_mode

    uses_redis = shared_mode(config) is not None or config.cache.type == "RedisCache"
    return SessionGuard(config.section(SIGNIN_SECTION),
                        redis_url(config.cache) if uses_redis else "memory://",
                        key_prefix=f"{config.cache.key_prefix}signin:")


def _start_events(store: CityData, engine: IngestEngine, heartbeat: Heartbeat) -> EventPipeline:
    """Feed every source that feeds events (see layers.feeds_events) into the pipeline, now and after rounds.

    Intake runs now and after every ingest round that brought new data; supervision
    (overdue → escalation) after a round once :data:`SUPERVISE_EVERY` city seconds passed.
    """
    from ops.events.pipeline import EventPipeline
    from ops.events.settings import EVENTS_SECTION, USERS_SECTION

    settings = store.config.section(EVENTS_SECTION)
    assert settings is not None  # only started for a city with [events]
    users: tuple[User, ...] = store.config.section(USERS_SECTION)
    pipeline = EventPipeline(settings, users)
    pipeline.clock = lambda: store.clock.now().to_pydatetime(warn=False)  # SLAs run on city time
    pipeline.ingest_city(store)
    pipeline.supervise()
    last_supervised = store.clock.elapsed()

    def after_round(changed: bool) -> None:
        nonlocal last_supervised
        if changed:
            pipeline.ingest_city(store)
        if store.clock.elapsed() - last_supervised >= SUPERVISE_EVERY:
            last_supervised = store.clock.elapsed()
            pipeline.supervise()

    engine.after_round.append(heartbeat.watch(after_round))
    return pipeline


def _alert_ledger(config: CityConfig, events: EventPipeline | None) -> AlertLedger | None:
    """Where the deployment's one alert book lives (None: this process's memory).

    The event store's database when it is PostgreSQL (shared and durable), else Redis
    when the workers share their live state, else memory (one process, no database).
    """
    from ops.signs.ledger import RedisLedger
    from store.cache import redis_url
    from store.replication import shared_mode

    if events is not None and events.store.kind == "postgresql":
        store = events.store
        return _DocumentLedger(store, "alerts", kind=store.kind)
    if shared_mode(config) is not None:
        return RedisLedger(redis_url(config.cache), f"{config.cache.key_prefix}alerts:"
                           f"{config.city.name}")
    return None


class _DocumentLedger:
    """An :class:`~ops.signs.ledger.AlertLedger` on one document of the event store."""

    def __init__(self, store: EventStore, name: str, kind: str) -> None:
        self.store, self.name, self.kind = store, name, kind

    def read(self) -> dict[str, Any] | None:
        return self.store.read_document(self.name)

    def update(self, change: Change) -> dict[str, Any]:
        return self.store.update_document(self.name, change)


def _start_signs(store: CityData, engine: IngestEngine, heartbeat: Heartbeat,
                 ledger: AlertLedger | None = None) -> VitalSigns:
    """Evaluate indicators and warning rules after ingest rounds, every ``[live] refresh`` s."""
    from ops.signs.service import VitalSigns
    from ops.signs.settings import SIGNS_SECTION

    settings = store.config.section(SIGNS_SECTION)
    assert settings is not None  # only started for a city with indicators or rules
    # Backtests in the background: the first page after start-up does not wait for them.
    signs = VitalSigns.from_config(store, settings, ledger=ledger, background_backtests=True)
    last = 0.0

    def after_round(_changed: bool) -> None:
        nonlocal last
        if time.monotonic() - last >= store.config.live.refresh:
            last = time.monotonic()
            signs.refresh()

    engine.after_round.append(heartbeat.watch(after_round))
    return signs


__all__ = ["CallbackErrors", "DETAIL_ROLES", "Heartbeat", "Role", "Services", "build"]
