"""The ingest engine: one background thread per process that keeps the city live.

It polls every streaming source's ``updates()`` each ``ingest_interval``, re-checks
snapshot sources every ``reload`` seconds, and ages the live windows on the city
clock. Browsers never trigger ingest: however many pages are open, each source
is read once per interval. A source that fails is recorded in its health and
retried on the next round, so it recovers by itself when its service returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from store.city import CityData

log = logging.getLogger(__name__)


class IngestEngine:
    """Runs :meth:`step` on a daemon thread until :meth:`stop`."""

    def __init__(self, data: CityData) -> None:
        self.data = data
        self.settings = data.config.live
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_reload = time.monotonic()
        self.rounds = 0
        #: Called after every round with whether the data changed (e.g. event intake).
        self.after_round: list[Callable[[bool], None]] = []

    def step(self) -> bool:
        """One ingest round; True when the city's data changed."""
        before = self.data.version
        for source in self.data.streaming_sources():
            if self._stop.is_set():
                break
            self.data.refresh_source(source, incremental=True)
        if time.monotonic() - self._last_reload >= self.settings.reload:
            self._last_reload = time.monotonic()
            for source in self.data.config.sources:
                if not self.data.is_live(source.name):
                    self.data.refresh_source(source, incremental=True)
        self.data.expire()
        self.rounds += 1
        changed = self.data.version != before
        for hook in self.after_round:
            try:
                hook(changed)
            except Exception:  # a hook's failure must not stop ingest
                log.exception("after-round hook failed")
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except Exception:  # the engine must outlive any one bad round
                log.exception("ingest round failed")
            self._stop.wait(max(0.0, self.settings.ingest_interval - (time.monotonic() - started)))

    def start(self) -> IngestEngine:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="citybrain-ingest", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
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
