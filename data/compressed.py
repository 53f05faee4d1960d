"""Compressed data files: ``.gz`` and ``.zip``, recognised by extension, for every file adapter.

A city's exports often come compressed (``requests.csv.gz``, ``parcels.zip``). A file
adapter asks :func:`locate` what the file on disk holds and reads that, so every
format and every adapter built on the file adapters (``file``, ``replay``) reads
compressed files the same way:

``name.<format>.gz``
    one gzip stream; its format is the extension before ``.gz``.
``name.zip``
    a zip archive with **one data member** (side files of a Shapefile — ``.shx``,
    ``.dbf``, ``.prj`` … — and folders, ``__MACOSX/`` and hidden files do not count),
    or the member named by the source's ``member`` option. Its format is the member's
    extension.

How each reader reads it: text (CSV) streams through Python's :mod:`gzip` /
:mod:`zipfile` decompressors, never held whole; GDAL formats (GeoJSON, GeoPackage,
Shapefile) read through GDAL's own ``/vsigzip/`` and ``/vsizip/`` virtual file
systems; Parquet needs random access to its footer, so a compressed Parquet member
is decompressed into memory first.

Python's standard library already reads both containers; this module only decides
which member and which format, so it holds no decompression code of its own.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal, cast

from data.base import SourceError

Compression = Literal["gzip", "zip"]
#: Extension → container, as recognised on a source's ``path``.
COMPRESSIONS: dict[str, Compression] = {".gz": "gzip", ".zip": "zip"}
#: Files that travel beside a data file in an archive but are not data themselves.
SIDECAR_SUFFIXES = frozenset({
    ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd", ".xml", ".md",
    ".pdf", ".html", ".json-ld", ".aux", ".ovr",
})


@dataclass(frozen=True)
class DataFile:
    """What a source's file holds: the file on disk and, when compressed, how and where."""

    path: Path
    #: The format's extension, lower case (``.csv`` for ``requests.csv.gz``).
    suffix: str
    compression: Compression | None = None
    #: The archive member holding the data (zip only).
    member: str | None = None

    @property
    def compressed(self) -> bool:
        return self.compression is not None

    def gdal_path(self) -> str:
        """The path GDAL opens: the file itself, or through ``/vsigzip/`` / ``/vsizip/``."""
        if self.compression == "gzip":
            return f"/vsigzip/{self.path}"
        if self.compression == "zip":
            return f"/vsizip/{self.path}/{self.member}"
        return str(self.path)

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """The data as a binary stream, decompressed as it is read."""
        if self.compression == "gzip":
            with gzip.open(self.path, "rb") as gz:
                yield cast(IO[bytes], gz)
        elif self.compression == "zip":
            assert self.member is not None
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as stream:
                yield stream
        else:
            with self.path.open("rb") as stream:
                yield stream

    def read_bytes(self) -> io.BytesIO:
        """The whole data in memory (for formats that seek, like Parquet)."""
        with self.open() as stream:
            return io.BytesIO(stream.read())


def locate(path: Path, member: str | None = None) -> DataFile:
    """What ``path`` holds: its format and, for ``.gz`` / ``.zip``, how to reach the data.

    A zip archive must hold one data member unless ``member`` names one; otherwise a
    :class:`~data.base.SourceError` lists the members and the option to set.
    """
    compression = COMPRESSIONS.get(path.suffix.lower())
    if compression is None:
        return DataFile(path=path, suffix=path.suffix.lower())
    if compression == "gzip":
        return DataFile(path=path, suffix=Path(path.stem).suffix.lower(), compression="gzip")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{path.name} is not a zip archive: {exc}") from exc
    if member is not None:
        if member not in names:
            raise SourceError(f"{path.name} has no member {member!r}; its members are: "
                              + ", ".join(names))
        chosen = member
    else:
        data = [n for n in names if _is_data_member(n)]
        if len(data) != 1:
            what = "no data file" if not data else f"{len(data)} data files"
            raise SourceError(f"{path.name} holds {what} ({', '.join(data or names) or 'empty'});"
                              " name the one to read with member = \"…\"")
        chosen = data[0]
    return DataFile(path=path, suffix=PurePosixPath(chosen).suffix.lower(), compression="zip",
                    member=chosen)


def _is_data_member(name: str) -> bool:
    member = PurePosixPath(name)
    if member.parts and member.parts[0] == "__MACOSX":
        return False
    return not member.name.startswith(".") and member.suffix.lower() not in SIDECAR_SUFFIXES


__all__ = ["COMPRESSIONS", "Compression", "DataFile", "SIDECAR_SUFFIXES", "locate"]
