"""fetch → normalise → H3 aggregate: the city's data, as pure steps over frames.

:class:`CityData` holds, per layer and role, the normalised rows of all of that
role's sources (point roles) or the areas apportioned onto cells (area roles),
plus the admin boundaries used for drill-down. Points carry their exact cell at
every served resolution; areas are apportioned by area of overlap at each served
resolution (not rolled up from the base cells: an H3 parent does not cover its
children), so every resolution is area-weighted (:meth:`CityData.frame` with ``res``).

A source that fails to load never takes the app down: its error is recorded in
its :class:`~store.health.SourceHealth`, its layer keeps whatever it last had, and
the other sources carry on. Boundary loading is in :mod:`store.boundaries`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from config.city import Boundary, CityConfig, Source
from config.clock import CityClock
from data import Adapter, AdapterContext, Batch, SourceError, get_adapter_class
from data.base import empty_frame
from geo.areal import OverlapCache, apportion
from layers import LAYERS, outline_layers
from layers.aggregate import aggregate, cells_in_view, filter_rows
from layers.base import Metric
from store.boundaries import BoundaryLevel, cells_at, display_geometries, load_boundary
from store.entities import locate
from store.health import SourceHealth
from store.history import HistoryError, ReplayStore, open_history, state_at
from store.live import IncrementalTotals, LiveStore, cell_values, contribution

log = logging.getLogger(__name__)


class CityData:
    """All layers' normalised data for one city, and how to aggregate it."""

    def __init__(self, config: CityConfig) -> None:
        self.config = config
        self.clock = CityClock(speed=config.live.speed, origin=config.live.start,
                               anchored=config.live.start is not None)
        self.context = AdapterContext(base_res=config.map.base_res, timezone=config.city.timezone,
                                      clock=self.clock,
                                      plausible_times=config.live.plausible_times,
                                      resolutions=config.map.served_resolutions)
        self.cache_dir = _cache_dir(config)
        # One per city: a shape shared by a boundary level and a land source is intersected once.
        self.overlap_cache = OverlapCache(self.cache_dir)
        self.health: dict[str, SourceHealth] = {
            s.name: SourceHealth(s.name, s.layer, s.role, s.adapter, s.simulated, s.stale_after)
            for s in config.sources
        }
        self._frames: dict[str, pd.DataFrame] = {}  # by source name
        self._areas: dict[str, gpd.GeoDataFrame] = {}  # area sources' polygons
        # Area sources apportioned at each resolution other than the base one.
        self._area_rows: dict[str, dict[int, pd.DataFrame]] = {}
        self._adapters: dict[str, Adapter] = {}
        self._cursors: dict[str, Any] = {}
        self._lock = threading.RLock()
        #: Held while a batch, an error or an expiry is applied: sources are read on
        #: threads of their own (store.ingest), their changes land one at a time.
        self.write_lock = threading.RLock()
        # Values per cell, and per-source running sums (frames) of incremental metrics.
        self._aggregates: OrderedDict[tuple[Any, ...], pd.Series | pd.DataFrame] = OrderedDict()
        self._outlines: dict[tuple[Any, ...], Any] = {}
        self._live: dict[str, LiveStore] = {}  # streaming sources' windows
        self._totals: dict[str, IncrementalTotals] = {}
        self._source_versions: dict[str, int] = {s.name: 0 for s in config.sources}
        self.version = 0
        #: Each source's newest event time, by (…, source, source version).
        self._watermarks: dict[tuple[str, str, int], pd.Timestamp | None] = {}
        self.boundaries: tuple[BoundaryLevel, ...] = ()
        # Every live version also goes to PostgreSQL when configured (store.history);
        # the lambda asks whichever clock this data has (a subclass may replace it).
        self.history_store = open_history(config.live, lambda: self.clock.now())

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, config: CityConfig) -> CityData:
        data = cls(config)
        data.boundaries = tuple(data._load_boundary(b) for b in config.boundaries)
        # Entity sources first: observations take their location when they arrive.
        for source in sorted(config.sources, key=lambda s: s.entity_source is not None):
            data.refresh_source(source)
        return data

    def adapter(self, source: Source) -> Adapter:
        if source.name not in self._adapters:
            cls = get_adapter_class(source.adapter)
            self._adapters[source.name] = cls(source, self.context)
            if cls.streaming:
                self.open_window(source)
        return self._adapters[source.name]

    def open_window(self, source: Source) -> None:
        """Give a streaming source its bounded live window and incremental totals."""
        live = self.config.live
        self._live[source.name] = LiveStore(
            window=source.window or live.window, history=live.history,
            max_rows=source.max_rows or live.max_rows)
        self._totals[source.name] = IncrementalTotals()
        if source.stale_after is None:
            self.health[source.name].stale_after = live.stale_after

    def streaming_sources(self) -> tuple[Source, ...]:
        return tuple(s for s in self.config.sources if s.name in self._live)

    def is_live(self, source: str) -> bool:
        return source in self._live

    def live_window(self, source: str) -> LiveStore | None:
        """A streaming source's live window (None for a snapshot source).

        Safe to read from other threads: the window swaps whole frames under its
        lock, never mutating one a reader holds.
        """
        return self._live.get(source)

    def refresh_source(self, source: Source, incremental: bool = False) -> None:
        """Read one source (snapshot, or updates since the last cursor) and swap it in.

        Failures are recorded, never raised: the layer keeps its last data.
        """
        health = self.health[source.name]
        now = datetime.now(UTC)
        try:
            adapter = self.adapter(source)
            if incremental and source.name in self._cursors:
                batch = adapter.updates(self._cursors[source.name])
            else:
                batch = adapter.snapshot()
        except SourceError as exc:
            with self.write_lock:
                self._record_error(health, str(exc), now)
            return
        except Exception as exc:  # an adapter bug must not stop the other sources
            log.exception("source %s failed", source.name)
            with self.write_lock:
                self._record_error(health, f"{type(exc).__name__}: {exc}", now)
            return
        with self.write_lock:
            self.apply_batch(source, batch, now)

    def _record_error(self, health: SourceHealth, message: str, now: datetime) -> None:
        log.warning("source %s: %s", health.name, message)
        health.last_error = message
        health.last_error_at = now
        health.last_read = health.last_read or None

    @property
    def writes_history(self) -> bool:
        """Whether this process writes the replay history: every process on its own (with
        shared live state, only the ingest leader: see ReplicatedCityData)."""
        return True

    def apply_batch(self, source: Source, batch: Batch, now: datetime | None = None) -> None:
        """Install a batch from an adapter and update health.

        Snapshot sources swap in (``replace``) or append; streaming sources feed their
        live window, whose delta updates the incremental totals. Observations of an
        ``entity_source`` are first located by their entities (:func:`store.entities.locate`).
        """
        now = now or datetime.now(UTC)
        health = self.health[source.name]
        role = LAYERS[source.layer].roles[source.role]
        frame = batch.frame
        rejected = Counter(batch.rejected)
        if source.entity_source is not None and len(frame):
            entities = next(s for s in self.config.sources if s.name == source.entity_source)
            frame, unknown = locate(frame, self.frame(entities.layer, entities.role,
                                                      entities.name))
            rejected.update(unknown)
        by_res: dict[int, pd.DataFrame] = {}
        if role.geometry == "area" and len(frame):
            self._areas[source.name] = frame
            by_res = {res: apportion(frame, res, self.overlap_cache)
                      for res in self.config.map.served_resolutions
                      if res != self.config.map.base_res}
            frame = apportion(frame, self.config.map.base_res, self.overlap_cache)
        with self._lock:
            if batch.replace:
                health.rejected = rejected
            else:
                health.rejected.update(rejected)
            live = self._live.get(source.name)
            expired_only = False
            if live is not None:
                # On PostgreSQL's microsecond grid, so both history stores agree.
                received = self.clock.now().floor("us")
                delta = live.add(frame, received)
                self._totals[source.name].apply(delta)
                health.rows_loaded = len(live.current)
                # With shared live state only the ingest leader writes the history.
                if self.history_store is not None and self.writes_history:
                    self.history_store.append(source.name, frame, received)
                # No new rows, but rows aged out: still a new version of the data.
                expired_only = not len(frame) and not delta.empty
            elif batch.replace or source.name not in self._frames:
                self._frames[source.name] = frame
                self._area_rows[source.name] = by_res
            elif len(frame):
                self._frames[source.name] = pd.concat([self._frames[source.name], frame],
                                                      ignore_index=True)
                known = self._area_rows.setdefault(source.name, {})
                for res, rows in by_res.items():
                    known[res] = rows if res not in known else \
                        pd.concat([known[res], rows], ignore_index=True)
            if live is None:
                health.rows_loaded = len(self._areas[source.name]) if source.name in self._areas \
                    else len(self._frames[source.name])
            self._cursors[source.name] = batch.cursor
            health.warnings = batch.warnings
            if batch.replace:  # a whole new state: its rejections replace the last ones
                health.dead_letters.clear()
            health.dead_letters.extend(batch.dead_letters)
            health.last_read = now
            health.last_error = None
            if len(frame) or (batch.replace and live is None):
                health.last_data = now
            if len(frame) or (batch.replace and live is None) or expired_only:
                self._source_versions[source.name] += 1
                self.version += 1
                self._aggregates.clear()

    def expire(self) -> bool:
        """Age the live windows on the city clock; True when anything left a window."""
        changed = False
        now = self.clock.now()
        with self._lock:
            for name, live in self._live.items():
                delta = live.expire(now)
                if not delta.empty:
                    self._totals[name].apply(delta)
                    self.health[name].rows_loaded = len(live.current)
                    self._source_versions[name] += 1
                    changed = True
            if changed:
                self.version += 1
                self._aggregates.clear()
        return changed

    def _load_boundary(self, spec: Boundary) -> BoundaryLevel:
        return load_boundary(spec, self.config.map.base_res, self.overlap_cache)

    # ------------------------------------------------------------------ access
    def frame(self, layer: str, role: str, source: str | None = None,
              res: int | None = None) -> pd.DataFrame:
        """All rows of one layer role (or of one source), normalised.

        Area roles hold one row per (area, cell): with ``res`` their cells are at
        that resolution, each area apportioned by its overlap with those hexagons
        (without: the base resolution). Point rows are the same at every ``res``.
        """
        with self._lock:
            names = [s.name for s in self.config.sources
                     if s.layer == layer and s.role == role and (source is None or s.name == source)]
            frames = [self._source_rows(n) for n in names] if res is None else []
        if res is not None:  # may apportion (slow): outside the lock
            frames = [self.source_rows_at(n, res) for n in names]
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_role_frame(layer, role)
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _source_rows(self, name: str) -> pd.DataFrame:
        live = self._live.get(name)
        if live is not None:
            return live.rows()
        return self._frames.get(name, pd.DataFrame())

    def source_rows_at(self, name: str, res: int) -> pd.DataFrame:
        """One source's rows with area sources apportioned at ``res``.

        Served resolutions are apportioned when the source loads; any other is
        apportioned on first use (through the overlap cache) and kept.
        """
        with self._lock:
            by_res = self._area_rows.get(name)
            areas = self._areas.get(name)
            if by_res is None or areas is None or res == self.config.map.base_res \
                    or name in self._live:
                return self._source_rows(name)
            rows = by_res.get(res)
            version = self._source_versions[name]
        if rows is None:
            rows = apportion(areas, res, self.overlap_cache)
            with self._lock:
                if self._source_versions[name] == version:
                    self._area_rows[name][res] = rows
        return rows

    def rows_since(self, source: str, cursor: Any = None) -> tuple[pd.DataFrame, Any, bool]:
        """The rows of ``source`` that came after ``cursor``: (rows, next cursor, whole).

        For a consumer that takes each row once (event intake) at a cost per new row.
        A streaming source answers the rows of its window that arrived after the
        cursor (each arrival has a sequence number; a new version of a row id is a new
        arrival). A snapshot source answers nothing while its version is the cursor's,
        else its whole current state with ``whole`` True (the consumer tells old rows
        from new, e.g. by id). ``cursor=None`` starts from the beginning.
        """
        with self._lock:
            live = self._live.get(source)
            if live is None:
                version = self._source_versions.get(source, 0)
                if cursor == ("version", version):
                    return pd.DataFrame(), cursor, False
                return self._frames.get(source, pd.DataFrame()), ("version", version), True
            with live._lock:
                current, next_seq = live.current, live._seq
        start = cursor[1] if isinstance(cursor, tuple) and cursor[0] == "seq" else 0
        if start > next_seq:  # the window was rebuilt (e.g. from a checkpoint): start over
            start = 0
        if current.empty or "_seq" not in current:
            return pd.DataFrame(), ("seq", next_seq), False
        new = current.loc[current["_seq"].to_numpy() >= start]
        return new.drop(columns=["received", "_seq"], errors="ignore"), ("seq", next_seq), False

    def watermark(self, source: str) -> pd.Timestamp | None:
        """The newest event time ingested from ``source`` (None: no timed row yet).

        Live sources answer from their history log (every version received, kept
        past the window), snapshot sources from their rows. Rows timed after the
        city clock's now do not move it past now: a row from the future says
        nothing about what the present holds. Cached per source version. A source
        configured with ``watermark = "clock"`` is complete up to now.
        """
        spec = next((s for s in self.config.sources if s.name == source), None)
        if spec is not None and spec.watermark == "clock":
            return self.clock.now()
        with self._lock:
            key = ("watermark", source, self._source_versions.get(source, 0))
            cached = self._watermarks.get(key, False)
            if cached is not False:
                return cached  # type: ignore[return-value]
            live = self._live.get(source)
            rows = self._frames.get(source, pd.DataFrame()) if live is None else \
                (live.current if live.log.empty else live.log)
        newest = None
        if "time" in rows and rows["time"].notna().any():
            newest = pd.Timestamp(rows["time"].max())
        with self._lock:
            self._watermarks = {k: v for k, v in self._watermarks.items() if k[1] != source}
            self._watermarks[key] = newest
        if newest is None:
            return None
        now = self.clock.now()
        return min(newest, now) if self.is_live(source) else newest

    def areas(self, source: str) -> gpd.GeoDataFrame | None:
        return self._areas.get(source)

    def outline_choices(self) -> list[tuple[str, str, str]]:
        """(key, zh title, en title) of everything that can be drawn as outlines."""
        choices = [(f"boundary:{b.spec.level}", b.spec.title_zh, b.spec.title_en)
                   for b in self.boundaries]
        choices += [(f"{layer.id}:{s.name}", s.title_zh, s.title_en)
                    for layer in outline_layers() for s in self.config.sources_for(layer.id)]
        return choices

    def outlines(self, key: str) -> tuple[list[float | None], list[float | None]]:
        """Polygon rings of a boundary level or land source as lat/lon lists (cached)."""
        from geo.outlines import outline_lines

        kind, _, name = key.partition(":")
        if kind == "boundary":
            boundary = self.boundary(name)
            geoms = None if boundary is None else boundary.units.geometry.values
            cache_key: tuple[Any, ...] = (key,)
        elif kind in {layer.id for layer in outline_layers()}:
            areas = self.areas(name)
            geoms = None if areas is None else areas.geometry.values
            cache_key = (key, self.version)
        else:
            geoms = None
            cache_key = (key,)
        if geoms is None:
            return [], []
        with self._lock:
            cached = self._outlines.get(cache_key)
        if cached is None:
            cached = outline_lines(display_geometries(geoms))
            with self._lock:
                self._outlines[cache_key] = cached
        return cached

    def unit_outline(self, level: str, name: str) -> tuple[list[float | None], list[float | None]]:
        from geo.outlines import outline_lines

        boundary = self.boundary(level)
        if boundary is None:
            return [], []
        return outline_lines(display_geometries(
            boundary.units.loc[boundary.units["name"] == name].geometry.values))

    def boundary_geojson(self, level: str) -> dict[str, Any]:
        """A boundary level as a GeoJSON FeatureCollection (feature id = unit name), cached."""
        key = ("geojson", level)
        with self._lock:
            cached = self._outlines.get(key)
        if cached is None:
            import json

            boundary = self.boundary(level)
            units = boundary.units if boundary is not None else gpd.GeoDataFrame(geometry=[])
            shown = units.set_index("name", drop=False)[["geometry"]]
            shown = shown.set_geometry(display_geometries(shown.geometry.values))
            cached = json.loads(shown.to_json(drop_id=False, to_wgs84=True)) if len(units) else \
                {"type": "FeatureCollection", "features": []}
            for feature in cached["features"]:
                feature["properties"] = {}
            with self._lock:
                self._outlines[key] = cached
        return cached  # type: ignore[return-value]

    def footprint(self, res: int) -> np.ndarray:
        """The city's cells at ``res``: every one overlapping its top admin level (cached).

        The map draws this grid, not only the cells that have data, so a live update
        changes values on a fixed set of hexagons instead of resending geometry. The
        cells are the boundary's own at ``res`` (:func:`store.boundaries.cells_at`), not
        parents of its base cells, which miss edge hexagons its points fall in.
        """
        key = ("footprint", res)
        with self._lock:
            cached = self._outlines.get(key)
        if cached is None:
            if not self.boundaries:
                cached = np.empty(0, dtype=np.int64)
            elif res == self.config.map.base_res:
                cached = np.unique(self.boundaries[0].cells["cell"].to_numpy(dtype=np.int64))
            else:
                cached = cells_at(self.boundaries[0], res, self.overlap_cache)
            with self._lock:
                self._outlines[key] = cached
        return cached  # type: ignore[no-any-return]

    def boundary(self, level: str) -> BoundaryLevel | None:
        return next((b for b in self.boundaries if b.spec.level == level), None)

    def sources(self) -> tuple[Source, ...]:
        return self.config.sources

    def metric(self, layer: str, name: str | None) -> Metric:
        return LAYERS[layer].metric(name, self.config.sources)

    def opening_layer(self) -> str:
        """The layer a page opens on: the first (in the registry's order) holding rows.

        A city without census data does not open on an empty people layer; a city with
        no data loaded yet opens on its first layer that has sources, else the first.
        """
        for wanted in ("rows", "sources"):
            for layer in LAYERS:
                sources = self.config.sources_for(layer)
                if wanted == "sources" and sources:
                    return layer
                if any(self.health[s.name].rows_loaded for s in sources):
                    return layer
        return next(iter(LAYERS))

    def layer_stale(self, layer: str) -> bool:
        sources = self.config.sources_for(layer)
        return bool(sources) and any(self.health[s.name].is_stale() for s in sources)

    # ------------------------------------------------------------- aggregation
    def cells(self, layer: str, metric: Metric, res: int) -> pd.Series:
        """Metric value per cell at ``res`` (index: int64 cells).

        Incremental metrics (counts, sums, densities, means) add up their running
        sums over the role's sources: snapshot sources memoised per source version,
        streaming sources from their incremental totals. Other aggregations are
        recomputed over the rows.
        """
        key = (layer, metric.name, res, self.version)
        with self._lock:
            cached = self._aggregates.get(key)
            if isinstance(cached, pd.Series):
                self._aggregates.move_to_end(key)
                return cached
        if metric.aggregation.incremental:
            values = self._incremental_cells(layer, metric, res)
        else:
            values = aggregate(self.frame(layer, metric.role, metric.source, res), metric, res)
        with self._lock:
            self._aggregates[key] = values
            while len(self._aggregates) > 256:
                self._aggregates.popitem(last=False)
        return values

    def _incremental_cells(self, layer: str, metric: Metric, res: int) -> pd.Series:
        parts: list[pd.DataFrame] = []
        for source in self.config.sources:
            if source.layer != layer or source.role != metric.role or (
                    metric.source is not None and source.name != metric.source):
                continue
            totals = self._totals.get(source.name)
            if totals is not None:
                with self._lock:
                    if not totals.tracked(metric, res):
                        totals.track(metric, res, self._live[source.name].rows())
                    parts.append(totals.parts(metric, res))
                continue
            key = ("source", source.name, metric.name, res, self._source_versions[source.name])
            with self._lock:
                cached = self._aggregates.get(key)
            if isinstance(cached, pd.DataFrame):
                part = cached
            else:
                part = contribution(self.source_rows_at(source.name, res), metric, res)
                with self._lock:
                    self._aggregates[key] = part
            parts.append(part)
        parts = [p for p in parts if len(p)]
        if not parts:
            return pd.Series(dtype=float, index=pd.Index([], dtype=np.int64, name="cell"))
        summed = parts[0] if len(parts) == 1 else pd.concat(parts).groupby(level=0).sum()
        return cell_values(metric, summed.loc[summed.to_numpy().any(axis=1)])

    def cells_at(self, layer: str, metric: Metric, res: int, moment: pd.Timestamp,
                 using: ReplayStore = "auto") -> pd.Series:
        """Like :meth:`cells`, but with streaming sources as they were at ``moment``.

        ``using`` picks the history: ``auto`` reads PostgreSQL when configured and
        complete for the moment, else memory (see :func:`store.history.state_at`).
        """
        frames = []
        for source in self.config.sources:
            if source.layer != layer or source.role != metric.role or (
                    metric.source is not None and source.name != metric.source):
                continue
            live = self._live.get(source.name)
            rows = state_at(self.history_store, source.name, live, moment, using) \
                if live is not None else self.source_rows_at(source.name, res)
            if rows is not None and len(rows):
                frames.append(rows)
        if not frames:
            return pd.Series(dtype=float, index=pd.Index([], dtype=np.int64, name="cell"))
        return aggregate(pd.concat(frames, ignore_index=True), metric, res)

    def history_span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Earliest and latest city time the live history can replay."""
        spans = [s for s in (live.history_span() for live in self._live.values()) if s]
        # Not while the history is down: a connect timeout would hold up the page.
        if self.history_store is not None and self.history_store.healthy and self._live:
            try:
                stored = self.history_store.span(list(self._live))
            except HistoryError as exc:
                log.warning("history span from memory only: %s", exc)
                stored = None
            spans += [stored] if stored else []
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)


def empty_role_frame(layer: str, role_name: str) -> pd.DataFrame:
    """An empty frame with the columns a layer role's normalised rows have."""
    role = LAYERS[layer].roles[role_name]
    if role.geometry == "area":
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
            ("cell", np.int64), ("id", str), ("name", str), ("source", str), ("area_m2", float),
            ("area_km2", float), ("value", float), ("unit_area_km2", float))})
    return empty_frame(role)


def _cache_dir(config: CityConfig) -> Path:
    return config.cache.disk_directory(None if config.path is None else config.path.parent)


__all__ = ["CityData", "SourceHealth", "BoundaryLevel", "aggregate", "cells_in_view",
           "empty_role_frame", "filter_rows"]
