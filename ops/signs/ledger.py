"""Where an alert book keeps its alerts: one document per deployment, changed atomically.

An :class:`~ops.signs.alerts.AlertBook` with a ledger reads its alerts from the
ledger before every answer and changes them in one atomic read-modify-write
(:meth:`AlertLedger.update`), so every worker of a deployment sees the same
alerts and acknowledgements and a restart keeps them:

* :class:`RedisLedger` — one Redis key, changed in a ``WATCH``/``MULTI``
  transaction retried when another worker wrote in between;
* the event store's database (``EventStore.read_document`` /
  ``update_document``, see :mod:`ops.events.store`) — one row, changed in a
  transaction that locks it (PostgreSQL ``SELECT … FOR UPDATE``, SQLite
  ``BEGIN IMMEDIATE``);
* no ledger — the book keeps its alerts in the process's memory (one process
  without a database).

The document is JSON: ``{"prefix", "seq", "active": [...], "cleared": [...]}``
(see :meth:`~ops.signs.alerts.AlertBook.document`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: A change to the document: the stored one (None when there is none yet) → the new one.
Change = Callable[[dict[str, Any] | None], dict[str, Any]]


class AlertLedger(Protocol):
    """Shared, durable storage of one alert book's document."""

    #: Where it lives, for health and logs: "redis" or "postgresql"/"sqlite".
    kind: str

    def read(self) -> dict[str, Any] | None:
        """The stored document (None when nothing was stored yet)."""

    def update(self, change: Change) -> dict[str, Any]:
        """Apply ``change`` atomically (it may run more than once) and store its result."""


def dumps(document: dict[str, Any]) -> str:
    """The document as JSON text (NaN and infinities kept, as Python's json writes them)."""
    return json.dumps(document, separators=(",", ":"))


def loads(text: str | bytes | None) -> dict[str, Any] | None:
    """A stored document, or None for nothing stored."""
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


class RedisLedger:
    """The book's document in one Redis key (no expiry: alerts outlive the deployment's session)."""

    kind = "redis"

    def __init__(self, url: str, key: str, retries: int = 50) -> None:
        import redis

        self.key = key
        self.retries = retries
        self._client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)

    def read(self) -> dict[str, Any] | None:
        return loads(self._client.get(self.key))

    def update(self, change: Change) -> dict[str, Any]:
        import redis

        for _ in range(self.retries):
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(self.key)
                    document = change(loads(pipe.get(self.key)))
                    pipe.multi()
                    pipe.set(self.key, dumps(document))
                    pipe.execute()
                    return document
                except redis.WatchError:
                    continue  # another worker changed the book meanwhile: apply to its version
        raise RuntimeError(f"alert book {self.key}: {self.retries} concurrent writes in a row")


__all__ = ["AlertLedger", "Change", "RedisLedger", "dumps", "loads"]
