"""The five city-element layers — 人、企、地、物、政 — in display order."""

from __future__ import annotations

from layers import enterprises, government, land, people, things
from layers.base import Field, Layer, Metric, Role

LAYERS: dict[str, Layer] = {
    module.LAYER.id: module.LAYER for module in (people, enterprises, land, things, government)
}

__all__ = ["LAYERS", "Field", "Layer", "Metric", "Role"]
