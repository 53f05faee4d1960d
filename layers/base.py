"""What a layer is: roles its sources can play, the metrics it aggregates on H3, its look.

A layer is declarative. Each of the five city-element layers is one small module
that builds a :class:`Layer` from :class:`Role`, :class:`Field` and :class:`Metric`
records; the aggregation, profile and drawing code in ``store`` and ``render`` reads
those records, so the shared behaviour lives once and a layer differs only in what
it declares. A layer that shows more than its metrics and breakdowns in a place's
profile (land's units, government's nearest service points) subclasses
:class:`Layer` and overrides :meth:`Layer.profile_extras`.

Nothing outside ``layers/`` names a layer: code that needs "the layer whose rows
are events" or "the layers drawn as outlines" asks the registry by property
(:attr:`Role.feeds_events`, :attr:`Layer.overlay`, :attr:`Layer.population_metric`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from config.i18n import pick
from layers.aggregations import Aggregation, get_aggregation

if TYPE_CHECKING:
    from config.city import CityConfig, Source

FieldKind = Literal["str", "float", "time"]
Geometry = Literal["point", "area"]
Overlay = Literal["points", "outlines", "none"]
#: Picks the rows of a place (one H3 cell, or an admin unit's cells) from a role's frame.
Selector = Callable[[pd.DataFrame], np.ndarray]
#: How many values a breakdown lists before the rest are summed as "…".
TOP_N = 8

#: Mapping keys every point source has: the normalised core of a row. ``label`` is
#: the column holding a row's display name (normalised as ``name``); ``cell`` places
#: rows by an H3 cell id instead of ``lat``/``lon`` (data aggregated elsewhere, see
#: data.cells); ``weight`` says how many records a row stands for (counts sum it).
POINT_CORE_FIELDS = ("id", "time", "lat", "lon", "label", "cell", "weight")
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
    #: Columns ``derive`` adds that the profile shows as counts by value (every value,
    #: in the order of their counts); not source fields, so no config maps them.
    derived_breakdowns: tuple[Field, ...] = ()
    #: Rows of this role are reports for the event pipeline (统一接报).
    feeds_events: bool = False

    def field_names(self) -> tuple[str, ...]:
        core = POINT_CORE_FIELDS if self.geometry == "point" else AREA_CORE_FIELDS
        return core + tuple(f.name for f in self.fields)

    @property
    def observations(self) -> bool:
        """True when rows observe an entity (an ``entity`` field): one row per (entity, time).

        Such rows are never collapsed by entity: without an ``id`` mapping a row's id
        is ``<entity>@<time>``, so every observation is kept, and a repeated one (same
        entity, same time) is a correction of it.
        """
        return self.field("entity") is not None

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Metric:
    """A number per H3 cell: an aggregation over one role's rows.

    ``agg`` names an aggregation of :data:`layers.aggregations.AGGREGATIONS`, applied
    to ``column`` over the rows of ``role`` (optionally only those whose ``where``
    column holds one of the listed values) grouped by cell. ``count`` needs no column;
    ``sum_per_km2`` divides a sum by the cell's area. An unknown name raises.
    """

    name: str
    title_zh: str
    title_en: str
    role: str
    agg: str = "count"
    column: str | None = None
    where: tuple[tuple[str, tuple[object, ...]], ...] = ()
    unit_zh: str = ""
    unit_en: str = ""
    #: Restrict to the rows of one source (per-source metrics).
    source: str | None = None
    decimals: int = 0

    def __post_init__(self) -> None:
        get_aggregation(self.agg)  # refuse an unknown name where the metric is declared

    @property
    def aggregation(self) -> Aggregation:
        """The aggregation ``agg`` names (looked up, so one registered later also works)."""
        return get_aggregation(self.agg)


class PlaceRows(Protocol):
    """What a layer reads to profile a place: the city's normalised rows and its sources.

    :class:`store.city.CityData` is one; declared here so that layers need not
    import the store (layers sit below it).
    """

    config: CityConfig

    def frame(self, layer: str, role: str, source: str | None = None) -> pd.DataFrame: ...


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
    #: Per-source metrics the layer adds for each of its sources, besides the
    #: ``count:<source>`` every point source gets (see :meth:`metrics`).
    source_metrics: Callable[[Source], Sequence[Metric]] | None = None
    #: Roles whose rows are drawn as single points when zoomed in close.
    point_roles: tuple[str, ...] = ()
    #: Marker colour of the layer's points (overlay and close zoom); unset, the
    #: bright end of its colour scale.
    point_colour: str | None = None
    #: The metric whose total over a place is its resident count (for the profile's
    #: population density); at most one layer in the registry sets it.
    population_metric: str | None = None

    def title(self, language: str) -> str:
        return pick(language, self.title_zh, self.title_en)

    @property
    def marker_colour(self) -> str:
        """The colour the layer's points are drawn in."""
        if self.point_colour is not None:
            return self.point_colour
        return self.colorscale[max(0, len(self.colorscale) - 2)]

    def breakdowns(self, data: PlaceRows, select: Selector) -> list[dict[str, Any]]:
        """Counts by value of each breakdown field of the layer's point roles in a place.

        Source fields list their ``TOP_N`` commonest values (empty as "—", the rest
        summed as "…"); a role's :attr:`Role.derived_breakdowns` list every value.
        """
        out: list[dict[str, Any]] = []
        for role in self.roles.values():
            if role.geometry != "point":
                continue
            rows = data.frame(self.id, role.name)
            rows = rows.loc[select(rows)] if len(rows) else rows
            for attr in role.fields:
                if not attr.breakdown or attr.name not in rows or rows[attr.name].dropna().empty:
                    continue
                counts = rows[attr.name].fillna("—").astype(str).value_counts()
                items = [{"value": str(k), "count": int(v)} for k, v in counts.head(TOP_N).items()]
                if len(counts) > TOP_N:
                    items.append({"value": "…", "count": int(counts.iloc[TOP_N:].sum())})
                out.append(_breakdown(role, attr, items))
            for attr in role.derived_breakdowns:
                if attr.name in rows:
                    counts = rows[attr.name].value_counts()
                    out.append(_breakdown(role, attr, [{"value": str(k), "count": int(v)}
                                                       for k, v in counts.items()]))
        return out

    def profile_extras(self, data: PlaceRows, select: Selector, lat: float, lon: float
                       ) -> dict[str, Any]:
        """Sections the layer adds to a place's profile beside metrics and breakdowns.

        The base layer adds none; keys are merged into the layer's profile section.
        """
        return {}

    def metrics(self, sources: Sequence[Source] = ()) -> tuple[Metric, ...]:
        """The layer's metrics for a city: the fixed ones, then one set per source.

        Every source of a point role gets ``count:<source>`` (its rows per cell), on
        every layer; :attr:`source_metrics` adds the layer's own per-source metrics.
        """
        per_source: list[Metric] = []
        for source in sources:
            if source.layer != self.id:
                continue
            role = self.roles.get(source.role)
            if role is not None and role.geometry == "point":
                per_source.extend(count_per_source(source))
            if self.source_metrics is not None:
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


def _breakdown(role: Role, attr: Field, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": role.name, "role_zh": role.title_zh, "role_en": role.title_en,
            "field": attr.name, "field_zh": attr.title_zh, "field_en": attr.title_en,
            "items": items}


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
