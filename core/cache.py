"""The shared cache: flask-caching, SimpleCache per process or Redis across workers.

``CACHE`` is created once here and bound to each app in :func:`init_cache`, the
pattern that lets several gunicorn workers share memoised results through Redis.
With ``[cache] type = "RedisCache"`` the workers also share their live state
(see :mod:`core.shared`), so a result memoised per data version by one worker is
right for every worker.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_caching import Cache

from core.config import CacheSettings, ConfigError

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
