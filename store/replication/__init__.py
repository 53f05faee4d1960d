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

The parts: :mod:`~store.replication.codec` (frames and cursors on the wire),
:mod:`~store.replication.log` (the log's entries), :mod:`~store.replication.replica`
(the data every worker holds alike, its checkpoints and the pinned clock) and
:mod:`~store.replication.leader` (election, the Redis stream, following).
"""

from __future__ import annotations

from typing import Literal

from config.city import CityConfig
from store.replication.codec import decode_frame, encode_frame
from store.replication.leader import SESSION_TTL, SharedLive, config_fingerprint
from store.replication.log import Entry, NotLeader, OutOfSync
from store.replication.replica import ReplicatedCityData, SharedClock


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
           "decode_frame", "open_shared", "shared_mode", "config_fingerprint", "OutOfSync",
           "NotLeader", "SESSION_TTL"]
