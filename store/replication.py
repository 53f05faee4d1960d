"""Several gunicorn workers, one city: the live state shared through Redis.

Under ``gunicorn -w N app:server`` every worker is a process with its own
:class:`~store.city.CityData`. Left alone, each would read every streaming
source (and an MQTT client id used twice knocks the other connection off the
broker), run its own city clock and serve its own figures. With
``[cache] type = "RedisCache"`` (or ``[live] shared = "redis"``) they share one
live state instead:

* **one process ingests** — the leader, elected with a Redis lock
  (``SET lock token NX PX ttl``) that it renews every second. When it dies the
  lock runs out and a follower takes over within a few seconds.
* **a replicated log** — every change the leader makes to its data (a batch
  applied, a read that failed, the live windows aged) is appended to a Redis
  stream per city *before* it is applied: the source name, replace flag,
  rejected counts, warnings, cursor, wall and city time, and the normalised
  frame as compressed Arrow IPC. The leader then applies exactly what it
  published; followers read the stream (``XREAD`` blocking from their last id)
  and apply the same entries in the same order at the same city time. Every
  worker therefore holds the same rows and health under the same data version,
  and a figure memoised per version in the Redis cache is right for all of them.
* **checkpoints** — every ``checkpoint_every`` seconds the leader writes its whole
  state (live windows, changed snapshot sources, health, cursors, versions) to one
  Redis key; a worker that starts late loads it and replays the stream from there.
  The stream keeps a few checkpoint intervals of entries (``XADD … MINID ~``).
* **one clock** — the first process stores the clock's origin and speed in Redis
  (``SET NX``); every process reads them back, so all agree on city time.

Appending is fenced: a Lua script appends only while the lock still holds the
leader's token, so a leader that stalled past its lock and was replaced cannot
write one entry more; it stops ingesting and follows. Because an entry is
applied only once it is in the stream, a deposed leader's data never differs
from the log.

Keys live under ``<[cache] key_prefix>live:<config fingerprint>:`` and expire an
hour after the last process of a deployment stops; a deployment restarted within
that hour resumes its clock and live windows from the last checkpoint.

Without Redis configured nothing here runs: a single process ingests on its own.
"""

from __future__ import annotations

import atexit
import contextlib
import decimal
import hashlib
import json
import logging
import os
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from config.city import CityConfig, Source
from config.clock import CityClock, iso
from data import Batch, get_adapter_class
from store.city import CityData, SourceHealth

if TYPE_CHECKING:
    from store.ingest import IngestEngine

log = logging.getLogger(__name__)

Op = Literal["batch", "error", "expire"]
Mode = Literal["local", "leader", "follower"]

#: How long the keys of a deployment outlive its last process (seconds).
SESSION_TTL = 3600
_CHECKPOINT_MAGIC = b"CBCK1"


# ------------------------------------------------------------------- the clock
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


# ------------------------------------------------------------------- encoding
def encode_frame(frame: pd.DataFrame) -> bytes:
    """A normalised frame as compressed Arrow IPC bytes (areas: geometry as WKB).

    The pandas dtypes travel in the schema metadata, so :func:`decode_frame`
    restores them (missing values in object columns come back as ``None``).
    """
    import pyarrow as pa
    import shapely

    geometry = None
    crs = None
    plain = pd.DataFrame(frame)
    if isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame.columns:
        geometry = str(frame.geometry.name)
        crs = None if frame.crs is None else frame.crs.to_string()
        plain[geometry] = shapely.to_wkb(np.asarray(frame.geometry.values))
    dtypes = {str(c): str(frame[c].dtype) for c in frame.columns if str(c) != geometry}
    table = pa.Table.from_pandas(plain, preserve_index=False)
    meta = json.dumps({"dtypes": dtypes, "geometry": geometry, "crs": crs}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"citybrain": meta})
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_frame(payload: bytes) -> pd.DataFrame:
    """The frame :func:`encode_frame` wrote (a GeoDataFrame when it had geometry)."""
    import pyarrow as pa

    table = pa.ipc.open_stream(payload).read_all()
    meta = json.loads((table.schema.metadata or {}).get(b"citybrain", b"{}"))
    frame = table.to_pandas()
    for column, dtype in meta.get("dtypes", {}).items():
        if column in frame.columns and str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    geometry = meta.get("geometry")
    if geometry:
        frame[geometry] = gpd.GeoSeries.from_wkb(frame[geometry].to_numpy(), crs=meta.get("crs"))
        frame = gpd.GeoDataFrame(frame, geometry=geometry, crs=meta.get("crs"))
    return frame


def _to_json(value: Any) -> Any:
    """A cursor (or any small value) as JSON, tagging the types JSON lacks."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return _to_json(value.item())
    if isinstance(value, pd.Timestamp):
        return {"$timestamp": value.isoformat()}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {"$map": {k: _to_json(v) for k, v in value.items()}}
    raise TypeError(f"cannot share a value of type {type(value).__name__}")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    (tag, inner), = value.items()
    if tag == "$timestamp":
        return pd.Timestamp(inner)
    if tag == "$datetime":
        return datetime.fromisoformat(inner)
    if tag == "$date":
        return date.fromisoformat(inner)
    if tag == "$decimal":
        return decimal.Decimal(inner)
    if tag == "$tuple":
        return tuple(_from_json(v) for v in inner)
    return {k: _from_json(v) for k, v in inner.items()}


def _datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class Entry:
    """One change to a city's data, as the leader published it.

    ``version`` is the data version *before* the change: a follower whose version
    differs has missed something and reloads the last checkpoint.
    """

    op: Op
    seq: int
    version: int
    moment: pd.Timestamp  # city time the change was applied at
    now: datetime  # wall time (what health reports as the last read)
    source: str = ""
    frame: bytes = b""
    replace: bool = False
    rejected: Mapping[str, int] = field(default_factory=dict)
    cursor: Any = None
    warnings: tuple[str, ...] = ()
    error: str = ""
    pid: int = 0

    def fields(self) -> dict[bytes, bytes]:
        """The stream entry's field/value pairs."""
        cursor = json.dumps(_to_json(self.cursor))
        return {
            b"op": self.op.encode(), b"seq": str(self.seq).encode(),
            b"version": str(self.version).encode(), b"moment": str(self.moment.value).encode(),
            b"now": self.now.isoformat().encode(), b"source": self.source.encode(),
            b"replace": b"1" if self.replace else b"0",
            b"rejected": json.dumps(dict(self.rejected)).encode(), b"cursor": cursor.encode(),
            b"warnings": json.dumps(list(self.warnings)).encode(), b"error": self.error.encode(),
            b"pid": str(self.pid).encode(), b"frame": self.frame,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Entry:
        text = {k.decode(): v for k, v in fields.items()}
        return cls(
            op=text["op"].decode(),  # type: ignore[arg-type]
            seq=int(text["seq"]), version=int(text["version"]),
            moment=pd.Timestamp(int(text["moment"]), unit="ns", tz="UTC"),
            now=datetime.fromisoformat(text["now"].decode()), source=text["source"].decode(),
            frame=text.get("frame", b""), replace=text["replace"] == b"1",
            rejected=json.loads(text["rejected"]), cursor=_from_json(json.loads(text["cursor"])),
            warnings=tuple(json.loads(text["warnings"])), error=text["error"].decode(),
            pid=int(text.get("pid", b"0")),
        )

    def batch(self, frame: pd.DataFrame | None = None) -> Batch:
        """The batch this entry carries (its frame decoded unless given)."""
        return Batch(frame=decode_frame(self.frame) if frame is None else frame,
                     rejected=Counter(self.rejected), replace=self.replace, cursor=self.cursor,
                     warnings=self.warnings)


class OutOfSync(RuntimeError):
    """A follower missed entries (or its state drifted): it must reload a checkpoint."""


class NotLeader(RuntimeError):
    """An append was refused: this process no longer holds the leader lock."""


# ------------------------------------------------------------ replicated data
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

    def __init__(self, config: CityConfig, clock: SharedClock | None = None) -> None:
        super().__init__(config)
        self.clock: SharedClock = clock or SharedClock(speed=config.live.speed)
        self.context = dc_replace(self.context, clock=self.clock)
        self.mode: Mode = "local"
        self.journal: Callable[[Entry], None] | None = None
        #: Number of log entries applied; the next entry must carry seq + 1.
        self.seq = 0
        #: What identifies this data's versions across processes (the session id).
        self.lineage = uuid.uuid4().hex
        #: Snapshot sources changed by the log since loading (their frames go into checkpoints).
        self._changed: set[str] = set()
        self._unshared_cursors: set[str] = set()

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
            _to_json(cursor)
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
                    cursors[name] = _to_json(cursor)
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
            self._cursors.update({name: _from_json(c) for name, c in meta["cursors"].items()})
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


# ------------------------------------------------------------------ Redis side
# Every write that only the leader may make checks the lock in the same atomic step.
_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local t = redis.call('TIME')
local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
return redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', minid), '*', unpack(ARGV, 3))
"""
_CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def config_fingerprint(config: CityConfig) -> str:
    """Short hash of what the shared state depends on: a changed config starts afresh."""
    text = repr((config.city, config.map, config.live, config.boundaries, config.sources))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class SharedLive:
    """One process's part in the shared live state: election, log, checkpoints, clock.

    Typical use (what :func:`app.create_app` does)::

        shared = SharedLive(config, url)
        data = shared.open_city()          # snapshot sources read, shared clock
        engine = IngestEngine(data)
        shared.start(engine)               # catch up, then lead or follow
    """

    def __init__(self, config: CityConfig, url: str, *, lock_ttl: float = 5.0,
                 checkpoint_every: float = 30.0, session_ttl: int = SESSION_TTL) -> None:
        import redis

        self.config = config
        # Any: redis-py's types cannot say that a client without decode_responses
        # answers bytes.
        self.client: Any = redis.Redis.from_url(url, socket_timeout=15, socket_connect_timeout=5,
                                                health_check_interval=30)
        self.lock_ttl = lock_ttl
        self.renew_every = lock_ttl / 5
        self.checkpoint_every = checkpoint_every
        #: Entries are kept this long, several checkpoint intervals (seconds).
        self.retain = max(4 * checkpoint_every, 60.0)
        self.session_ttl = session_ttl
        self.namespace = f"{config.cache.key_prefix}live:{config_fingerprint(config)}:"
        self.token = f"{os.getpid()}@{socket.gethostname()}/{uuid.uuid4().hex[:12]}"
        try:
            self.session = self._join_session()
        except redis.RedisError as exc:
            raise RuntimeError(f"shared live state: Redis is not reachable ({exc})") from exc
        sid = self.session["id"]
        self.lock_key = f"{self.namespace}{sid}:leader"
        self.stream_key = f"{self.namespace}{sid}:stream"
        self.checkpoint_key = f"{self.namespace}{sid}:checkpoint"
        self.clock = SharedClock(speed=float(self.session["speed"]),
                                 origin=pd.Timestamp(int(self.session["origin"]), unit="ns", tz="UTC"),
                                 _wall_start=float(self.session["wall_start"]))
        self.role: Literal["leader", "follower"] = "follower"
        self.leader: str | None = None
        self.last_id = "0-0"
        self.data: ReplicatedCityData | None = None
        self.engine: IngestEngine | None = None
        self.lead = True
        self.background = True
        self._append = self.client.register_script(_APPEND)
        self._checkpoint = self.client.register_script(_CHECKPOINT)
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = 0.0
        self._last_attempt = 0.0
        self._last_session_touch = 0.0
        self._renewed_at = 0.0
        self._failing = False

    # --------------------------------------------------------------- session
    def _join_session(self) -> dict[str, Any]:
        """The deployment's session (id, clock origin and speed): the first process sets it."""
        key = f"{self.namespace}session"
        wall_start = time.time()
        proposal = {"id": uuid.uuid4().hex[:16], "wall_start": wall_start,
                    "origin": pd.Timestamp(wall_start, unit="s", tz="UTC").value,
                    "speed": self.config.live.speed}
        self.client.set(key, json.dumps(proposal), nx=True, ex=self.session_ttl)
        raw = self.client.get(key)
        self._session_raw = raw or json.dumps(proposal).encode()
        return json.loads(self._session_raw)  # type: ignore[no-any-return]

    def _touch_session(self) -> None:
        # Any live process keeps the session (and so the clock) alive, and puts it
        # back unchanged if Redis lost it.
        key = f"{self.namespace}session"
        with self.client.pipeline() as pipe:
            pipe.set(key, self._session_raw, nx=True, ex=self.session_ttl)
            pipe.expire(key, self.session_ttl)
            pipe.execute()
        self._last_session_touch = time.monotonic()

    # ------------------------------------------------------------- lifecycle
    def open_city(self) -> ReplicatedCityData:
        """Load the city's data on the shared clock (streaming sources are left to the log)."""
        self.data = ReplicatedCityData.open(self.config, self.clock)
        self.data.lineage = f"{config_fingerprint(self.config)}:{self.session['id']}"
        return self.data

    def start(self, engine: IngestEngine, lead: bool = True, background: bool = True) -> SharedLive:
        """Catch up with the log, try to lead, and keep doing so on a daemon thread.

        With ``lead=False`` this process only follows (never ingests). With
        ``background=False`` nothing runs by itself, neither this nor the ingest
        engine: call :meth:`tick` and ``engine.step()`` (tests).
        """
        assert self.data is not None and engine.data is self.data, "open_city() first"
        self.engine = engine
        self.lead = lead
        self.background = background
        engine.after_round.append(self._after_round)
        self.catch_up()
        self.tick(block=False)
        if background and (self._thread is None or not self._thread.is_alive()):
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="citybrain-shared", daemon=True)
            self._thread.start()
            atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop following or leading; a leader hands the lock back at once."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        atexit.unregister(self.stop)
        if self.role == "leader":
            self.step_down("stopping")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                if self._failing:
                    log.info("shared live state: Redis reachable again")
                    self._failing = False
            except Exception as exc:  # Redis down, or a bad entry: retry, never die
                if not self._failing:
                    log.warning("shared live state: %s: %s", type(exc).__name__, exc,
                                exc_info=not _is_redis_error(exc))
                    self._failing = True
                if self.role == "leader" and time.monotonic() - self._renewed_at > 0.8 * self.lock_ttl:
                    # Its lock may have run out: someone else may be leading by now.
                    self.step_down("cannot renew the leader lock")
                self._stop.wait(1.0)

    def tick(self, block: bool = True) -> None:
        """One round: a leader renews its lock; a follower tries to lead, else reads the log."""
        assert self.data is not None
        if time.monotonic() - self._last_session_touch > 5:
            self._touch_session()
        if self.role == "leader":
            if self.data.mode != "leader":
                self.step_down("an append was refused")
            elif not self._renew(keys=[self.lock_key, f"{self.namespace}session", self.stream_key,
                                       self.checkpoint_key],
                                 args=[self.token, int(self.lock_ttl * 1000), self.session_ttl]):
                self.step_down("lost the leader lock")
            else:
                self._renewed_at = time.monotonic()
                if block:
                    self._stop.wait(self.renew_every)
                return
        if time.monotonic() - self._last_attempt >= self.renew_every:
            self._last_attempt = time.monotonic()
            if self.lead and self.client.set(self.lock_key, self.token, nx=True,
                                             px=int(self.lock_ttl * 1000)):
                self.take_over()
                return
            holder = self.client.get(self.lock_key)
            self.leader = None if holder is None else holder.decode()
        self.follow(block_ms=int(self.renew_every * 1000) if block else None)

    # -------------------------------------------------------------- following
    def catch_up(self) -> None:
        """Load the last checkpoint (if any) and apply every entry after it."""
        self.resync()
        self.follow(block_ms=None, drain=True)

    def resync(self) -> bool:
        """Start again from the last checkpoint (a new process, or one that fell behind).

        False when there is nothing to start from yet.
        """
        assert self.data is not None
        checkpoint = self.client.get(self.checkpoint_key)
        if checkpoint is not None:
            self.last_id = self.data.import_state(checkpoint)
            log.info("shared live state: loaded the checkpoint at entry %d", self.data.seq)
            return True
        if self.data.seq == 0:
            self.last_id = "0-0"  # a new session: the log starts where loading ended
            return True
        log.warning("shared live state: out of sync and no checkpoint yet; retrying")
        return False

    def follow(self, block_ms: int | None = None, drain: bool = False) -> int:
        """Read and apply entries after ``last_id``; returns how many were applied.

        ``block_ms`` waits that long for a first entry; ``drain`` reads until none are left.
        """
        assert self.data is not None
        applied = 0
        resynced = False
        while True:
            reply = self.client.xread({self.stream_key: self.last_id}, count=500, block=block_ms)
            items = reply.items() if isinstance(reply, dict) else (reply or [])
            entries = [entry for _, stream_entries in items for entry in stream_entries]
            for entry_id, fields in entries:
                try:
                    applied += self.data.apply_entry(Entry.from_fields(fields))
                except Exception as exc:
                    if isinstance(exc, OutOfSync):
                        log.warning("shared live state: %s; reloading the checkpoint", exc)
                    else:
                        log.exception("shared live state: entry %s failed; reloading the "
                                      "checkpoint", entry_id)
                    if resynced or not self.resync():
                        return applied  # try again on the next round
                    resynced = True
                    break
                self.last_id = _text(entry_id)
            if not drain or not entries:
                return applied
            block_ms = None

    # ---------------------------------------------------------------- leading
    def take_over(self) -> None:
        """Lead: apply what the last leader published, checkpoint, start ingesting."""
        assert self.data is not None
        self.follow(block_ms=None, drain=True)
        self.data.forget_local_cursors()
        self.role = "leader"
        self.leader = self.token
        self.data.journal = self._publish
        self.data.mode = "leader"
        self.write_checkpoint()
        log.info("shared live state: pid %d leads ingest for %s (entry %d, version %d)",
                 os.getpid(), self.config.city.name, self.data.seq, self.data.version)
        if self.engine is not None and self.background and self.data.streaming_sources():
            self.engine.start()

    def step_down(self, reason: str) -> None:
        """Stop ingesting and follow the log again (releasing the lock if still held)."""
        assert self.data is not None
        log.log(logging.INFO if reason == "stopping" else logging.WARNING,
                "shared live state: pid %d stops leading: %s", os.getpid(), reason)
        self.data.mode = "follower"  # from here on, this process's own reads change nothing
        self.role = "follower"
        self.leader = None
        if self.engine is not None:
            self.engine.stop()  # closes the adapters: an MQTT client id is free again
        self.data.forget_adapters()
        self.data.journal = None
        with contextlib.suppress(Exception):
            self._release(keys=[self.lock_key], args=[self.token])

    def _publish(self, entry: Entry) -> None:
        entry_id = self._append(keys=[self.lock_key, self.stream_key],
                                args=[self.token, int(self.retain * 1000),
                                      *[part for pair in entry.fields().items() for part in pair]])
        if entry_id is None:
            raise NotLeader("the leader lock is held by another process")
        self.last_id = _text(entry_id)

    def write_checkpoint(self) -> bool:
        """Write the whole state at ``last_id`` (only while leading); True when written."""
        assert self.data is not None
        blob = self.data.export_state(self.last_id)
        written = bool(self._checkpoint(keys=[self.lock_key, self.checkpoint_key],
                                        args=[self.token, blob, self.session_ttl]))
        self._last_checkpoint = time.monotonic()
        return written

    def _after_round(self, changed: bool) -> None:
        # Runs on the ingest thread between rounds, so the state is consistent with
        # the last entry published.
        if self.role == "leader" and time.monotonic() - self._last_checkpoint >= self.checkpoint_every:
            try:
                self.write_checkpoint()
            except Exception as exc:
                log.warning("shared live state: checkpoint failed: %s", exc)

    # ----------------------------------------------------------------- health
    def status(self) -> dict[str, Any]:
        """What ``/api/health`` reports under ``ingest``."""
        leader_pid = None
        if self.leader:
            with contextlib.suppress(ValueError):
                leader_pid = int(self.leader.split("@", 1)[0])
        return {"shared": "redis", "role": self.role, "pid": os.getpid(), "leader_pid": leader_pid,
                "session": self.session["id"], "entry": None if self.data is None else self.data.seq}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_redis_error(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, redis.RedisError)


def shared_mode(config: CityConfig) -> Literal["redis"] | None:
    """"redis" when the workers share their live state, None when each is on its own."""
    mode = config.live.shared
    if mode == "redis" or (mode == "auto" and config.cache.type == "RedisCache"):
        return "redis"
    return None


def open_shared(config: CityConfig) -> SharedLive | None:
    """The process's :class:`SharedLive` when the config shares live state, else None."""
    if shared_mode(config) is None:
        return None
    from store.cache import redis_url

    return SharedLive(config, redis_url(config.cache))


__all__ = ["SharedLive", "ReplicatedCityData", "SharedClock", "Entry", "encode_frame",
           "decode_frame", "open_shared", "shared_mode", "config_fingerprint"]
