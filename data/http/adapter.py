"""What every HTTP adapter shares: flat rows from JSON records, GeoJSON points, the base class.

The source's field mapping names keys of the flat rows: nested objects become
dotted keys (``properties.owner``, ``extended_attributes.channel``). Every
adapter brings a default mapping (its class's ``default_fields`` hook, applied by
:class:`~data.base.AdapterBase`), so a
source needs no more than its ``endpoint``; keys set in the config win.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from config.city import ConfigError
from data.base import AdapterBase, AdapterContext, Batch, empty_frame
from data.http.client import HttpClient

if TYPE_CHECKING:
    from config.city import Source


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys: ``{"properties": {"owner": "x"}}`` → ``properties.owner``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def point_of(geometry: Any) -> tuple[float, float] | str | None:
    """(lon, lat) of a GeoJSON Point, or of a Feature holding one.

    GeoJSON orders positions [longitude, latitude(, elevation)] (RFC 7946, 3.1.1).
    Returns None when there is no geometry and a rejection reason when there is one
    that is not a point.
    """
    if isinstance(geometry, Mapping) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if geometry is None:
        return None
    if not isinstance(geometry, Mapping) or "type" not in geometry:
        return "location not GeoJSON"
    if geometry["type"] != "Point":
        return "location not a point"
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list | tuple) or len(coordinates) < 2:
        return "location not GeoJSON"
    lon, lat = coordinates[0], coordinates[1]
    if isinstance(lon, bool) or isinstance(lat, bool) or not isinstance(lon, int | float) \
            or not isinstance(lat, int | float):
        return "location not GeoJSON"
    return float(lon), float(lat)


def instant(value: Any) -> datetime | None:
    """A timestamp string as an aware UTC datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _as_utc_text(value: Any) -> Any:
    """A timestamp with a UTC offset, rewritten in UTC; anything else as it is.

    APIs mix offsets within one answer (a DST change, ``Z`` next to ``+08:00``), and
    pandas refuses to parse a column with mixed offsets unless told to convert
    them all; a common offset keeps that refusal from failing the whole read.
    Naive times stay naive: normalise reads them in the city's time zone.
    """
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    return moment.astimezone(UTC).isoformat() if moment.tzinfo else value



class HttpAdapter(AdapterBase):
    """Shared plumbing: settings, the client, default field mapping, rows → Batch."""

    settings: Any

    def __init__(self, source: Source, context: AdapterContext) -> None:
        super().__init__(source, context)
        if self.role.geometry != "point":
            raise ConfigError(f"[[sources]] {source.name!r}: the {self.name} adapter reads "
                              f"points; role {source.role!r} of layer {source.layer!r} is "
                              "an area role")
        self.client: HttpClient = self._client()

    def _client(self) -> HttpClient:
        return HttpClient(self.settings)

    def _uses_default(self, key: str) -> bool:
        return self.source.fields.get(key) == self.default_fields.get(key)

    def _batch(self, rows: list[dict[str, Any]], rejected: Counter[str],
               warnings: list[str]) -> Batch:
        """Normalise the flat rows; the adapter's own rejections and warnings are added."""
        if not rows:
            batch = Batch(frame=empty_frame(self.role))
        else:
            raw = pd.DataFrame(rows)
            for column in self._time_columns():
                if column in raw.columns:
                    raw[column] = raw[column].map(_as_utc_text)
            batch = self.normalise(raw)
        batch.rejected.update(rejected)
        batch.warnings = batch.warnings + tuple(warnings)
        return batch

    def _time_columns(self) -> list[str]:
        fields = self.source.fields
        names = ["time", *(f.name for f in self.role.fields if f.kind == "time")]
        return [fields[name] for name in names if name in fields]

    def _place(self, row: dict[str, Any], geometry: Any, rejected: Counter[str]) -> bool:
        """Fill ``lat``/``lon`` from a GeoJSON geometry; False (counted) for a non-point.

        Rows without any geometry keep empty coordinates, which normalise counts as
        ``missing coordinates``; a row placed by other keys (``lat = "latitude"``) is
        never rejected here.
        """
        point = point_of(geometry)
        if isinstance(point, tuple):
            row["lon"], row["lat"] = point
            return True
        row.setdefault("lon", None)
        row.setdefault("lat", None)
        if isinstance(point, str) and self._uses_default("lat") and self._uses_default("lon"):
            rejected[point] += 1
            return False
        return True

    def close(self) -> None:
        self.client.close()


__all__ = ["HttpAdapter", "flatten", "instant", "point_of"]
