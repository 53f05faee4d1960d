"""Leading and following: leader election, the Redis log, checkpoints and the shared clock.

:class:`SharedLive` is one process's part: it joins the deployment's session
(which fixes the clock), elects the leader with a Redis lock it renews, appends
the leader's entries to the stream through fenced Lua scripts, and has
followers read the stream and reload checkpoints when they fall behind.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from config.city import CityConfig
from store.replication.log import Entry, NotLeader, OutOfSync
from store.replication.replica import ReplicatedCityData, SharedClock

if TYPE_CHECKING:
    from store.ingest import IngestEngine

log = logging.getLogger(__name__)

#: How long the keys of a deployment outlive its last process (seconds).
SESSION_TTL = 3600


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
                                 _wall_start=float(self.session["wall_start"]),
                                 anchored=config.live.start is not None)
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
        origin = self.config.live.start  # [live] start, else the clock starts now
        if origin is None:
            origin = pd.Timestamp(wall_start, unit="s", tz="UTC")
        proposal = {"id": uuid.uuid4().hex[:16], "wall_start": wall_start, "origin": origin.value,
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
        # Sources are read on threads of their own: no batch is published meanwhile.
        with self.data.write_lock:
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
