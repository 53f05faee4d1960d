"""What a layer is: roles its sources can play, the metrics it aggregates on H3, its look.

A layer is declarative. Each of the five city-element layers is one small module
that builds a :class:`Layer` from :class:`Role`, :class:`Field` and :class:`Metric`
records; the aggregation, profile and drawing code in ``core`` reads those records,
so the shared behaviour lives once and a layer differs only in what it declares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from config.city import Source

FieldKind = Literal["str", "float", "time"]
Geometry = Literal["point", "area"]
Aggregation = Literal["count", "sum", "mean", "median", "nunique", "sum_per_km2"]
Overlay = Literal["points", "outlines", "none"]

#: Mapping keys every point source has: the normalised core of a row. ``label`` is
#: the column holding a row's display name (normalised as ``name``).
POINT_CORE_FIELDS = ("id", "time", "lat", "lon", "label")
#: Mapping keys every area source has; ``geometry`` is taken from the file when unmapped.
AREA_CORE_FIELDS = ("id", "label", "geometry", "value")


@dataclass(frozen=True)
class Field:
    """An attribute column a role carries, under its normalised name."""

    name: str
    kind: FieldKind = "str"
    title_zh: str = ""
    title_en: str = ""
    #: Shown as counts by value in the cell profile and the hover.
    breakdown: bool = False


@dataclass(frozen=True)
class Role:
    """A kind of source a layer takes, e.g. the government layer's ``requests``."""

    name: str
    geometry: Geometry
    title_zh: str
    title_en: str
    fields: tuple[Field, ...] = ()
    #: Adds columns computed from the normalised ones (e.g. ``is_open``) after loading.
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    def field_names(self) -> tuple[str, ...]:
        core = POINT_CORE_FIELDS if self.geometry == "point" else AREA_CORE_FIELDS
        return core + tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Metric:
    """A number per H3 cell: an aggregation over one role's rows.

    ``agg`` is applied to ``column`` over the rows of ``role`` (optionally only those
    whose ``where`` column holds one of the listed values) grouped by cell. ``count``
    needs no column; ``sum_per_km2`` divides a sum by the cell's area.
    """

    name: str
    title_zh: str
    title_en: str
    role: str
    agg: Aggregation = "count"
    column: str | None = None
    where: tuple[tuple[str, tuple[object, ...]], ...] = ()
    unit_zh: str = ""
    unit_en: str = ""
    #: Restrict to the rows of one source (per-source metrics).
    source: str | None = None
    decimals: int = 0


@dataclass(frozen=True)
class Layer:
    """One city element: people, enterprises, land, things or government."""

    id: str
    title_zh: str
    title_en: str
    symbol: str
    roles: Mapping[str, Role]
    default_role: str
    #: Metric names, first is the default (the layer's plain count).
    base_metrics: tuple[Metric, ...]
    colorscale: Sequence[str]
    #: What the layer adds when shown as an overlay, and from which role.
    overlay: Overlay = "none"
    overlay_role: str | None = None
    #: Per-source metrics made from the city's sources (e.g. one count per source).
    source_metrics: Callable[[Source], Sequence[Metric]] | None = None
    #: Roles whose rows are drawn as single points when zoomed in close.
    point_roles: tuple[str, ...] = ()

    def title(self, language: str) -> str:
        return self.title_zh if language.startswith("zh") else self.title_en

    def metrics(self, sources: Sequence[Source] = ()) -> tuple[Metric, ...]:
        """The layer's metrics for a city: the fixed ones, then one set per source."""
        per_source: list[Metric] = []
        if self.source_metrics is not None:
            for source in sources:
                if source.layer == self.id:
                    per_source.extend(self.source_metrics(source))
        return self.base_metrics + tuple(per_source)

    def metric(self, name: str | None, sources: Sequence[Source] = ()) -> Metric:
        """Look a metric up by name; ``None`` is the default. Unknown names raise KeyError."""
        metrics = self.metrics(sources)
        if name is None:
            return metrics[0]
        for metric in metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"unknown metric {name!r} for layer {self.id!r}; valid metrics are: "
                       + ", ".join(m.name for m in metrics))


def count_per_source(source: Source) -> tuple[Metric, ...]:
    """One ``count:<source>`` metric: how many of that source's rows fall in the cell."""
    return (
        Metric(
            name=f"count:{source.name}",
            title_zh=source.title_zh,
            title_en=source.title_en,
            role=source.role,
            source=source.name,
        ),
    )
