"""The shared cache: flask-caching, SimpleCache per process or Redis across workers.

``CACHE`` is created once here and bound to each app in :func:`init_cache`, the
pattern that lets several gunicorn workers share memoised results through Redis.
With ``[cache] type = "RedisCache"`` the workers also share their live state
(see :mod:`store.replication`), so a result memoised per data version by one worker is
right for every worker.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from flask import Flask
from flask_caching import Cache
from numpy.typing import NDArray

from config.city import CacheSettings, ConfigError

CACHE = Cache()


def redis_url(settings: CacheSettings) -> str:
    """The Redis URL, from the environment variable the config names (never the file)."""
    url = os.environ.get(settings.redis_url_env)
    if not url:
        raise ConfigError(f"Redis is configured but the environment variable "
                          f"{settings.redis_url_env} (holding the Redis URL) is not set")
    return url


def cache_config(settings: CacheSettings) -> dict[str, object]:
    """flask-caching settings for ``[cache]``: the backend, its timeout, its Redis keys."""
    config: dict[str, object] = {"CACHE_TYPE": settings.type,
                                 "CACHE_DEFAULT_TIMEOUT": settings.default_timeout}
    if settings.type == "RedisCache":
        config["CACHE_REDIS_URL"] = redis_url(settings)
        config["CACHE_KEY_PREFIX"] = f"{settings.key_prefix}cache:"
    return config


def init_cache(server: Flask, settings: CacheSettings) -> None:
    """Bind :data:`CACHE` to one app's server with the city's cache settings."""
    CACHE.init_app(server, config=cache_config(settings))


#: How long the values a page was last sent stay known: a few ticks; a page that
#: asks later gets its whole value list again, never a wrong delta.
DRAWN_TIMEOUT = 60


def remember_drawn(values: NDArray[np.float64]) -> str:
    """Keep the hexagon values a page was just sent; returns the key the page keeps.

    Keys are the values' own digest, so every page showing the same values shares
    one entry (in Redis, across workers): the next tick diffs against it and sends
    only the cells that changed (:func:`render.figures.value_patch`).
    """
    key = drawn_key(values)
    CACHE.set(key, values.tobytes(), timeout=DRAWN_TIMEOUT)
    return key


def drawn_key(values: NDArray[np.float64]) -> str:
    """The key of values in the cache: their digest (float64 bytes, NaN for no value)."""
    return "drawn:" + hashlib.blake2b(values.tobytes(), digest_size=12).hexdigest()


def drawn_values(key: str | None) -> NDArray[np.float64] | None:
    """The values remembered under ``key``, or None when unknown or expired."""
    if not key:
        return None
    raw = CACHE.get(key)
    if not isinstance(raw, bytes):
        return None
    return np.frombuffer(raw, dtype=np.float64)
