"""Privacy by role: what a public audience (anonymous, exhibition) may see of the data.

Two audiences: ``"detail"`` (a signed-in viewer or operator) sees everything;
``"public"`` (nobody signed in, or the exhibition role) sees **aggregates only**:
no free text, names or addresses, coordinates only as H3 cells, and for
**person-level sources** (declared in ``[privacy]``) no count below ``k``: such
counts, and the complementary ones that would give them away, are shown as
``"< k"`` (:mod:`render.disclosure`). Which audience a request has is decided by the
callbacks and the API from the signed-in user (``services.audience()``); the
functions here take it as a plain value.

The city file::

    [privacy]
    k = 10                          # counts below k are not shown (default 10, UK ONS)
    person_sources = ["requests"]   # sources whose rows are people (311 requests, trips, …)
    anonymous = "public"            # or "viewer": only for a city without [[users]]

Events (the event pipeline) are always person-level.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from config.kit import ConfigError, check_keys, choice, number
from config.sections import Section, SectionContext
from layers import LAYERS, population_metric
from layers.base import Metric
from render.disclosure import DEFAULT_K, Suppression, suppress

if TYPE_CHECKING:
    from store.city import CityData

Audience = Literal["public", "detail"]
AUDIENCES: tuple[Audience, ...] = ("public", "detail")
AnonymousAccess = Literal["public", "viewer"]
_KEYS = frozenset({"k", "person_sources", "anonymous"})


@dataclass(frozen=True)
class PrivacySettings:
    """The ``[privacy]`` table: the threshold, the person-level sources, anonymous access."""

    k: int = DEFAULT_K
    person_sources: tuple[str, ...] = ()
    #: ``"public"``: someone not signed in sees aggregates only (the default, also for a
    #: city without users); ``"viewer"``: sees what a viewer does (closed networks only).
    anonymous: AnonymousAccess = "public"


def parse_privacy(table: Mapping[str, Any], context: SectionContext) -> PrivacySettings:
    """Validate ``[privacy]``; source names are checked against the city's sources."""
    where = "[privacy]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    check_keys(where, table, _KEYS)
    k = number(f"{where}.k", table.get("k", DEFAULT_K), 2, 1000)
    if k != int(k):
        raise ConfigError(f"{where}.k: expected a whole number, got {k!r}")
    raw = table.get("person_sources", [])
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ConfigError(f"{where}.person_sources: expected a list of source names")
    names = [s.name for s in context.sources]
    for name in raw:
        choice(f"{where}.person_sources", name, names, "source")
    anonymous = choice(f"{where}.anonymous", table.get("anonymous", "public"),
                       ("public", "viewer"), "anonymous access")
    return PrivacySettings(k=int(k), person_sources=tuple(raw),
                           anonymous=anonymous)  # type: ignore[arg-type]


#: ``[privacy]`` as the city file's section (its default: k = 10, nothing person-level).
PRIVACY_SECTION = Section[PrivacySettings](
    "privacy", ("privacy",), lambda tables, context: parse_privacy(tables["privacy"], context),
    default=PrivacySettings(), keys={"privacy": _KEYS})


def suppress_items(counts: Mapping[str, int], k: int) -> set[str]:
    """Which items of one breakdown (a place's counts by category) to hide.

    The rule of :func:`render.disclosure.suppress` for a single group whose total is
    shown: items with ``0 < n < k``, and when that is exactly one item, the smallest
    other nonzero item too (else it would be ``total − Σ shown``).
    """
    hidden = {name for name, n in counts.items() if 0 < n < k}
    if len(hidden) == 1:
        visible = sorted((n, name) for name, n in counts.items() if n > 0 and name not in hidden)
        if visible:
            hidden.add(visible[0][1])
    return hidden


class Disclosure:
    """The city's suppression decisions, computed once per data version and metric."""

    def __init__(self, data: CityData, settings: PrivacySettings | None = None) -> None:
        self.data = data
        self.settings = settings or data.config.section(PRIVACY_SECTION)
        self._lock = threading.Lock()
        self._memo: dict[tuple[Any, ...], Suppression] = {}

    @property
    def k(self) -> int:
        return self.settings.k

    def shown(self) -> str:
        return f"< {self.k}"

    def person_level(self, layer: str, role: str, source: str | None = None) -> bool:
        """True when any source behind (layer, role[, source]) is person-level."""
        return any(s.name in self.settings.person_sources for s in self.data.config.sources
                   if s.layer == layer and s.role == role and (source is None or s.name == source))

    def suppression(self, layer: str, metric: Metric) -> Suppression | None:
        """The cells hidden for ``metric`` (None when its rows are not person-level)."""
        if not self.person_level(layer, metric.role, metric.source):
            return None
        key = (layer, metric.role, metric.source, metric.where, self.data.version)
        with self._lock:
            found = self._memo.get(key)
        if found is not None:
            return found
        base_res = self.data.config.map.base_res
        counter = Metric(name=f"{metric.name}:people", title_zh="", title_en="", role=metric.role,
                         agg="count", where=metric.where, source=metric.source)
        # The counts as published at each resolution (each point in its exact cell there).
        levels = {res: self.data.cells(layer, counter, res).astype(np.int64)
                  for res in range(0, base_res + 1)}
        groups = {f"{b.spec.level}:{name}": cells["cell"].to_numpy()
                  for b in self.data.boundaries for name, cells in b.cells.groupby("name")}
        found = suppress(levels[base_res], self.k, base_res, groups, levels=levels)
        with self._lock:
            self._memo = {k: v for k, v in self._memo.items() if k[-1] == self.data.version}
            self._memo[key] = found
        return found

    def cells(self, layer: str, metric: Metric, values: pd.Series) -> tuple[pd.Series, pd.Index]:
        """``values`` (one metric per cell) without the hidden cells, and the hidden cells."""
        found = self.suppression(layer, metric)
        if found is None or values.empty:
            return values, pd.Index([], dtype=np.int64)
        mask = found.mask(values.index)
        return values.loc[~mask], values.index[mask]

    def profile(self, profile: dict[str, Any], cell: int | None = None,
                group: str | None = None) -> dict[str, Any]:
        """A place profile as the public may see it (a new dict; ``profile`` is not changed).

        Person-level metrics of a hidden place become ``None`` with ``"suppressed":
        "< k"``; breakdown items of person-level roles are suppressed by
        :func:`suppress_items`. Names of people never appear in profiles (breakdowns
        are categories, units and service points are public places).
        """
        out = dict(profile)
        layers_out = {}
        for layer_id, section in profile["layers"].items():
            layer = LAYERS[layer_id]
            section = dict(section)
            metrics = []
            for item in section["metrics"]:
                metric = layer.metric(item["name"], self.data.config.sources)
                found = self.suppression(layer_id, metric)
                hide = found is not None and (
                    (cell is not None and found.hidden(cell))
                    or (group is not None and found.group_hidden(group))
                    or (cell is None and group is None))
                metrics.append({**item, "value": None, "suppressed": self.shown()} if hide
                               else item)
            section["metrics"] = metrics
            breakdowns = []
            for block in section["breakdowns"]:
                role = block.get("role")
                if role is not None and self.person_level(layer_id, role):
                    counts = {item["value"]: int(item["count"]) for item in block["items"]}
                    hidden = suppress_items(counts, self.k)
                    block = {**block, "items": [
                        {**item, "count": None, "suppressed": self.shown()}
                        if item["value"] in hidden else item for item in block["items"]]}
                breakdowns.append(block)
            section["breakdowns"] = breakdowns
            layers_out[layer_id] = section
        out["layers"] = layers_out
        population = population_metric()
        if population is not None and out.get("population_density") is not None and any(
                m.get("suppressed") for m in layers_out[population[0].id]["metrics"]
                if m["name"] == population[1]):
            out["population_density"] = None  # residents hidden: so is residents / area
        return out


__all__ = ["AUDIENCES", "Audience", "Disclosure", "PRIVACY_SECTION", "PrivacySettings",
           "parse_privacy", "suppress_items"]
