"""The shared cache: flask-caching, SimpleCache per process or Redis across workers.

``CACHE`` is created once here and bound to each app in :func:`init_cache`, the
pattern that lets several gunicorn workers share memoised results through Redis.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_caching import Cache

from core.config import CacheSettings, ConfigError

CACHE = Cache()


def cache_config(settings: CacheSettings) -> dict[str, object]:
    config: dict[str, object] = {"CACHE_TYPE": settings.type,
                                 "CACHE_DEFAULT_TIMEOUT": settings.default_timeout}
    if settings.type == "RedisCache":
        url = os.environ.get(settings.redis_url_env)
        if not url:
            raise ConfigError(f"[cache] type is RedisCache but the environment variable "
                              f"{settings.redis_url_env} (holding the Redis URL) is not set")
        config["CACHE_REDIS_URL"] = url
        config["CACHE_KEY_PREFIX"] = "citybrain:"
    return config


def init_cache(server: Flask, settings: CacheSettings) -> None:
    CACHE.init_app(server, config=cache_config(settings))
