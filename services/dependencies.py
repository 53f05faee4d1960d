"""What ``/api/health`` says of each thing the city depends on, with its state, since when and why.

Every dependency is one entry::

    {"name": "redis", "kind": "redis", "state": "down", "since": "2026-…Z",
     "why": "ConnectionError: Error 111 connecting to 127.0.0.1:6390. Connection refused."}

``state`` is ``ok``, ``degraded``, ``down`` or ``stale``; ``since`` is when this
process first saw that state (or the dependency's own time of failure); ``why`` says
what is wrong (None when ok). The entries are, as the city configures them:

- ``redis``: the shared cache and live state (a PING);
- ``postgresql:events`` / ``sqlite:events``: the event store (a ``SELECT 1``);
- ``postgresql:history``: the history writer (its own status: backlog, last error);
- ``mqtt:<host>:<port>``: each broker a source reads (a TCP connect);
- ``source:<name>``: each source (its last read, error and staleness);
- ``event-intake`` and ``alert-evaluation``: the tasks run after ingest rounds.

Network probes have a short timeout and their answer is reused for a couple of
seconds, so a polled health page never piles up connections during an outage.
One watch per app (``services.dependencies``) serves ``/api/health`` and the page's
stale banner alike.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from config.clock import iso

if TYPE_CHECKING:
    from services import Heartbeat, Services

State = Literal["ok", "degraded", "down", "stale"]
#: How long a network probe's answer is reused, and how long one may take, in seconds.
PROBE_EVERY = 2.0
PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class Finding:
    """One dependency's state now; ``at`` is its own time of failure when it knows one."""

    name: str
    kind: str
    state: State
    why: str | None = None
    at: datetime | None = None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:300]


class DependencyWatch:
    """Finds the state of every dependency of ``services`` (one per app, so per process)."""

    def __init__(self, services: Services, probe_every: float = PROBE_EVERY,
                 timeout: float = PROBE_TIMEOUT) -> None:
        self.services = services
        self.probe_every = probe_every
        self.timeout = timeout
        self._lock = threading.Lock()
        self._probes: dict[str, tuple[float, tuple[State, str | None]]] = {}
        self._seen: dict[str, tuple[State, datetime]] = {}
        self._started = datetime.now(UTC)

    # ------------------------------------------------------------ the document
    def report(self) -> list[dict[str, Any]]:
        """Every dependency as ``{"name", "kind", "state", "since", "why"}``, in a fixed order."""
        findings = [*self._redis(), *self._event_store(), *self._history(), *self._brokers(),
                    *self._sources(), *self._tasks()]
        now = datetime.now(UTC)
        answer = []
        with self._lock:
            for found in findings:
                before = self._seen.get(found.name)
                if before is not None and before[0] == found.state:
                    since = before[1]
                else:
                    since = found.at if (before is None and found.at is not None) else (
                        self._started if before is None else now)
                    self._seen[found.name] = (found.state, since)
                answer.append({"name": found.name, "kind": found.kind, "state": found.state,
                               "since": iso(since, "seconds"), "why": found.why})
        return answer

    # ---------------------------------------------------------------- probes
    def _probe(self, key: str, check: Callable[[], None]) -> tuple[State, str | None]:
        """``check()`` raising means down; the answer is reused for ``probe_every`` s."""
        with self._lock:
            cached = self._probes.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.probe_every:
            return cached[1]
        try:
            check()
            result: tuple[State, str | None] = ("ok", None)
        except Exception as exc:  # any failure of a probe is the dependency's state, never ours
            result = ("down", _error_text(exc))
        with self._lock:
            self._probes[key] = (time.monotonic(), result)
        return result

    def _redis(self) -> list[Finding]:
        from store.cache import redis_url
        from store.replication import shared_mode

        config = self.services.config
        if shared_mode(config) is None and config.cache.type != "RedisCache":
            return []

        def ping() -> None:
            import redis

            client = redis.Redis.from_url(redis_url(config.cache), socket_timeout=self.timeout,
                                          socket_connect_timeout=self.timeout)
            try:
                client.ping()
            finally:
                client.close()

        return [Finding("redis", "redis", *self._probe("redis", ping))]

    def _event_store(self) -> list[Finding]:
        import os

        events = self.services.events
        if events is None:
            return []
        settings = events.settings
        if settings.store == "postgresql":
            def select() -> None:
                import psycopg

                dsn = os.environ.get(settings.dsn_env)
                if not dsn:
                    raise RuntimeError(f"{settings.dsn_env} is not set")
                with psycopg.connect(dsn, connect_timeout=max(1, round(self.timeout))) as conn:
                    conn.execute("SELECT 1")

            return [Finding("postgresql:events", "postgresql", *self._probe("events", select))]

        def sqlite() -> None:
            with sqlite3.connect(f"file:{settings.path}?mode=ro", uri=True,
                                 timeout=self.timeout) as conn:
                conn.execute("SELECT 1")

        return [Finding("sqlite:events", "sqlite", *self._probe("events", sqlite))]

    def _history(self) -> list[Finding]:
        history = self.services.store.history_store
        if history is None:
            return []
        status = history.status()
        if history.healthy:
            backlog = int(status.get("backlog_rows") or 0)
            why = f"{backlog} rows waiting to be written" if backlog else None
            return [Finding("postgresql:history", "postgresql", "ok", why)]
        return [Finding("postgresql:history", "postgresql", "down",
                        status.get("last_error") or str(status.get("status")),
                        _parse(status.get("last_error_at")))]

    def _brokers(self) -> list[Finding]:
        found: dict[tuple[str, int], list[str]] = {}
        for source in self.services.config.sources:
            if source.adapter != "mqtt":
                continue
            options = source.options
            host = str(options.get("host", "localhost"))
            port = int(options.get("port", 8883 if options.get("tls") else 1883))
            found.setdefault((host, port), []).append(source.name)
        findings = []
        for (host, port), _sources in found.items():
            def connect(host: str = host, port: int = port) -> None:
                socket.create_connection((host, port), timeout=self.timeout).close()

            name = f"mqtt:{host}:{port}"
            findings.append(Finding(name, "mqtt", *self._probe(name, connect)))
        return findings

    def _sources(self) -> list[Finding]:
        findings = []
        now = datetime.now(UTC)
        for health in self.services.store.health.values():
            name = f"source:{health.name}"
            if health.last_read is None:
                findings.append(Finding(name, "source", "stale", "not read yet"))
            elif health.last_error is not None and \
                    (health.last_error_at or health.last_read) >= health.last_read:
                findings.append(Finding(name, "source", "down", health.last_error,
                                        health.last_error_at))
            elif (slow := health.slow(now)) is not None:
                findings.append(Finding(name, "source", "stale", slow, health.reading_since))
            elif health.is_stale(now):
                last = health.last_data or health.last_read
                findings.append(Finding(name, "source", "stale",
                                        f"no data since {iso(last, 'seconds')} "
                                        f"(stale after {health.stale_after:g} s)"))
            elif health.warnings:
                findings.append(Finding(name, "source", "degraded", "; ".join(health.warnings)[:300]))
            else:
                findings.append(Finding(name, "source", "ok"))
        return findings

    def _tasks(self) -> list[Finding]:
        services = self.services
        findings = []
        if services.events is not None:
            findings.append(self._task("event-intake", services.intake))
        if services.signs is not None:
            findings.append(self._task("alert-evaluation", services.alerting))
        return findings

    def _task(self, name: str, heartbeat: Heartbeat) -> Finding:
        services = self.services
        if heartbeat.failing:
            return Finding(name, "task", "down", heartbeat.last_error, heartbeat.last_error_at)
        if not services.ingest.running:
            shared = services.replication
            if shared is not None and shared.role != "leader":
                return Finding(name, "task", "ok", None)  # the ingest leader runs it
            if heartbeat.last_ok is None:
                return Finding(name, "task", "ok", None)  # ran once at start, nothing runs it again
        limit = max(60.0, 10 * services.config.live.ingest_interval)
        if heartbeat.last_ok is not None and \
                (datetime.now(UTC) - heartbeat.last_ok).total_seconds() > limit:
            return Finding(name, "task", "stale",
                           f"last ran {iso(heartbeat.last_ok, 'seconds')} (expected every round)")
        return Finding(name, "task", "ok", None)


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["DependencyWatch", "Finding", "PROBE_EVERY", "PROBE_TIMEOUT", "State"]
