"""Every hook a data adapter provides, declared once.

This module is the adapter contract, in the manner of datasette's ``hookspecs.py``:
each extension point is declared here with what it means. Nothing outside an
adapter's own module asks *whether* an adapter has a hook or *which* adapter it is
(no ``getattr`` probing, no adapter names in other packages): callers call the hook.
:class:`data.base.AdapterBase` gives every hook its default, so an adapter
overrides only what differs::

    class ScadaAdapter(AdapterBase):
        name = "scada"
        options = frozenset({"endpoint", "timeout"})
        required_options = frozenset({"endpoint"})
        streaming = True

        @classmethod
        def check_options(cls, where, options, fields):
            if options.get("timeout", 1) <= 0:
                raise ConfigError(f"{where}.timeout: expected a positive number")

        def snapshot(self) -> Batch: ...

Register it in the entry-point group ``citybrain.adapters`` (see :mod:`data`).

Who calls what:

=========================  ====================================================
hook                       called by
=========================  ====================================================
``options``                the config loader: the keys a source may set
``required_options``       the config loader: keys a source must set
``check_options``          the config loader, so option mistakes fail at start-up
``check_source``           the config loader, once the source is built (files, columns)
``default_fields``         the adapter base: a minimal source's field mapping
``streaming``              the store: a live window and polling of ``updates``
``process_local_cursor``   replication: a new leader restarts such sources
``snapshot``               the store, on the first read and on full refreshes
``updates``                the store and the ingest loop, with the last cursor
``close``                  the ingest engine and replication, when stopping
=========================  ====================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from config.city import Source
    from data.base import AdapterContext, Batch


@runtime_checkable
class Adapter(Protocol):
    """What every data adapter provides. Drivers are imported inside the adapter."""

    #: The name a city config chooses the adapter by (``adapter = "mqtt"``).
    name: ClassVar[str]

    #: Config keys this adapter reads, besides the common keys and the field mapping.
    #: Any other key in its ``[[sources]]`` table is refused with the valid ones listed.
    options: ClassVar[frozenset[str]]

    #: The subset of :attr:`options` a source must set.
    required_options: ClassVar[frozenset[str]]

    #: The field mapping (normalised name → the source's column or key) a source gets
    #: without writing it; keys the config sets win. For sources whose records have a
    #: standard shape (an API's own field names). Empty for most adapters.
    default_fields: ClassVar[Mapping[str, str]]

    #: True when rows arrive continuously: the store gives the source a bounded live
    #: window and the ingest engine polls :meth:`updates`; False for sources read
    #: whole (:meth:`snapshot`) and re-read when they change.
    streaming: ClassVar[bool]

    #: True when a cursor only means something to the adapter instance that handed it
    #: out (an MQTT cursor counts the messages one connection received). A process
    #: that takes over reading such a source (a new replication leader) starts it
    #: afresh instead of passing on the previous reader's cursor.
    process_local_cursor: ClassVar[bool]

    def __init__(self, source: Source, context: AdapterContext) -> None:
        """An adapter reading ``source`` for the city described by ``context``."""
        ...

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Validate a source's options when the config loads, not at the first read.

        ``where`` names the source for messages (``[[sources]] 'bus-positions'``),
        ``options`` holds the keys of :attr:`options` the source set, ``fields`` its
        field mapping. A mistake raises :class:`config.city.ConfigError`.
        """
        ...

    @classmethod
    def check_source(cls, where: str, source: Source) -> None:
        """Validate what needs the whole, resolved source, when the config loads.

        For what :meth:`check_options` cannot see: a file that must exist (its path
        resolved against the config's folder) and the columns the field mapping names.
        A mistake raises :class:`config.city.ConfigError` naming the key to fix.
        """
        ...

    def snapshot(self) -> Batch:
        """Everything the source holds now (within its configured window)."""
        ...

    def updates(self, since: Any) -> Batch:
        """Rows that arrived after cursor ``since``; ``replace=True`` for a full re-read."""
        ...

    def close(self) -> None:
        """Release connections and threads; the adapter is not read again."""
        ...


#: The hooks of :class:`Adapter`, in the order declared above.
HOOKS: tuple[str, ...] = (
    "name", "options", "required_options", "default_fields", "streaming",
    "process_local_cursor", "check_options", "check_source", "snapshot", "updates", "close",
)


def missing_hooks(cls: type) -> list[str]:
    """The hooks of :class:`Adapter` that ``cls`` does not provide (empty when it conforms).

    ``issubclass`` cannot check a protocol with data members, so the class is
    checked hook by hook; a class deriving from :class:`data.base.AdapterBase`
    provides them all.
    """
    return [hook for hook in HOOKS if not hasattr(cls, hook)]


__all__ = ["HOOKS", "Adapter", "missing_hooks"]
