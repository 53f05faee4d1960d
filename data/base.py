"""The adapter base (the default of every hook in :mod:`data.hooks`), and the one
normalisation every adapter's rows go through.

An adapter knows how to *read* a kind of system (a file, a database, a broker, an
HTTP API) and returns raw rows; :func:`normalise` turns those rows into the one
frame the rest of citybrain reads, whatever the source:

point roles
    ``id`` (str), ``time`` (UTC, NaT when the source has none), ``lat``/``lon``
    (WGS84 float64), ``cell`` (H3 int64 at the city's base resolution), ``source``
    (str), then the role's attribute columns under their normalised names, and
    ``cell_<res>`` at every other resolution the city serves
    (``AdapterContext.resolutions``): the cell ``latLngToCell`` gives the point
    there, which is not always its base cell's parent (see :mod:`geo.exact`).
observations (roles with an ``entity`` field, e.g. ``things/readings``)
    as point roles, plus ``entity`` (str); without an ``id`` mapping a row's id is
    ``<entity>@<time>`` (every observation kept). With an ``entity_source`` a row
    may lack coordinates (``lat``/``lon`` NaN, ``cell`` and ``cell_<res>`` 0): the
    store locates it by its entity (:mod:`store.entities`).
area roles
    ``id``, ``name``, ``value`` (float), ``geometry`` (WGS84 shapely), ``cell`` (of
    a representative point), ``source``.

Rows that cannot be placed or timed are not guessed at: they are dropped and
counted under a reason (``missing coordinates``, ``unparseable time`` …) that
``/api/health`` reports.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from config.clock import CityClock
from config.plausible import PlausibleTimes
from data.validate import DeadLetter, dead_letter, parse_times, read_times, to_numbers
from geo.crs import to_wgs84
from geo.exact import cell_column, index_exact
from geo.hexes import index_points, parents

if TYPE_CHECKING:
    from config.city import Source
    from layers.base import Role

log = logging.getLogger(__name__)

POINT_COLUMNS = ("id", "time", "lat", "lon", "cell", "source")
AREA_COLUMNS = ("id", "name", "value", "geometry", "cell", "source")


class SourceError(RuntimeError):
    """A source cannot be read at all (file missing, service down, column absent)."""


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter needs to know about the city it serves."""

    base_res: int = 10
    #: Further resolutions each point is indexed at (the ones the city serves), as
    #: columns ``cell_<res>`` beside ``cell``: exact cells, not the base cell's parents.
    resolutions: tuple[int, ...] = ()
    timezone: str = "UTC"
    #: The city clock; replays and simulators run on it (see config.clock).
    clock: CityClock = field(default_factory=CityClock)
    #: Row times outside this range are rejected (a source's own range wins).
    plausible_times: PlausibleTimes = field(default_factory=PlausibleTimes)


@dataclass
class Batch:
    """Normalised rows from one read, with the rejected rows counted by reason.

    ``replace`` says the frame is the source's whole current state (a re-read
    snapshot); otherwise it holds only new rows to append. ``cursor`` is what to
    pass to the next ``updates(since=…)``.
    """

    frame: pd.DataFrame
    rejected: Counter[str] = field(default_factory=Counter)
    replace: bool = True
    cursor: Any = None
    warnings: tuple[str, ...] = ()
    #: The last rejected rows of this read with their reason and raw value (bounded).
    dead_letters: list[DeadLetter] = field(default_factory=list)


#: Dead letters one read keeps (the counts by reason cover every rejection).
DEAD_LETTERS_PER_BATCH = 100


class AdapterBase:
    """Shared plumbing for adapters, and the default of every hook in :mod:`data.hooks`.

    An adapter derives from it and overrides what differs: at least ``name`` and
    :meth:`snapshot`; ``options`` and friends when it reads any.
    """

    name: ClassVar[str] = ""
    options: ClassVar[frozenset[str]] = frozenset()
    required_options: ClassVar[frozenset[str]] = frozenset()
    default_fields: ClassVar[Mapping[str, str]] = MappingProxyType({})
    streaming: ClassVar[bool] = False
    process_local_cursor: ClassVar[bool] = False

    def __init__(self, source: Source, context: AdapterContext) -> None:
        from layers import LAYERS

        self.context = context
        self.role = LAYERS[source.layer].roles[source.role]
        defaults = {k: v for k, v in self.default_fields.items() if k in self.role.field_names()}
        # The configured mapping wins; normalise reads the merged one.
        self.source = replace(source, fields={**defaults, **source.fields}) if defaults else source

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Default: the options need no check beyond their keys."""
        return None

    @classmethod
    def check_source(cls, where: str, source: Source) -> None:
        """Default: nothing to check beyond the options."""
        return None

    def snapshot(self) -> Batch:
        raise NotImplementedError

    def normalise(self, raw: pd.DataFrame) -> Batch:
        # In a stream, a repeated id is a newer version (a device's next report), not
        # a bad row: the last one wins without being counted as a rejection.
        return normalise(raw, self.source, self.role, self.context,
                         versions_supersede=self.streaming)

    def updates(self, since: Any) -> Batch:
        """Default for snapshot sources: nothing new until re-read."""
        return Batch(frame=empty_frame(self.role), replace=False, cursor=since)

    def close(self) -> None:
        return None


def empty_frame(role: Role) -> pd.DataFrame:
    """A zero-row frame with the normalised columns of ``role``."""
    if role.geometry == "area":
        import geopandas as gpd

        return gpd.GeoDataFrame(
            {"id": pd.Series(dtype=str), "name": pd.Series(dtype=str),
             "value": pd.Series(dtype=float), "cell": pd.Series(dtype=np.int64),
             "source": pd.Series(dtype=str)},
            geometry=gpd.GeoSeries([], crs="EPSG:4326"),
        )
    frame = pd.DataFrame({
        "id": pd.Series(dtype=str),
        "time": pd.Series(dtype="datetime64[ns, UTC]"),
        "lat": pd.Series(dtype=float),
        "lon": pd.Series(dtype=float),
        "cell": pd.Series(dtype=np.int64),
        "source": pd.Series(dtype=str),
    })
    for attr in role.fields:
        frame[attr.name] = _empty_series(attr.kind)
    return frame if role.derive is None else role.derive(frame)


def _empty_series(kind: str) -> pd.Series:
    if kind == "float":
        return pd.Series(dtype=float)
    if kind == "time":
        return pd.Series(dtype="datetime64[ns, UTC]")
    return pd.Series(dtype=object)


def _blank(series: pd.Series) -> pd.Series:
    """True where a raw value is missing: null, NaN or an empty/whitespace string."""
    as_text = series.astype("string")
    return series.isna() | as_text.str.strip().fillna("").eq("")


def _missing_columns(raw: pd.DataFrame, mapping: Mapping[str, str], needed: tuple[str, ...]) -> None:
    missing = [mapping[k] for k in needed if k in mapping and mapping[k] not in raw.columns]
    if missing:
        raise SourceError(
            f"missing column(s) {', '.join(map(repr, missing))}; the source has: "
            + ", ".join(map(str, raw.columns[:40]))
        )


def apply_where(raw: pd.DataFrame, source: Source) -> pd.DataFrame:
    """Keep rows whose ``where`` columns hold one of the configured values."""
    if not source.where:
        return raw
    _missing_columns(raw, {k: k for k in source.where}, tuple(source.where))
    keep = np.ones(len(raw), dtype=bool)
    for column, values in source.where.items():
        keep &= raw[column].astype("string").isin([str(v) for v in values]).fillna(False).to_numpy()
    return raw.loc[keep]


def normalise(raw: pd.DataFrame, source: Source, role: Role, context: AdapterContext,
              versions_supersede: bool = False) -> Batch:
    """Raw rows in, the normalised frame and counted rejections out (see module docs).

    Repeated ids keep the last row; they count as ``duplicate id`` rejections unless
    ``versions_supersede`` (streams, where a repeat is simply a newer version).
    """
    raw = apply_where(raw, source)
    if role.geometry == "area":
        return _normalise_areas(raw, source, role, context)
    if "cell" in source.fields:
        return _normalise_cells(raw, source, role, context, versions_supersede)
    return _normalise_points(raw, source, role, context, versions_supersede)


def _normalise_cells(raw: pd.DataFrame, source: Source, role: Role, context: AdapterContext,
                     versions_supersede: bool) -> Batch:
    """Rows placed by an H3 cell id column (see :mod:`data.cells`), then as points.

    Each row is put on its base-resolution cell through cell ids and given that cell's
    centre as its position, so the point normalisation places it in that very cell.
    """
    from data.cells import MAX_SPREAD_LEVELS, parse_cells, place_on_base, too_coarse

    fields = source.fields
    _missing_columns(raw, fields, ("cell", "id", "weight"))
    raw = raw.reset_index(drop=True)
    cells, why = parse_cells(raw[fields["cell"]])
    coarse = too_coarse(cells, context.base_res) & why.isna().to_numpy()
    why[coarse] = f"H3 cell coarser than res {context.base_res - MAX_SPREAD_LEVELS}"
    rejected: Counter[str] = Counter(why.dropna().value_counts().to_dict())
    keep = why.isna().to_numpy()
    rows = raw.loc[keep].reset_index(drop=True)
    ids = rows[fields["id"]] if "id" in fields else pd.Series(
        [f"{source.name}:{i}" for i in np.flatnonzero(keep)], dtype="string")
    weight = rows[fields["weight"]] if "weight" in fields else pd.Series(1.0, index=rows.index)
    rows = rows.assign(_id=ids.astype("string").str.strip().str.replace(r"\.0$", "", regex=True),
                       _weight=weight)
    shared = [fields[f.name] for f in role.fields
              if f.kind == "float" and fields.get(f.name) in rows.columns]
    placed = place_on_base(rows, cells[keep], context.base_res, shared)
    as_points = replace(source, crs="EPSG:4326", fields={
        **{k: v for k, v in fields.items() if k != "cell"},
        "id": "_id", "lat": "_lat", "lon": "_lon", "weight": "_weight"})
    batch = _normalise_points(placed.drop(columns=["_cell"]), as_points, role, context,
                              versions_supersede)
    # Coarser cells are the ancestors of each row's cell, not where its centre falls:
    # the input's own hierarchy, as the engine that aggregated it counts.
    frame = batch.frame
    base = frame["cell"].to_numpy(dtype=np.int64)
    for res in context.resolutions:
        if cell_column(res) in frame and res <= context.base_res:
            frame[cell_column(res)] = parents(base, res)
    batch.rejected.update(rejected)
    return batch


def _normalise_points(raw: pd.DataFrame, source: Source, role: Role,
                      context: AdapterContext, versions_supersede: bool = False) -> Batch:
    fields = source.fields
    rejected: Counter[str] = Counter()
    warnings: list[str] = []
    lat_col, lon_col = fields.get("lat", "lat"), fields.get("lon", "lon")
    # Observations of an entity source may come without coordinates: the store gives
    # them their entity's location (store.entities.locate).
    located_by_entity = role.observations and source.entity_source is not None
    has_geometry = "geometry" in raw.columns and (lat_col not in raw or lon_col not in raw)
    if located_by_entity and not has_geometry and (lat_col not in raw or lon_col not in raw):
        raw = raw.assign(**{lat_col: np.nan, lon_col: np.nan})
    if not has_geometry:
        _missing_columns(raw, {"lat": lat_col, "lon": lon_col}, ("lat", "lon"))
    _missing_columns(raw, fields, ("time", "id"))
    raw = raw.reset_index(drop=True)
    n = len(raw)
    reason = pd.Series(pd.NA, index=raw.index, dtype="string")

    def reject(mask: pd.Series | np.ndarray, why: str) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool), index=raw.index) & reason.isna()
        reason[mask] = why

    if has_geometry:
        geoms = raw["geometry"]
        xs = np.array([g.x if g is not None and not g.is_empty and g.geom_type == "Point" else np.nan
                       for g in geoms], dtype=float)
        ys = np.array([g.y if g is not None and not g.is_empty and g.geom_type == "Point" else np.nan
                       for g in geoms], dtype=float)
        reject(np.isnan(xs) | np.isnan(ys), "missing coordinates")
    else:
        blank = _blank(raw[lat_col]) | _blank(raw[lon_col])
        unplaced = blank.to_numpy(dtype=bool) if located_by_entity else np.zeros(n, dtype=bool)
        reject(blank & ~unplaced, "missing coordinates")
        xs, x_wrong = to_numbers(raw[lon_col])
        ys, y_wrong = to_numbers(raw[lat_col])
        reject(x_wrong | y_wrong, "coordinates not numbers")
        reject((np.isnan(xs) | np.isnan(ys)) & ~unplaced, "unparseable coordinates")
    if has_geometry:
        unplaced = np.zeros(n, dtype=bool)
    reject((~np.isfinite(xs) | ~np.isfinite(ys)) & ~unplaced, "unparseable coordinates")
    # Zeros are an export's placeholder for "no position" in any CRS; converted from a
    # projected or BD-09 source they would land somewhere plausible, so check them raw.
    reject((np.abs(xs) < 1e-9) & (np.abs(ys) < 1e-9), "coordinates at (0, 0)")
    with np.errstate(invalid="ignore"):
        lon, lat = to_wgs84(xs, ys, source.crs)
        reject(((lat < -90) | (lat > 90) | (lon < -180) | (lon > 180) | ~np.isfinite(lat)
                | ~np.isfinite(lon)) & ~unplaced, "coordinates out of range")
    reject((np.abs(lat) < 1e-9) & (np.abs(lon) < 1e-9), "coordinates at (0, 0)")

    plausible = (source.plausible_times or context.plausible_times).bounds(context.clock.now())
    if "time" in fields:
        time, beyond = read_times(raw[fields["time"]], context.timezone)
        blank_time = _blank(raw[fields["time"]])
        reject(blank_time, "missing time")
        implausible = beyond | (time.notna() & ((time < plausible[0]) | (time > plausible[1])))
        reject(implausible, "implausible time")
        reject(time.isna() & ~blank_time, "unparseable time")
        time = time.where(~implausible)
    else:
        time = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")

    entity = None
    if role.observations and "entity" in fields:
        entity = raw[fields["entity"]].astype("string").str.strip().str.replace(
            r"\.0$", "", regex=True)
        reject(entity.isna() | entity.eq(""), "missing entity")
    if "id" in fields:
        ids = raw[fields["id"]].astype("string").str.strip()
        ids = ids.str.replace(r"\.0$", "", regex=True)
        reject(ids.isna() | ids.eq(""), "missing id")
    elif entity is not None:
        # One observation per (entity, time): a repeat is a correction, not a new reading.
        stamp = time.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype("string")
        ids = (entity.fillna("") + "@" + stamp.fillna("")).astype("string")
    else:
        ids = pd.Series([f"{source.name}:{i}" for i in range(n)], index=raw.index, dtype="string")

    out = pd.DataFrame({"id": ids, "time": time, "lat": lat, "lon": lon}, index=raw.index)
    out["name"] = raw[fields["label"]].astype("string") if fields.get("label") in raw else pd.NA
    for attr in role.fields:
        column = fields.get(attr.name)
        if column is None:
            out[attr.name] = _empty_series(attr.kind).reindex(raw.index)
            continue
        if column not in raw.columns:
            warnings.append(f"column {column!r} for {attr.name!r} is absent; left empty")
            out[attr.name] = _empty_series(attr.kind).reindex(raw.index)
            continue
        values = raw[column]
        if attr.kind == "float":
            numbers, wrong = to_numbers(values)
            reject(wrong, f"{attr.name} not a number")
            out[attr.name] = pd.Series(numbers, index=raw.index)
        elif attr.kind == "time":
            parsed = parse_times(values, context.timezone)
            reject(parsed.isna() & ~_blank(values), f"unparseable {attr.name}")
            out[attr.name] = parsed
        elif attr.name == "entity" and entity is not None:
            out[attr.name] = entity.where(entity.ne(""), pd.NA)
        else:
            text = values.astype("string").str.strip()
            out[attr.name] = text.where(text.ne(""), pd.NA)

    if "weight" in fields:
        # How many records the row stands for (data aggregated elsewhere); counts sum it.
        numbers, wrong = to_numbers(raw[fields["weight"]])
        weight = pd.Series(numbers, index=raw.index)
        reject(wrong | weight.isna() | (weight < 0) | ~np.isfinite(numbers), "unparseable weight")
        out["weight"] = weight.astype(float)

    keep = reason.isna().to_numpy()
    rejected.update(reason[~keep].value_counts().to_dict())
    dead = dead_letters(raw, reason)
    out = out.loc[keep]
    duplicated = out["id"].duplicated(keep="last").to_numpy()
    if duplicated.any():
        if not versions_supersede:
            rejected["duplicate id"] += int(duplicated.sum())
        out = out.loc[~duplicated]
    out = out.reset_index(drop=True)
    placed = np.isfinite(out["lat"].to_numpy(dtype=float))
    located = index_exact(out["lat"].to_numpy(dtype=float)[placed],
                          out["lon"].to_numpy(dtype=float)[placed],
                          {context.base_res, *context.resolutions})
    cells = {}
    for res, found in located.items():
        cells[res] = np.zeros(len(out), dtype=np.int64)  # 0: to be located by the entity source
        cells[res][placed] = found
    out.insert(4, "cell", cells.pop(context.base_res))
    out.insert(5, "source", source.name)
    for res in sorted(cells):
        out[cell_column(res)] = cells[res]
    out["id"] = out["id"].astype(str)
    out["source"] = out["source"].astype(str)
    if role.derive is not None:
        out = role.derive(out)
    if rejected:
        log.info("source %s: rejected %s", source.name, dict(rejected))
    return Batch(frame=out, rejected=rejected, replace=True, warnings=tuple(warnings),
                 dead_letters=dead)


def dead_letters(raw: pd.DataFrame, reason: pd.Series) -> list[DeadLetter]:
    """The last :data:`DEAD_LETTERS_PER_BATCH` rejected rows, each as its raw column values."""
    failed = np.flatnonzero(reason.notna().to_numpy())[-DEAD_LETTERS_PER_BATCH:]
    columns = [str(c) for c in raw.columns if not str(c).startswith("_")]
    return [dead_letter(str(reason.iloc[i]), {c: raw.iloc[i][c] for c in columns}) for i in failed]


def _normalise_areas(raw: pd.DataFrame, source: Source, role: Role,
                     context: AdapterContext) -> Batch:
    import geopandas as gpd
    import shapely

    fields = source.fields
    rejected: Counter[str] = Counter()
    geometry_column = fields.get("geometry", "geometry")
    _missing_columns(raw, {"geometry": geometry_column, **fields}, tuple(fields) + ("geometry",))
    geoms = raw[geometry_column]
    if not isinstance(geoms, gpd.GeoSeries):
        # WKT text (CSV sources) or shapely objects.
        geoms = gpd.GeoSeries(
            [shapely.from_wkt(g, on_invalid="ignore") if isinstance(g, str) else g for g in geoms],
            index=raw.index, crs=None,
        )
    frame = gpd.GeoDataFrame(raw.drop(columns=[geometry_column]), geometry=geoms.values,
                             crs=geoms.crs)
    if frame.crs is None:
        frame = frame.set_crs(source.crs if source.crs.upper() not in ("GCJ-02", "BD-09")
                              else "EPSG:4326")
    if source.crs.upper() in ("GCJ-02", "BD-09"):
        frame = frame.set_geometry(shapely.transform(
            frame.geometry.values,
            lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], source.crs))))
    frame = frame.to_crs("EPSG:4326")
    empty = frame.geometry.isna() | frame.geometry.is_empty
    rejected["missing geometry"] += int(empty.sum())
    frame = frame.loc[~empty]
    invalid = ~frame.geometry.is_valid
    if invalid.any():
        frame.loc[invalid, "geometry"] = frame.geometry[invalid].make_valid()
    polygonal = frame.geometry.geom_type.isin(["Polygon", "MultiPolygon", "GeometryCollection"])
    rejected["not a polygon"] += int((~polygonal).sum())
    frame = frame.loc[polygonal]
    if "value" in fields:
        value = pd.to_numeric(frame[fields["value"]], errors="coerce")
        bad = value.isna()
        rejected["unparseable value"] += int(bad.sum())
        frame, value = frame.loc[~bad], value[~bad]
    else:
        value = pd.Series(np.nan, index=frame.index)
    ids = (frame[fields["id"]].astype("string") if "id" in fields
           else pd.Series([f"{source.name}:{i}" for i in range(len(frame))], index=frame.index))
    names = frame[fields["label"]].astype("string") if "label" in fields else ids
    points = frame.geometry.representative_point()
    out = gpd.GeoDataFrame(
        {"id": ids.astype(str).to_numpy(), "name": names.astype(str).to_numpy(),
         "value": value.astype(float).to_numpy(),
         "cell": index_points(points.y.to_numpy(), points.x.to_numpy(), context.base_res),
         "source": source.name},
        geometry=frame.geometry.to_numpy(), crs="EPSG:4326",
    )
    rejected = Counter({k: v for k, v in rejected.items() if v})
    return Batch(frame=out.reset_index(drop=True), rejected=rejected, replace=True)
