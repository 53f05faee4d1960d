"""Backtests off the refresh path: one worker thread per city's vital signs.

A rolling-origin backtest (:mod:`ops.signs.backtest`) costs seconds per forecast
indicator (ETS is re-estimated several times). Run on the refresh path, the first
page after start-up waited for all of them. :class:`BackgroundBacktests` runs them
one at a time on a daemon thread instead: a refresh hands the job over and returns
at once; until the indicator's first backtest is done its forecast says **backtest
pending** (persistence, no skill claimed, and a forecast rule does not fire on it);
later retests run while the previous backtest stays in use.

A job is known by a key (the indicator's name): while one is queued or running, the
same key is not queued again, so a slow backtest never piles up behind itself.

Example::

    worker = BackgroundBacktests()
    worker.submit("rph", lambda: store(backtest(values, 3, 24)))   # True: queued
    worker.submit("rph", ...)                                       # False: already queued
    worker.wait(timeout=30)                                         # True when all are done
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundBacktests:
    """A queue of backtest jobs and the one daemon thread that runs them, oldest first."""

    def __init__(self, name: str = "backtests") -> None:
        self.name = name
        self._jobs: queue.Queue[tuple[str, Callable[[], None]]] = queue.Queue()
        self._in_flight: set[str] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, key: str, job: Callable[[], None]) -> bool:
        """Queue ``job`` unless one with ``key`` is queued or running; True when queued."""
        with self._changed:
            if key in self._in_flight:
                return False
            self._in_flight.add(key)
            if self._thread is None or not self._thread.is_alive():
                # Daemon: a backtest in progress never holds up a worker's shutdown.
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._jobs.put((key, job))
        return True

    def pending(self, key: str) -> bool:
        """True while a job with ``key`` is queued or running."""
        with self._changed:
            return key in self._in_flight

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (or ``timeout`` s); True when idle."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._in_flight, timeout)

    def _run(self) -> None:
        while True:
            key, job = self._jobs.get()
            try:
                job()
            except Exception:  # a failed backtest must not stop the ones after it
                log.exception("background backtest %s failed", key)
            finally:
                with self._changed:
                    self._in_flight.discard(key)
                    self._changed.notify_all()


__all__ = ["BackgroundBacktests"]
