"""The five city-element layers — 人、企、地、物、政 — in display order.

:data:`LAYERS` is the registry: a new layer is one module here plus one entry in it.
The module declares everything about the layer — roles and their fields, metrics,
colour scale and point colour, overlay, which roles draw as points close up or feed
the event queue — and subclasses :class:`Layer` only to add profile sections::

    # layers/noise.py
    COMPLAINTS = Role("complaints", "point", "噪声投诉", "Noise complaints",
                      fields=(Field("category", breakdown=True),))
    LAYER = Layer(id="noise", title_zh="噪声", title_en="Noise", symbol="声",
                  roles={"complaints": COMPLAINTS}, default_role="complaints",
                  base_metrics=(Metric("complaints", "噪声投诉", "Noise complaints",
                                       role="complaints"),),
                  colorscale=("#101010", "#303030", "#505050", "#707070", "#909090", "#b0b0b0"),
                  overlay="points", overlay_role="complaints", point_roles=("complaints",))

Code elsewhere never names a layer; it iterates the registry or asks it by property
(:func:`event_sources`, :func:`outline_layers`, :func:`population_metric`), and
``tests/contract/test_layer_contract.py`` holds every layer to the same contract.
"""

from __future__ import annotations

from collections.abc import Iterable

from config.city import Source
from layers import enterprises, government, land, people, things
from layers.base import Field, Layer, Metric, PlaceRows, Role, Selector

LAYERS: dict[str, Layer] = {
    module.LAYER.id: module.LAYER for module in (people, enterprises, land, things, government)
}

#: The layer a page opens on, and the map's default: the first in display order.
DEFAULT_LAYER: str = next(iter(LAYERS))


def event_roles() -> list[tuple[Layer, Role]]:
    """Every (layer, role) whose rows are reports for the event pipeline by default."""
    return [(layer, role) for layer in LAYERS.values() for role in layer.roles.values()
            if role.feeds_events]


def feeds_events(source: Source) -> bool:
    """Whether a source's rows go to the event queue: its ``events`` key, else its role's flag."""
    if source.events is not None:
        return source.events
    return LAYERS[source.layer].roles[source.role].feeds_events


def event_sources(sources: Iterable[Source]) -> list[Source]:
    """The sources whose rows are reports for the event pipeline (see :func:`feeds_events`)."""
    return [source for source in sources if feeds_events(source)]


def events_layer() -> Layer | None:
    """The layer the event pipeline's reports come from (its symbol marks the events overlay)."""
    roles = event_roles()
    return roles[0][0] if roles else None


def outline_layers() -> list[Layer]:
    """Layers whose areas are drawn as outlines on the map (their sources are outline choices)."""
    return [layer for layer in LAYERS.values() if layer.overlay == "outlines"]


def population_metric() -> tuple[Layer, str] | None:
    """The layer and metric whose place total is the resident count, if a layer has one."""
    return next(((layer, layer.population_metric) for layer in LAYERS.values()
                 if layer.population_metric is not None), None)


__all__ = [
    "DEFAULT_LAYER", "LAYERS", "Field", "Layer", "Metric", "PlaceRows", "Role", "Selector",
    "event_roles", "event_sources", "events_layer", "feeds_events", "outline_layers",
    "population_metric",
]
