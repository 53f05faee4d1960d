"""Data adapters, chosen by name from the city config.

Built-in adapters are listed in :data:`BUILTIN` as ``module:Class`` and imported
only when used, so a missing driver (psycopg, paho-mqtt) matters only to the
cities that use it. Third-party adapters register in the entry-point group
``citybrain.adapters``::

    [project.entry-points."citybrain.adapters"]
    my-scada = "my_package.adapter:ScadaAdapter"

Every adapter provides the hooks declared in :mod:`data.hooks` (deriving from
:class:`~data.base.AdapterBase` gives each its default); a registered class that
lacks one is refused by name when a config chooses it.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from config.city import ConfigError
from data.base import AdapterBase, AdapterContext, Batch, SourceError, normalise
from data.hooks import HOOKS, Adapter, missing_hooks

ENTRY_POINT_GROUP = "citybrain.adapters"

BUILTIN: dict[str, str] = {
    "csv": "data.files:CsvAdapter",
    "geojson": "data.files:GeoFileAdapter",
    "geopackage": "data.files:GeoFileAdapter",
    "shapefile": "data.files:GeoFileAdapter",
    "parquet": "data.files:ParquetAdapter",
    "file": "data.files:AnyFileAdapter",
    "postgis": "data.postgis:PostgisAdapter",
    "mqtt": "data.mqtt:MqttAdapter",
    "open311": "data.http.open311:Open311Adapter",
    "sensorthings": "data.http.sensorthings:SensorThingsAdapter",
    "ngsi-ld": "data.http.ngsild:NgsiLdAdapter",
    "replay": "data.replay:ReplayAdapter",
    "simulator": "data.simulator:SensorSimulator",
}


@cache
def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names() -> list[str]:
    """Every adapter name a config may use: built-in, then installed plug-ins."""
    return sorted(set(BUILTIN) | set(_entry_points()))


def get_adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered under ``name``; unknown names list the valid ones.

    A class missing any hook of :class:`~data.hooks.Adapter` is refused, naming the
    hooks it lacks, rather than failing later wherever the hook is first called.
    """
    target = BUILTIN.get(name) or _entry_points().get(name)
    if target is None:
        raise ConfigError(f"unknown adapter {name!r}; valid adapters are: "
                          + ", ".join(adapter_names()))
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    missing = missing_hooks(cls)
    if missing:
        raise ConfigError(f"adapter {name!r} ({target}) does not provide the hook(s) "
                          f"{', '.join(missing)}; derive it from data.base.AdapterBase "
                          "or see data.hooks")
    return cls  # type: ignore[no-any-return]


__all__ = [
    "Adapter", "AdapterBase", "AdapterContext", "Batch", "SourceError", "BUILTIN",
    "ENTRY_POINT_GROUP", "HOOKS", "adapter_names", "get_adapter_class", "missing_hooks",
    "normalise",
]

if TYPE_CHECKING:
    # mypy proves here that the base (so every adapter deriving from it) is an Adapter.
    _BASE_CONFORMS: type[Adapter] = AdapterBase
