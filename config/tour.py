"""The ``[[tour]]`` of a city file: the self-running exhibition tour (``?tour=1``).

Each step names a layer (and optionally a metric, a district and overlays) and what
to say about it; the layers it may name come from above, through the
:class:`~config.sections.LayerSpec` mapping of the app's schema. Example::

    [[tour]]
    layer = "people"
    metric = "residents"
    seconds = 20
    caption_zh = "人：常住人口"
    caption_en = "People: residents, apportioned to each hexagon"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.kit import ConfigError, check_keys, choice, parse_duration, require
from config.sections import LayerSpec


@dataclass(frozen=True)
class TourStep:
    """One stop of the exhibition tour: what to show, for how long, and what to say."""

    layer: str
    seconds: float
    caption_zh: str
    caption_en: str
    metric: str | None = None
    #: Drill to this unit of the top boundary level (None: the whole city).
    district: str | None = None
    overlays: tuple[str, ...] = ()


#: The keys a tour step may have.
TOUR_KEYS = frozenset({
    "layer", "metric", "district", "overlays", "seconds", "caption_zh", "caption_en",
})


def parse_tour(steps: Any, layers: Mapping[str, LayerSpec]) -> tuple[TourStep, ...]:
    """Validate ``[[tour]]``: each step's layer, metric and overlays against ``layers``."""
    if not isinstance(steps, list):
        raise ConfigError("[[tour]]: expected an array of tables")
    out = []
    for index, step in enumerate(steps):
        where = f"[[tour]] #{index + 1}"
        check_keys(where, step, TOUR_KEYS)
        layer = choice(f"{where}.layer", require(where, step, "layer"), layers, "layer")
        metric = step.get("metric")
        if metric is not None:
            try:
                layers[layer].metric(str(metric), ())
            except KeyError:
                if not str(metric).count(":"):  # per-source metrics are checked at run time
                    raise ConfigError(f"{where}.metric: unknown metric {metric!r} for layer "
                                      f"{layer!r}") from None
        overlays = tuple(str(o) for o in step.get("overlays", []))
        for overlay in overlays:
            choice(f"{where}.overlays", overlay, layers, "layer")
        caption_en = str(step.get("caption_en", ""))
        out.append(TourStep(
            layer=layer,
            metric=None if metric is None else str(metric),
            district=None if step.get("district") is None else str(step["district"]),
            overlays=overlays,
            seconds=parse_duration(f"{where}.seconds", step.get("seconds", 20)),
            caption_zh=str(step.get("caption_zh", caption_en)),
            caption_en=caption_en,
        ))
    return tuple(out)


__all__ = ["TOUR_KEYS", "TourStep", "parse_tour"]
