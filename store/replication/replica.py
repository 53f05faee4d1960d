"""The city data every worker holds alike: a CityData whose changes go through the shared log.

:class:`ReplicatedCityData` publishes each change of the leader's ingest as a log
entry before applying exactly what it published, applies a follower's entries at
the leader's city time (:class:`SharedClock` pins it), and writes and reads the
checkpoints a late worker starts from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from config.city import CityConfig, Source
from config.clock import CityClock, iso
from data import Batch, get_adapter_class
from store.city import CityData
from store.health import SourceHealth
from store.replication.codec import decode_frame, encode_frame, from_json, to_json
from store.replication.log import Entry, NotLeader, Op, OutOfSync

log = logging.getLogger(__name__)

Mode = Literal["local", "leader", "follower"]

_CHECKPOINT_MAGIC = b"CBCK1"


@dataclass
class SharedClock(CityClock):
    """The city clock every process agrees on (origin and speed come from Redis).

    While a replicated change is applied, the applying thread's clock is *pinned*
    to the city time the leader applied it at, so live windows age identically in
    every process; other threads keep reading the running clock.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._pins = threading.local()

    def now(self) -> pd.Timestamp:
        moment = getattr(self._pins, "moment", None)
        return moment if moment is not None else super().now()

    @contextlib.contextmanager
    def pinned(self, moment: pd.Timestamp) -> Iterator[pd.Timestamp]:
        """Within the block, ``now()`` in this thread returns ``moment``."""
        previous = getattr(self._pins, "moment", None)
        self._pins.moment = moment
        try:
            yield moment
        finally:
            self._pins.moment = previous


class ReplicatedCityData(CityData):
    """A :class:`CityData` whose changes go through a log shared by every worker.

    ``mode`` says what happens to a change coming from this process's own ingest:

    ``local``
        applied as by a plain CityData (while loading, and in tests);
    ``leader``
        published through ``journal`` first, then applied exactly as published;
    ``follower``
        dropped: a follower's data changes only through :meth:`apply_entry`.
    """

    #: Also a class default: loading (in CityData.__init__) runs before __init__ sets it.
    mode: Mode = "local"

    def __init__(self, config: CityConfig, clock: SharedClock | None = None) -> None:
        super().__init__(config)
        self.clock: SharedClock = clock or SharedClock(
            speed=config.live.speed, origin=config.live.start,
            anchored=config.live.start is not None)
        self.context = dc_replace(self.context, clock=self.clock)
        self.mode = "local"
        self.journal: Callable[[Entry], None] | None = None
        #: Number of log entries applied; the next entry must carry seq + 1.
        self.seq = 0
        #: What identifies this data's versions across processes (the session id).
        self.lineage = uuid.uuid4().hex
        #: Snapshot sources changed by the log since loading (their frames go into checkpoints).
        self._changed: set[str] = set()
        self._unshared_cursors: set[str] = set()

    @property
    def writes_history(self) -> bool:
        """Only the ingest leader writes the history; followers replay its log."""
        return self.mode != "follower"

    @classmethod
    def open(cls, config: CityConfig, clock: SharedClock | None = None) -> ReplicatedCityData:
        """Read what every process reads for itself: boundaries and snapshot sources.

        Streaming sources get their (empty) live windows but are not read: only the
        leader reads them, and their rows reach everyone through the log.
        """
        data = cls(config, clock)
        data.boundaries = tuple(data._load_boundary(b) for b in config.boundaries)
        for source in config.sources:
            if get_adapter_class(source.adapter).streaming:
                data.open_window(source)
            else:
                data.refresh_source(source)
        data.mode = "follower"
        return data

    def adapter(self, source: Source) -> Any:
        if source.name in self._live and source.name not in self._adapters:
            # The window outlives adapters: a new leader opens its adapter on the
            # window it replicated, where CityData.adapter() would start a new one.
            self._adapters[source.name] = get_adapter_class(source.adapter)(source, self.context)
        return super().adapter(source)

    def forget_adapters(self) -> None:
        """Drop (already closed) adapters; a later leadership opens fresh ones."""
        self._adapters.clear()

    def forget_local_cursors(self) -> None:
        """Before leading: drop cursors that only the previous leader's adapters understood."""
        for source in self.config.sources:
            # The adapter's own hook says whether its cursors survive a change of reader.
            if get_adapter_class(source.adapter).process_local_cursor:
                self._cursors.pop(source.name, None)

    # ------------------------------------------------------ changes (leader side)
    def apply_batch(self, source: Source, batch: Batch, now: datetime | None = None) -> None:
        if self.mode == "local":
            return super().apply_batch(source, batch, now)
        if self.mode == "follower":
            return None
        try:
            payload = encode_frame(batch.frame)
        except Exception as exc:  # e.g. a column Arrow cannot hold: say so in health
            self._record_error(self.health[source.name], f"cannot share this batch: "
                               f"{type(exc).__name__}: {exc}", now or datetime.now(UTC))
            return None
        entry = self._entry("batch", now, source=source.name, frame=payload, replace=batch.replace,
                            rejected=dict(batch.rejected), cursor=self._shareable(source, batch.cursor),
                            warnings=tuple(batch.warnings))
        if self._publish(entry):
            # Apply what was published (the decoded frame), not the original: then the
            # leader and its followers hold the very same rows.
            self._apply(entry, dc_replace(batch, frame=decode_frame(payload)))
        return None

    def _record_error(self, health: SourceHealth, message: str, now: datetime) -> None:
        if self.mode == "local":
            return super()._record_error(health, message, now)
        if self.mode == "follower":
            return None
        entry = self._entry("error", now, source=health.name, error=message)
        if self._publish(entry):
            self.seq = entry.seq
            super()._record_error(health, message, now)
        return None

    def expire(self) -> bool:
        if self.mode == "local":
            return super().expire()
        if self.mode == "follower":
            return False
        before = self.version
        entry = self._entry("expire", None)
        if self._publish(entry):
            self._apply(entry)
        return self.version != before

    def _shareable(self, source: Source, cursor: Any) -> Any:
        try:
            to_json(cursor)
            return cursor
        except TypeError as exc:
            # Followers get no cursor: should one lead, it reads this source afresh.
            if source.name not in self._unshared_cursors:
                self._unshared_cursors.add(source.name)
                log.warning("source %s: its cursor is not shared (%s)", source.name, exc)
            return None

    def _entry(self, op: Op, now: datetime | None, **fields: Any) -> Entry:
        return Entry(op=op, seq=self.seq + 1, version=self.version, moment=self.clock.now(),
                     now=now or datetime.now(UTC), pid=os.getpid(), **fields)

    def _publish(self, entry: Entry) -> bool:
        try:
            if self.journal is None:
                raise NotLeader("no journal")
            self.journal(entry)
            return True
        except Exception as exc:
            # Not in the log, so not applied: this process stops changing its data and
            # follows the log again (the coordinator stops the ingest engine).
            log.warning("lost the right to publish (%s: %s); following the shared log",
                        type(exc).__name__, exc)
            self.mode = "follower"
            return False

    # ---------------------------------------------- changes (from the log)
    def apply_entry(self, entry: Entry) -> bool:
        """Apply one entry of the log; False when it was applied already.

        Raises :class:`OutOfSync` when entries are missing or versions disagree.
        """
        if entry.seq <= self.seq:
            return False
        if entry.seq != self.seq + 1 or entry.version != self.version:
            raise OutOfSync(f"entry {entry.seq} (version {entry.version}) does not follow "
                            f"entry {self.seq} (version {self.version})")
        if entry.op == "error":
            health = self.health[entry.source]
            # As CityData._record_error, without logging the leader's warning again.
            health.last_error = entry.error
            health.last_error_at = entry.now
            self.seq = entry.seq
            return True
        self._apply(entry, entry.batch() if entry.op == "batch" else None)
        return True

    def _apply(self, entry: Entry, batch: Batch | None = None) -> None:
        self.seq = entry.seq
        with self.clock.pinned(entry.moment):
            if entry.op == "expire":
                CityData.expire(self)
                return
            assert batch is not None
            source = next(s for s in self.config.sources if s.name == entry.source)
            CityData.apply_batch(self, source, batch, entry.now)
            if not self.is_live(source.name) and (len(batch.frame) or batch.replace):
                self._changed.add(source.name)

    # ------------------------------------------------------------ checkpoints
    def export_state(self, stream_id: str) -> bytes:
        """Everything a new process needs to continue from the log at ``stream_id``."""
        blobs: dict[str, bytes] = {}
        with self._lock:
            live = {}
            for name, store in self._live.items():
                with store._lock:
                    blobs[f"current/{name}"] = encode_frame(store.current)
                    blobs[f"log/{name}"] = encode_frame(store.log)
                    live[name] = {"seq": store._seq, "dropped": store.dropped_by_size}
            for name in sorted(self._changed):
                blobs[f"frame/{name}"] = encode_frame(self._frames[name])
                if name in self._areas:
                    blobs[f"areas/{name}"] = encode_frame(self._areas[name])
            cursors = {}
            for name, cursor in self._cursors.items():
                try:
                    cursors[name] = to_json(cursor)
                except TypeError:
                    continue  # that source starts afresh under the next leader
            meta = {
                "stream_id": stream_id, "seq": self.seq, "version": self.version,
                "source_versions": dict(self._source_versions), "cursors": cursors,
                "health": {name: _health_state(h) for name, h in self.health.items()},
                "live": live, "changed": sorted(self._changed),
                "blobs": [[key, len(blob)] for key, blob in blobs.items()],
            }
        header = json.dumps(meta).encode()
        return b"".join([_CHECKPOINT_MAGIC, struct.pack(">I", len(header)), header, *blobs.values()])

    def import_state(self, checkpoint: bytes) -> str:
        """Replace the replicated state with a checkpoint's; returns its stream id."""
        if not checkpoint.startswith(_CHECKPOINT_MAGIC):
            raise ValueError("not a citybrain checkpoint")
        offset = len(_CHECKPOINT_MAGIC)
        (size,) = struct.unpack_from(">I", checkpoint, offset)
        offset += 4
        meta = json.loads(checkpoint[offset:offset + size])
        offset += size
        blobs: dict[str, bytes] = {}
        for key, length in meta["blobs"]:
            blobs[key] = checkpoint[offset:offset + length]
            offset += length
        frames = {key: decode_frame(blob) for key, blob in blobs.items()}
        with self._lock:
            for name, info in meta["live"].items():
                store = self._live[name]
                with store._lock:
                    store.current = frames[f"current/{name}"]
                    store.log = frames[f"log/{name}"]
                    store._seq = int(info["seq"])
                    store.dropped_by_size = int(info["dropped"])
                self._totals[name].reset()  # re-tracked from the rows on first use
            for name in meta["changed"]:
                self._frames[name] = frames[f"frame/{name}"]
                if f"areas/{name}" in frames:
                    self._areas[name] = frames[f"areas/{name}"]
            self._changed = set(meta["changed"])
            for name, state in meta["health"].items():
                _restore_health(self.health[name], state)
            self._cursors.update({name: from_json(c) for name, c in meta["cursors"].items()})
            self._source_versions.update({k: int(v) for k, v in meta["source_versions"].items()})
            self.version = int(meta["version"])
            self.seq = int(meta["seq"])
            self._aggregates.clear()
            for key in [k for k in self._outlines if str(k[0]).startswith("land:")]:
                del self._outlines[key]
        return str(meta["stream_id"])


def _health_state(health: SourceHealth) -> dict[str, Any]:
    return {"rows_loaded": health.rows_loaded, "rejected": dict(health.rejected),
            "warnings": list(health.warnings), "last_read": iso(health.last_read),
            "last_data": iso(health.last_data), "last_error": health.last_error,
            "last_error_at": iso(health.last_error_at), "stale_after": health.stale_after}


def _restore_health(health: SourceHealth, state: Mapping[str, Any]) -> None:
    health.rows_loaded = int(state["rows_loaded"])
    health.rejected = Counter(state["rejected"])
    health.warnings = tuple(state["warnings"])
    health.last_read = _datetime(state["last_read"])
    health.last_data = _datetime(state["last_data"])
    health.last_error = state["last_error"]
    health.last_error_at = _datetime(state["last_error_at"])
    health.stale_after = state["stale_after"]



def _datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
