"""Vital signs and alerts of a running city.

:class:`VitalSigns` ties a city's indicators, their sample history and its alert
book together: :meth:`VitalSigns.refresh` evaluates every indicator at the city's
time, records the samples, and checks the rules on the same readings; the
results are kept so that many pages (and the API) can read them without
recomputing. The UI calls :meth:`VitalSigns.current`; the ingest loop may call
:meth:`VitalSigns.refresh` after each round.

Their JSON API is :mod:`api.signs`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ops.signs.alerts import AlertBook, AlertChanges
from ops.signs.indicators import IndicatorHistory, IndicatorReading, evaluate_all, reference_time
from ops.signs.ledger import AlertLedger
from ops.signs.settings import Indicator, OpsSettings, Rule, parse_ops_settings

if TYPE_CHECKING:
    from store.city import CityData


class VitalSigns:
    """One city's indicators, sample history and alert book, refreshed together.

    Example::

        signs = VitalSigns.from_config(data, raw_toml)
        readings, alerts = signs.current()     # cached for ``max_age`` wall seconds
    """

    def __init__(self, data: CityData, indicators: Sequence[Indicator], rules: Sequence[Rule] = (),
                 *, history: IndicatorHistory | None = None, max_age: float = 2.0,
                 with_forecast: bool = True, ledger: AlertLedger | None = None,
                 background_backtests: bool = False,
                 writes_alerts: Callable[[], bool] | None = None) -> None:
        self.data = data
        self.indicators = tuple(indicators)
        #: With ``background_backtests`` (the running app) forecasts are backtested on a
        #: worker thread: a refresh never waits for one (:mod:`ops.signs.background`).
        self.history = history or IndicatorHistory(background=background_backtests)
        self.book = AlertBook(rules, self.indicators, self.history, ledger=ledger)
        #: Whether this process changes a shared book (the ingest leader does; the other
        #: workers only read it, so a lagging replica never clears what the leader raised).
        self.writes_alerts = writes_alerts or (lambda: True)
        self.max_age = max_age
        self.with_forecast = with_forecast
        self._readings: list[IndicatorReading] = []
        self._changes: AlertChanges | None = None
        self._computed_at = -float("inf")
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, data: CityData, raw: Mapping[str, Any] | OpsSettings,
                    **options: Any) -> VitalSigns:
        """From the parsed TOML (its ``indicators`` and ``rules``) or parsed settings."""
        settings = raw if isinstance(raw, OpsSettings) else parse_ops_settings(
            raw, data.config.sources)
        return cls(data, settings.indicators, settings.rules, **options)

    def refresh(self, now: pd.Timestamp | None = None) -> tuple[list[IndicatorReading], AlertChanges]:
        """Evaluate every indicator and rule at ``now`` (default: the city's time)."""
        now = reference_time(self.data) if now is None else pd.Timestamp(now)
        with self._lock:
            readings = evaluate_all(self.data, self.indicators, now, self.history,
                                    self.with_forecast)
            if self.book.ledger is None or self.writes_alerts():
                changes = self.book.evaluate(self.data, now, {r.name: r for r in readings})
            else:
                changes = AlertChanges(time=now)
            self._readings, self._changes = readings, changes
            self._computed_at = time.monotonic()
            return readings, changes

    def current(self) -> tuple[list[IndicatorReading], AlertChanges]:
        """The latest readings and alert changes, refreshed when older than ``max_age`` s."""
        with self._lock:
            if self._changes is not None and time.monotonic() - self._computed_at < self.max_age:
                return self._readings, self._changes
        return self.refresh()


__all__ = ["VitalSigns"]
