"""Files a config names, checked when it loads: each exists and has the columns named.

Sources (through their adapter's ``check_source`` hook) and boundary levels both
use it.

Only the file's header is read (a Parquet schema, a CSV's first line, a GDAL layer's
field list), so the check costs milliseconds however large the file. Formats whose
header cannot be read that cheaply are left to the first read, whose message names
the same missing columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.kit import ConfigError

if TYPE_CHECKING:
    from config.city import Boundary, Source

#: How many of a file's columns a message lists.
SHOWN_COLUMNS = 40
_PARQUET = (".parquet", ".geoparquet", ".pq")
_TEXT = (".csv", ".tsv", ".txt")
_GDAL = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".gml", ".kml")


def file_columns(path: Path, options: Mapping[str, Any] | None = None) -> list[str] | None:
    """The column names of ``path`` (``geometry`` included when it has one), or None
    when its format's header cannot be read without reading the file."""
    options = options or {}
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if suffix in _TEXT:
        import pandas as pd

        header = pd.read_csv(path, nrows=0, sep=str(options.get("delimiter", ",")),
                             encoding=str(options.get("encoding", "utf-8")),
                             encoding_errors="replace")
        return [str(c) for c in header.columns]
    if suffix in _GDAL:
        import pyogrio

        layer = options.get("layer_name")
        info = pyogrio.read_info(path, layer=layer) if layer is not None else pyogrio.read_info(path)
        names = [str(f) for f in info["fields"]]
        return names + (["geometry"] if info.get("geometry_type") else [])
    return None


def check_file_source(where: str, source: Source, key: str = "path") -> None:
    """Refuse a file source whose file is missing or lacks a mapped column.

    ``where`` names the source (``[[sources]] 'stops'``). The message names the
    config key to fix and what the file does have, e.g. ``[[sources]] 'stops'.lat: no
    column 'latitude' in stops.csv; its columns are: id, lat, lon``.
    """
    path = source.path(key)
    if not path.is_file():
        raise ConfigError(f"{where}.{key}: file not found: {path} (paths are relative to the "
                          f"config file's folder {source.base_dir})")
    try:
        columns = file_columns(path, source.options)
    except Exception as exc:  # an unreadable header: the file is not what its name says
        raise ConfigError(f"{where}.{key}: cannot read {path.name}: "
                          f"{type(exc).__name__}: {exc}") from exc
    if columns is None:
        return
    present = set(columns)
    points_from_geometry = "geometry" in present
    for field_name, column in source.fields.items():
        if column in present:
            continue
        if field_name in ("lat", "lon") and points_from_geometry:
            continue  # point positions come from the file's own geometry
        raise ConfigError(f"{where}.{field_name}: no column {column!r} in {path.name}; "
                          f"its columns are: {_listed(columns)}")
    for column in source.where:
        if column not in present:
            raise ConfigError(f"{where}.where: no column {column!r} in {path.name}; "
                              f"its columns are: {_listed(columns)}")


def check_boundary_file(where: str, spec: Boundary) -> None:
    """Refuse a boundary level whose file is missing or lacks its name, id or parent field."""
    if not spec.path.is_file():
        raise ConfigError(f"{where}.path: file not found: {spec.path} (paths are relative to "
                          f"the config file's folder)")
    try:
        columns = file_columns(spec.path)
    except Exception as exc:
        raise ConfigError(f"{where}.path: cannot read {spec.path.name}: "
                          f"{type(exc).__name__}: {exc}") from exc
    if columns is None:
        return
    for key in ("name_field", "id_field", "parent_field"):
        column = getattr(spec, key)
        if column is not None and column not in columns:
            raise ConfigError(f"{where}.{key}: no field {column!r} in {spec.path.name}; "
                              f"its fields are: {_listed(columns)}")


def _listed(columns: list[str]) -> str:
    shown = ", ".join(columns[:SHOWN_COLUMNS])
    return shown + (f" … ({len(columns)} in all)" if len(columns) > SHOWN_COLUMNS else "")


__all__ = ["SHOWN_COLUMNS", "check_boundary_file", "check_file_source", "file_columns"]
