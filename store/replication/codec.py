"""The wire format of the shared live state: frames as Arrow IPC, small values as tagged JSON.

Everything a worker puts in Redis for the others (log entries, checkpoints) goes
through here, so what one process writes another reads back with the same dtypes.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd


def encode_frame(frame: pd.DataFrame) -> bytes:
    """A normalised frame as compressed Arrow IPC bytes (areas: geometry as WKB).

    The pandas dtypes travel in the schema metadata, so :func:`decode_frame`
    restores them (missing values in object columns come back as ``None``).
    """
    import pyarrow as pa
    import shapely

    geometry = None
    crs = None
    plain = pd.DataFrame(frame)
    if isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame.columns:
        geometry = str(frame.geometry.name)
        crs = None if frame.crs is None else frame.crs.to_string()
        plain[geometry] = shapely.to_wkb(np.asarray(frame.geometry.values))
    dtypes = {str(c): str(frame[c].dtype) for c in frame.columns if str(c) != geometry}
    table = pa.Table.from_pandas(plain, preserve_index=False)
    meta = json.dumps({"dtypes": dtypes, "geometry": geometry, "crs": crs}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"citybrain": meta})
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_frame(payload: bytes) -> pd.DataFrame:
    """The frame :func:`encode_frame` wrote (a GeoDataFrame when it had geometry)."""
    import pyarrow as pa

    table = pa.ipc.open_stream(payload).read_all()
    meta = json.loads((table.schema.metadata or {}).get(b"citybrain", b"{}"))
    frame = table.to_pandas()
    for column, dtype in meta.get("dtypes", {}).items():
        if column in frame.columns and str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    geometry = meta.get("geometry")
    if geometry:
        frame[geometry] = gpd.GeoSeries.from_wkb(frame[geometry].to_numpy(), crs=meta.get("crs"))
        frame = gpd.GeoDataFrame(frame, geometry=geometry, crs=meta.get("crs"))
    return frame


def to_json(value: Any) -> Any:
    """A cursor (or any small value) as JSON, tagging the types JSON lacks."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, pd.Timestamp):
        return {"$timestamp": value.isoformat()}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [to_json(v) for v in value]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {"$map": {k: to_json(v) for k, v in value.items()}}
    raise TypeError(f"cannot share a value of type {type(value).__name__}")


def from_json(value: Any) -> Any:
    """The value :func:`to_json` tagged, with its type restored."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    (tag, inner), = value.items()
    if tag == "$timestamp":
        return pd.Timestamp(inner)
    if tag == "$datetime":
        return datetime.fromisoformat(inner)
    if tag == "$date":
        return date.fromisoformat(inner)
    if tag == "$decimal":
        return decimal.Decimal(inner)
    if tag == "$tuple":
        return tuple(from_json(v) for v in inner)
    return {k: from_json(v) for k, v in inner.items()}
