"""The live history in PostgreSQL: every version a streaming source received, for replay.

In memory (:class:`store.live.LiveStore`) the history is bounded by ``[live] history``
and lost on restart. With ``[live] history_store = "postgresql"`` every version is
also appended to one table, kept for ``history_retention``, from which the time
slider rebuilds any past moment, also one this process never saw itself.

Storage
    One row per version: typed columns for what queries filter and sort on
    (``source``, ``id``, ``received``, ``time``, ``lat``, ``lon``, ``cell``) and a JSONB
    ``payload`` for the role's other columns. JSONB rather than an Arrow or Parquet
    blob because a row is small: a per-row Arrow message carries its own schema
    (hundreds of bytes), while a per-batch blob would defeat ``DISTINCT ON (id)``. JSONB
    omits missing values (most attribute columns of a stream are sparse), stays
    readable in SQL (``payload->>'status'``) and survives a change in a source's
    columns. Column dtypes are recorded once per source (table ``<table>_columns``), so
    a read rebuilds exactly the frame :meth:`LiveStore.state_at` would. Times are
    kept to the microsecond, PostgreSQL's precision (``received`` is taken on that grid
    by the pipeline, so both stores agree on what was received by a moment).

Writing
    :meth:`PostgresHistory.append` only queues the batch; a background thread
    encodes and writes queued batches (``COPY`` into a temporary table, then one
    ``INSERT … ON CONFLICT``). The primary key ``(source, id, received)`` makes a write
    idempotent: a batch retried after a lost acknowledgement, or written by every
    worker of a shared live state, is stored once. While PostgreSQL is unreachable the
    queue holds up to ``history_backlog`` rows and the writer retries with backoff;
    batches beyond that are dropped, counted and logged, and the hole is remembered so
    replays across it are answered from memory. ``/api/health`` shows all of it.

Reading
    :meth:`PostgresHistory.state_at` is ``DISTINCT ON (id) … ORDER BY id, received
    DESC`` over the versions received by the moment, for the ids with a version in the
    window (an index lookup rather than a scan of all history), then the window
    filter. :func:`state_at` decides per source: PostgreSQL whenever it holds every
    version that matters for the moment (nothing older still queued, no dropped hole,
    reachable), else the in-memory log. PostgreSQL is the complete record (memory is
    trimmed and starts empty after a restart), and where both hold the data they give
    identical frames.

The parts: :mod:`~store.history.rows` (frames to rows and back),
:mod:`~store.history.tables` (the SQL), :mod:`~store.history.postgres` (the queue,
the writer thread, completeness and health); here, the choice of store per replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import pandas as pd

from store.history.postgres import PostgresHistory
from store.history.rows import decode, encode
from store.history.tables import HistoryError

if TYPE_CHECKING:
    from config.city import LiveSettings
    from store.live import LiveStore

#: Which store answers a replay: ``auto`` (see module docs), or one of them explicitly.
ReplayStore = Literal["auto", "memory", "history"]


def open_history(live: LiveSettings, now: Callable[[], pd.Timestamp]) -> PostgresHistory | None:
    """The configured history store, or None when the history is kept in memory only."""
    if live.history_store != "postgresql":
        return None
    return PostgresHistory.from_settings(live, now)


def state_at(history: PostgresHistory | None, source: str, live: LiveStore,
             moment: pd.Timestamp, using: ReplayStore = "auto") -> pd.DataFrame:
    """One live source as it was at ``moment``, from PostgreSQL or from memory.

    ``auto`` asks PostgreSQL whenever it is complete for the moment
    (:meth:`PostgresHistory.complete_for`) and falls back to memory otherwise, or when
    the query fails (logged), so a replay never stops on a database outage.
    """
    if using == "memory" or history is None:
        if using == "history":
            raise ValueError("no PostgreSQL history is configured ([live] history_store)")
        return live.state_at(moment)
    if using == "history":
        return history.state_at(source, moment, live.window)
    if not history.complete_for(source, moment, live.window):
        return live.state_at(moment)
    try:
        return history.state_at(source, moment, live.window)
    except HistoryError as exc:
        history._warn("read", "history: replaying %s from memory: %s", source, exc)
        return live.state_at(moment)


__all__ = ["PostgresHistory", "HistoryError", "ReplayStore", "open_history", "state_at",
           "encode", "decode"]
