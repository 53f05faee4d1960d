"""``simulator``: simulated telemetry for a city's real devices (labelled as simulated).

The demo city has real device locations (Wi-Fi kiosks, hotspots) but no live
telemetry, so this adapter invents it, openly: every ``period`` of city time each
device reports ``status`` (online/offline: a sticky two-state Markov chain, so
outages last) and, when online, a ``reading`` (a PM2.5-like value: a per-device
baseline, a daily cycle peaking in the evening rush, and noise). Sources using it
must set ``simulated = true`` in the config, and the UI and API say so.

Everything is seeded, so a run is reproducible: the state at period *k* depends
only on the seed, the device and *k*.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from config.city import ConfigError, parse_duration
from data.base import AdapterContext, Batch
from data.files import AnyFileAdapter, FileSource


class SensorSimulator(FileSource):
    name = "simulator"
    options: ClassVar[frozenset[str]] = frozenset(
        {"path", "member", "layer_name", "encoding", "delimiter", "period", "offline_rate",
         "recovery_rate", "reading_base", "seed"})
    streaming = True

    def __init__(self, source: Any, context: AdapterContext) -> None:
        super().__init__(source, context)
        if not source.simulated:
            raise ConfigError(f"[[sources]] {source.name!r}: the simulator adapter needs "
                              "simulated = true, so the UI and API label its data")
        options = source.options
        self.period = parse_duration(f"{source.name}.period", options.get("period", "5m"))
        self.offline_rate = float(options.get("offline_rate", 0.01))
        self.recovery_rate = float(options.get("recovery_rate", 0.2))
        self.reading_base = float(options.get("reading_base", 9.0))
        self.seed = int(options.get("seed", 20261124))
        self._devices: pd.DataFrame | None = None
        self._state: np.ndarray = np.empty(0, dtype=bool)  # True = online
        self._baseline: np.ndarray = np.empty(0)
        self._period_done = -1

    def _load(self) -> Batch:
        reader = AnyFileAdapter(replace(self.source, adapter=AnyFileAdapter.name, simulated=False),
                                self.context)
        batch = reader.complete_snapshot()
        self._devices = batch.frame.reset_index(drop=True)
        rng = np.random.default_rng(self.seed)
        self._state = rng.random(len(self._devices)) > self.offline_rate
        self._baseline = self.reading_base * rng.lognormal(0.0, 0.35, len(self._devices))
        return batch

    def _step(self, period: int) -> pd.DataFrame:
        """The devices' reports for one period (advancing the Markov chain once)."""
        assert self._devices is not None
        rng = np.random.default_rng([self.seed, period])
        draw = rng.random(len(self._state))
        self._state = np.where(self._state, draw > self.offline_rate, draw < self.recovery_rate)
        when = self.context.clock.origin + pd.Timedelta(seconds=period * self.period)
        local_hour = when.tz_convert(self.context.timezone).hour + when.minute / 60
        daily = 1.0 + 0.35 * np.sin((local_hour - 12.0) / 24.0 * 2 * np.pi)
        reading = self._baseline * daily * rng.lognormal(0.0, 0.15, len(self._state))
        rows = self._devices.copy()
        rows["time"] = when
        rows["status"] = np.where(self._state, "online", "offline")
        rows["reading"] = np.where(self._state, np.round(reading, 1), np.nan)
        return rows

    def _advance(self) -> pd.DataFrame:
        current = int(self.context.clock.elapsed() // self.period)
        # Only the latest state per device matters downstream (rows replace by id), so
        # after a long pause emit the last few periods, not every one missed.
        first = max(self._period_done + 1, current - 2)
        frames = [self._step(p) for p in range(first, current + 1)]
        self._period_done = current
        if not frames:
            return self._devices.iloc[0:0] if self._devices is not None else pd.DataFrame()
        return frames[-1] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def snapshot(self) -> Batch:
        batch = self._load() if self._devices is None else Batch(frame=pd.DataFrame())
        rows = self._advance()
        return Batch(frame=rows, rejected=batch.rejected, replace=True, cursor=self._period_done)

    def updates(self, since: Any) -> Batch:
        if self._devices is None:
            return self.snapshot()
        return Batch(frame=self._advance(), replace=False, cursor=self._period_done)
