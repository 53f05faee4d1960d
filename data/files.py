"""File adapters: CSV, GeoJSON, GeoPackage, Shapefile and (Geo)Parquet.

Reading goes through pandas / geopandas (pyogrio); nothing here parses a format by
hand. A file source re-reads itself when the file changes on disk, so a city can
drop a new export in place and the layer follows. Every adapter here reads its
format compressed too (``.gz``, or a ``.zip`` with one data member or the one named
by ``member``): see :mod:`data.compressed`.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from config.columns import check_file_source
from config.kit import ConfigError
from data.base import AdapterBase, Batch, SourceError, empty_frame, normalise
from data.compressed import DataFile, locate
from data.csvread import read_csv
from data.validate import DeadLetter
from geo.crs import CHINA_DATUMS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from config.city import Source

log = logging.getLogger(__name__)


@dataclass
class ReadNotes:
    """What one read of a file found besides its rows."""

    rejected: Counter[str] = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: The data stop mid-record (a file still being written).
    truncated: bool = False


class FileSource(AdapterBase):
    """The hooks of every adapter that reads one file (files, replay, simulator): an
    archive's ``member`` is checked, and the file and its mapped columns at load."""

    required_options: ClassVar[frozenset[str]] = frozenset({"path"})

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        check_member(where, options)

    @classmethod
    def check_source(cls, where: str, source: Source) -> None:
        """The file exists and has the mapped columns (see :mod:`config.columns`)."""
        check_file_source(where, source)


class FileAdapter(FileSource):
    """Shared behaviour: resolve the path, read, normalise, re-read on change."""

    options: ClassVar[frozenset[str]] = frozenset({"path", "member"})

    def _read(self, data: DataFile, notes: ReadNotes) -> pd.DataFrame:
        raise NotImplementedError

    def snapshot(self) -> Batch:
        """Read the whole file; a file caught mid-write is not taken (see :meth:`_unsettled`)."""
        path = self.source.path()
        try:  # the message the config check gives at start-up, at every read
            check_file_source(f"[[sources]] {self.source.name!r}", self.source)
        except ConfigError as exc:
            raise SourceError(str(exc)) from None
        notes = ReadNotes()
        member = self.source.options.get("member")
        before = path.stat()
        try:
            raw = self._read(locate(path, None if member is None else str(member)), notes)
        except SourceError:
            raise
        except Exception as exc:  # any reader failure: say which file and why
            raise SourceError(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from exc
        after = path.stat() if path.exists() else None
        unsettled = self._unsettled(path.name, before, after, notes)
        if unsettled is not None:
            log.warning("source %s: %s", self.source.name, unsettled)
            # Keep what the store holds; the next round reads the file again (cursor None).
            return Batch(frame=empty_frame(self.role), replace=False, cursor=None,  # not the truth
                         warnings=(unsettled,))
        batch = self.normalise(raw)
        batch.rejected.update(notes.rejected)
        batch.dead_letters[:0] = notes.dead_letters
        warnings = list(batch.warnings)
        if not len(raw):
            warnings.append(f"{path.name} holds no rows (only a header, or nothing)")
        if self._good_size is not None and before.st_size < self._good_size:
            warnings.append(f"{path.name} shrank from {self._good_size} to {before.st_size} bytes")
        self._good_size = before.st_size
        batch.warnings = tuple(warnings)
        batch.cursor = before.st_mtime_ns
        return batch

    _good_size: int | None = None

    def complete_snapshot(self) -> Batch:
        """:meth:`snapshot`, but a file caught mid-write is a :class:`SourceError` (for
        readers that load a file once, like replays: they try again at the next read)."""
        batch = self.snapshot()
        if not batch.replace:
            raise SourceError(batch.warnings[0] if batch.warnings else "file not readable yet")
        return batch

    @staticmethod
    def _unsettled(name: str, before: os.stat_result, after: os.stat_result | None,
                   notes: ReadNotes) -> str | None:
        """Why this read is not the file's truth (changing, gone, or cut off), or None."""
        if after is None:
            return f"{name} vanished while being read; keeping the last good version"
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            return (f"{name} changed while being read ({before.st_size} → {after.st_size} "
                    "bytes): still being written; keeping the last good version")
        if notes.truncated:
            return (f"{name} ends mid-record (half-written?); keeping the last good version "
                    "until a complete one is readable")
        return None

    def normalise(self, raw: pd.DataFrame) -> Batch:
        """Normalise; point geometries in a file that declares its CRS are reprojected first.

        A GeoPackage, Shapefile (.prj) or GeoParquet says what its coordinates are, so a
        point source needs no ``crs`` key, as an area source needs none. GCJ-02 and BD-09
        have no code a file could declare: for those the config's ``crs`` still applies.
        """
        source = self.source
        if self.role.geometry == "point" and _reads_file_geometry(raw, source):
            raw = raw.to_crs("EPSG:4326")  # type: ignore[attr-defined]
            source = replace(source, crs="EPSG:4326")
        return normalise(raw, source, self.role, self.context, versions_supersede=self.streaming)

    def updates(self, since: Any) -> Batch:
        """A full re-read when the file changed since the cursor, else nothing."""
        path = self.source.path()
        if not path.exists():  # reported at every round, never as healthy; data kept
            raise SourceError(f"{path.name} is missing ({path}); keeping the last good version")
        if path.stat().st_mtime_ns != since:
            return self.snapshot()
        return super().updates(since)


def check_member(where: str, options: Mapping[str, Any]) -> None:
    """``member`` names a file inside a ``.zip`` path; anywhere else it is a mistake."""
    if "member" not in options:
        return
    member = options["member"]
    if not isinstance(member, str) or not member.strip():
        raise ConfigError(f"{where}.member: expected the name of a file inside the zip archive")
    if not str(options.get("path", "")).lower().endswith(".zip"):
        raise ConfigError(f"{where}.member: only a .zip path has members; remove member "
                          "or point path at the archive")


def _reads_file_geometry(raw: pd.DataFrame, source: Source) -> bool:
    """True when points come from the frame's own geometry in a CRS the file declared."""
    import geopandas as gpd

    if not isinstance(raw, gpd.GeoDataFrame) or raw.crs is None or "geometry" not in raw.columns:
        return False
    if source.crs.upper() in CHINA_DATUMS:
        return False
    # The normaliser reads mapped lat/lon columns when the file has them, not the geometry.
    fields = source.fields
    return fields.get("lat", "lat") not in raw.columns or fields.get("lon", "lon") not in raw.columns


class CsvAdapter(FileAdapter):
    """Delimited text; every malformed line is counted with its reason (see :mod:`data.csvread`)."""

    name = "csv"
    options = frozenset({"path", "member", "encoding", "delimiter"})

    def _read(self, data: DataFile, notes: ReadNotes) -> pd.DataFrame:
        with data.open() as stream:  # decompressed as it is read
            read = read_csv(stream, encoding=str(self.source.options.get("encoding", "utf-8")),
                            delimiter=str(self.source.options.get("delimiter", ",")))
        notes.rejected.update(read.rejected)
        notes.dead_letters.extend(read.dead_letters)
        notes.truncated = read.truncated
        return read.frame


class GeoFileAdapter(FileAdapter):
    """Anything GDAL reads through pyogrio: GeoJSON, GeoPackage, Shapefile …"""

    name = "geojson"
    options = frozenset({"path", "member", "layer_name", "encoding"})

    def _read(self, data: DataFile, notes: ReadNotes) -> pd.DataFrame:
        import geopandas as gpd

        kwargs: dict[str, Any] = {"engine": "pyogrio"}
        if "layer_name" in self.source.options:
            kwargs["layer"] = self.source.options["layer_name"]
        if "encoding" in self.source.options:
            kwargs["encoding"] = self.source.options["encoding"]
        frame = gpd.read_file(data.gdal_path(), **kwargs)
        if frame.crs is None:
            frame = frame.set_crs(self.source.crs if self.source.crs[:4].upper() == "EPSG"
                                  else "EPSG:4326")
        return frame


class ParquetAdapter(FileAdapter):
    """Parquet, and GeoParquet when the file carries geo metadata."""

    name = "parquet"

    def _read(self, data: DataFile, notes: ReadNotes) -> pd.DataFrame:
        import pyarrow.parquet as pq

        # Parquet seeks to its footer: a compressed file is decompressed into memory.
        source: Path | io.BytesIO = data.read_bytes() if data.compressed else data.path
        metadata = pq.read_schema(source).metadata or {}
        if isinstance(source, io.BytesIO):
            source.seek(0)
        if b"geo" in metadata:
            import geopandas as gpd

            return gpd.read_parquet(source)
        return pd.read_parquet(source)


class AnyFileAdapter(FileAdapter):
    """Picks the reader from the file extension (inside ``.gz`` / ``.zip``: the data's own)."""

    name = "file"
    options = frozenset({"path", "member", "layer_name", "encoding", "delimiter"})

    def _read(self, data: DataFile, notes: ReadNotes) -> pd.DataFrame:
        suffix = data.suffix
        reader: type[FileAdapter]
        if suffix in (".csv", ".tsv", ".txt"):
            reader = CsvAdapter
        elif suffix in (".parquet", ".geoparquet", ".pq"):
            reader = ParquetAdapter
        else:
            reader = GeoFileAdapter
        return reader._read(self, data, notes)  # type: ignore[arg-type]
