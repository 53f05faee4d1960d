"""What the features above config contribute to reading a city file.

Config sits at the bottom of the tree, so it cannot know the layers, the adapters
or the operations features; they tell it instead (geopandas' ``_config.py``
``Option`` is the model: each option carries its own validator):

- a :class:`Section` is a top-level table (or several) that one feature owns and
  parses: ``[events]`` and ``[[users]]`` (:mod:`ops.events.settings`),
  ``[[indicators]]`` and ``[[rules]]`` (:mod:`ops.signs.settings`);
- :class:`LayerSpec` / :class:`AdapterSpec` are what a ``[[sources]]`` entry and a
  ``[[tour]]`` step are checked against; :data:`layers.LAYERS` and
  :func:`data.get_adapter_class` provide them as they are.

:class:`ConfigSchema` bundles them; the one place that lists them is
``app.config_schema()`` (used by ``app.load_config``), at the top of the tree.

A feature declares its section beside its parser and reads it back, typed::

    EVENTS_SECTION = Section[EventsSettings | None](
        "events", ("events",),
        lambda tables, context: parse_events_settings(tables["events"], context.base_dir),
        default=None)
    settings = config.section(EVENTS_SECTION)      # EventsSettings | None
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from config.city import Source

T = TypeVar("T")


@dataclass(frozen=True)
class SectionContext:
    """What a section parser may need besides its own tables."""

    #: The config file's folder: relative paths resolve against it.
    base_dir: Path
    #: The city's validated sources (sections that refer to them check against these).
    sources: tuple[Source, ...] = ()
    #: The city's IANA timezone (``[city] timezone``): local times in a section are read in it.
    timezone: str = "UTC"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it is a registry key
class Section(Generic[T]):
    """Top-level tables of the city file owned and parsed by one feature.

    ``parse`` receives the section's tables that the file gives (at least one) and
    returns the value the feature reads back with :meth:`CityConfig.section`;
    ``default`` is that value when the file gives none of them.
    """

    name: str
    tables: tuple[str, ...]
    parse: Callable[[Mapping[str, Any], SectionContext], T]
    default: T
    #: The keys each table may have, by table name (for the documentation check).
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def read(self, raw: Mapping[str, Any], context: SectionContext) -> T:
        """The section's value in a whole parsed document."""
        given = {name: raw[name] for name in self.tables if name in raw}
        return self.parse(given, context) if given else self.default


class RoleSpec(Protocol):
    """A layer role as sources are checked against it (:class:`layers.base.Role`)."""

    @property
    def geometry(self) -> str:
        """``point`` or ``area``."""
        ...

    def field_names(self) -> tuple[str, ...]:
        """The normalised fields a source of this role may map its columns to."""
        ...


class LayerSpec(Protocol):
    """A layer as sources and tour steps are checked against it (:class:`layers.base.Layer`)."""

    @property
    def roles(self) -> Mapping[str, RoleSpec]: ...

    @property
    def default_role(self) -> str: ...

    def metric(self, name: str | None, sources: Sequence[Source] = ()) -> object:
        """The metric called ``name``; an unknown name raises KeyError."""
        ...


class AdapterSpec(Protocol):
    """An adapter as sources are checked against it (:class:`data.hooks.Adapter`)."""

    @property
    def options(self) -> frozenset[str]: ...

    @property
    def required_options(self) -> frozenset[str]: ...

    def check_options(self, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Refuse a source's options with a ConfigError naming the key."""
        ...

    def check_source(self, where: str, source: Source) -> None:
        """Refuse a built source (a missing file, an absent column) with a ConfigError."""
        ...


@dataclass(frozen=True)
class ConfigSchema:
    """Everything config checks a city file against that it does not own itself."""

    #: The layers by id, in the order they are listed.
    layers: Mapping[str, LayerSpec]
    #: Every adapter name a source may choose, and the adapter by name.
    adapter_names: Callable[[], Sequence[str]]
    adapter: Callable[[str], AdapterSpec]
    #: The feature-owned top-level tables, parsed in this order after the core ones.
    sections: tuple[Section[Any], ...] = ()

    def tables(self) -> tuple[str, ...]:
        """The top-level tables the sections own."""
        return tuple(name for section in self.sections for name in section.tables)


__all__ = ["AdapterSpec", "ConfigSchema", "LayerSpec", "RoleSpec", "Section", "SectionContext"]
