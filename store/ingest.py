"""The ingest engine: keeps the city live, one worker thread per source.

Each source is read on its own daemon thread: a streaming source's ``updates()``
every ``ingest_interval``, a snapshot source re-checked every ``reload`` seconds.
A slow or hanging source therefore holds up only itself: the others keep their
schedule, and the round loop (ageing the live windows on the city clock, then the
after-round hooks: event intake, supervision, vital signs, checkpoints) runs on
its own thread every ``ingest_interval`` over whatever has arrived, never waiting
on a read. While a read runs its health says since when (``reading_since``); one
still running past its deadline (the source's ``timeout`` option, else
:data:`READ_DEADLINE`) makes the source stale, "slow since …".

Browsers never trigger ingest: however many pages are open, each source is read
once per interval. A source that fails is recorded in its health and retried on
its next turn, so it recovers by itself when its service returns. Batches are
applied one at a time (:attr:`store.city.CityData.write_lock`), so the data changes
in a single order whichever thread read them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from config.city import Source
from store.city import CityData

log = logging.getLogger(__name__)

#: Seconds a read may run before its source is "slow", for adapters without a ``timeout``.
READ_DEADLINE = 60.0


def read_deadline(source: Source) -> float:
    """How long one read of ``source`` may take: its ``timeout`` option, else the default."""
    timeout = source.options.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return READ_DEADLINE


class IngestEngine:
    """Reads every source on its own thread and runs rounds on another, until :meth:`stop`.

    :meth:`step` does one whole round synchronously (every streaming source, the
    snapshot sources when due, then :meth:`tick`), for tests and tools.
    """

    def __init__(self, data: CityData) -> None:
        self.data = data
        self.settings = data.config.live
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: dict[str, threading.Thread] = {}
        self._last_reload = time.monotonic()
        self._seen_version = data.version
        self.rounds = 0
        #: Reads done per source (by its worker or by :meth:`step`).
        self.reads: dict[str, int] = {s.name: 0 for s in data.config.sources}
        #: Called after every round with whether the data changed (e.g. event intake).
        self.after_round: list[Callable[[bool], None]] = []

    # ------------------------------------------------------------------ reading
    def read(self, source: Source) -> None:
        """Read one source now (incrementally), its health saying a read is running."""
        health = self.data.health[source.name]
        health.read_deadline = read_deadline(source)
        health.reading_since = datetime.now(UTC)
        try:
            self.data.refresh_source(source, incremental=True)
        finally:
            health.reading_since = None
            self.reads[source.name] = self.reads.get(source.name, 0) + 1

    def _every(self, source: Source) -> float:
        return self.settings.ingest_interval if self.data.is_live(source.name) \
            else self.settings.reload

    def _read_loop(self, source: Source) -> None:
        # A snapshot source was read at load: its first re-check is one reload away.
        wait = 0.0 if self.data.is_live(source.name) else self.settings.reload
        while not self._stop.wait(wait):
            started = time.monotonic()
            try:
                self.read(source)
            except Exception:  # refresh_source records failures; this is a bug's last net
                log.exception("source %s: read failed", source.name)
            wait = max(0.0, self._every(source) - (time.monotonic() - started))

    # ------------------------------------------------------------------- rounds
    def tick(self) -> bool:
        """Age the live windows, then run the after-round hooks; True when the data
        changed since the previous tick (by any source's read or by ageing)."""
        with self.data.write_lock:
            self.data.expire()
        self.rounds += 1
        version = self.data.version
        changed, self._seen_version = version != self._seen_version, version
        for hook in self.after_round:
            try:
                hook(changed)
            except Exception:  # a hook's failure must not stop the rounds
                log.exception("after-round hook failed")
        return changed

    def step(self) -> bool:
        """One whole round on the calling thread; True when the city's data changed."""
        for source in self.data.streaming_sources():
            if self._stop.is_set():
                break
            self.read(source)
        if time.monotonic() - self._last_reload >= self.settings.reload:
            self._last_reload = time.monotonic()
            for source in self.data.config.sources:
                if not self.data.is_live(source.name):
                    self.read(source)
        return self.tick()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # the engine must outlive any one bad round
                log.exception("ingest round failed")
            self._stop.wait(max(0.0, self.settings.ingest_interval - (time.monotonic() - started)))

    # --------------------------------------------------------------- lifecycle
    def start(self) -> IngestEngine:
        """Start the round loop and one reader per source (those not already running)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="citybrain-ingest", daemon=True)
            self._thread.start()
        # Streaming sources get their windows when their adapters open (at load).
        for source in self.data.config.sources:
            worker = self._workers.get(source.name)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(target=self._read_loop, args=(source,),
                                          name=f"citybrain-source-{source.name}", daemon=True)
                self._workers[source.name] = worker
                worker.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the rounds and the readers, then close the adapters.

        A reader stuck in a read past ``timeout`` is left to finish by itself (it is a
        daemon thread and stops at its next turn); its adapter is closed anyway.
        """
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in [self._thread, *self._workers.values()]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [name for name, t in self._workers.items() if t.is_alive()]
        if stuck:
            log.warning("ingest stopped with reads still running: %s", ", ".join(stuck))
        self._workers = {name: t for name, t in self._workers.items() if t.is_alive()}
        for source in self.data.config.sources:
            adapter = self.data._adapters.get(source.name)
            if adapter is not None:
                try:
                    adapter.close()
                except Exception:
                    log.exception("closing source %s failed", source.name)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


__all__ = ["READ_DEADLINE", "IngestEngine", "read_deadline"]
