"""OGC SensorThings API 1.1: Things with the latest observation of each Datastream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin

from data.base import AdapterContext, Batch, SourceError
from data.http.adapter import HttpAdapter, flatten
from data.http.client import (
    HTTP_OPTIONS,
    HttpClient,
    HttpSettings,
    http_settings,
    text_option,
    whole_number,
)

if TYPE_CHECKING:
    from config.city import Source

#: SensorThings: expand each Thing's Locations and its Datastreams, each with only its
#: latest Observation (OGC 18-088, "$expand" with nested $orderby/$top).
SENSORTHINGS_EXPAND = "Locations,Datastreams/Observations($orderby=phenomenonTime desc;$top=1)"


@dataclass(frozen=True)
class SensorThingsSettings(HttpSettings):
    things_filter: str | None = None
    page_size: int = 100
    max_pages: int = 50


def parse_sensorthings_options(where: str, options: Mapping[str, Any],
                               fields: Mapping[str, str] | None = None) -> SensorThingsSettings:
    """Check a sensorthings source's options; every mistake is a :class:`ConfigError`."""
    base = http_settings(where, options)
    return SensorThingsSettings(
        endpoint=base.endpoint, timeout=base.timeout, token_env=base.token_env,
        max_body=base.max_body,
        things_filter=text_option(f"{where}.things_filter", options.get("things_filter")),
        page_size=whole_number(f"{where}.page_size", options.get("page_size", 100), 1, 10_000),
        max_pages=whole_number(f"{where}.max_pages", options.get("max_pages", 50)),
    )


class SensorThingsAdapter(HttpAdapter):
    """Things of an OGC SensorThings API 1.1 service with their latest observations.

    One request per page: ``Things?$expand=Locations,Datastreams/Observations(…$top=1)``,
    following the server's ``@iot.nextLink`` for at most ``max_pages`` pages. Each
    Thing × Datastream becomes a row: ``id`` is ``<thing>/<datastream>``
    (``thing_id`` alone for a Thing without Datastreams), ``lat``/``lon`` come from the
    Thing's first GeoJSON Location, ``time`` and ``result`` from the Datastream's
    latest Observation (the end of a ``phenomenonTime`` interval). Thing
    ``properties`` are flattened as ``properties.<key>``.

    The service holds the current state, so ``updates()`` reads it all again.
    """

    name = "sensorthings"
    options = HTTP_OPTIONS | {"things_filter", "page_size", "max_pages"}
    required_options: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    default_fields: ClassVar[Mapping[str, str]] = {
        "id": "id", "label": "name", "time": "time", "lat": "lat", "lon": "lon",
        "category": "datastream", "reading": "result",
    }

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Validate the options when the config loads, not at the first read."""
        parse_sensorthings_options(where, options, fields)

    def __init__(self, source: Source, context: AdapterContext) -> None:
        self.settings = parse_sensorthings_options(f"[[sources]] {source.name!r}",
                                                   source.options)
        super().__init__(source, context)

    def _client(self) -> HttpClient:
        return HttpClient(self.settings, headers={"Accept": "application/json"})

    def snapshot(self) -> Batch:
        """Every Thing (matching ``things_filter``) with its Datastreams' latest values."""
        read_at = datetime.now(UTC)
        rejected: Counter[str] = Counter()
        warnings: list[str] = []
        rows: list[dict[str, Any]] = []
        truncated = 0
        url: str | None = f"{self.settings.endpoint}/Things"
        first: dict[str, Any] = {"$expand": SENSORTHINGS_EXPAND, "$top": self.settings.page_size}
        if self.settings.things_filter:
            first["$filter"] = self.settings.things_filter
        params: dict[str, Any] | None = first
        seen: set[str] = set()
        pages = 0
        while url is not None:
            if pages == self.settings.max_pages:
                warnings.append(f"stopped after {pages} pages (max_pages); the service has "
                                "more Things")
                break
            seen.add(url)
            body, _ = self.client.get(url, params)
            if not isinstance(body, Mapping) or not isinstance(body.get("value"), list):
                raise SourceError(f"GET {self.client.display(url, params)}: expected a "
                                  "SensorThings collection ({\"value\": […]}), got "
                                  f"{type(body).__name__}")
            pages += 1
            for thing in body["value"]:
                if not isinstance(thing, Mapping):
                    rejected["not a JSON object"] += 1
                    continue
                truncated += "Datastreams@iot.nextLink" in thing
                rows.extend(self._thing_rows(thing, rejected))
            link = body.get("@iot.nextLink")
            # The link is the whole next request (query included); params are not re-sent.
            url, params = (urljoin(url, link), None) if isinstance(link, str) and link else (None, None)
            if url is not None and url in seen:
                raise SourceError(f"GET {self.client.display(url)}: @iot.nextLink points back to "
                                  "a page already read")
        if truncated:
            warnings.append(f"{truncated} Things have more Datastreams than the service expands "
                            "per Thing; only the first are read")
        batch = self._batch(rows, rejected, warnings)
        batch.cursor = read_at.isoformat()
        return batch

    def updates(self, since: Any) -> Batch:
        """The service holds current state: read it again."""
        return self.snapshot()

    def _thing_rows(self, thing: Mapping[str, Any], rejected: Counter[str]) -> list[dict[str, Any]]:
        thing_id = thing.get("@iot.id")
        base: dict[str, Any] = {
            "thing_id": None if thing_id is None else str(thing_id),
            "name": thing.get("name"),
            "description": thing.get("description"),
        }
        properties = thing.get("properties")
        if isinstance(properties, Mapping):
            base.update(flatten(properties, "properties."))
        locations = thing.get("Locations")
        location = _first_geojson_location(locations if isinstance(locations, list) else [])
        if location is not None:
            base["location_name"] = location.get("name")
        if not self._place(base, None if location is None else location.get("location"),
                           rejected):
            return []
        datastreams = [d for d in thing.get("Datastreams") or [] if isinstance(d, Mapping)]
        if not datastreams:
            return [{**base, "id": base["thing_id"], "datastream_id": None, "datastream": None,
                     "unit": None, "time": None, "result_time": None, "result": None}]
        rows = []
        for datastream in datastreams:
            datastream_id = datastream.get("@iot.id")
            unit = datastream.get("unitOfMeasurement")
            observations = [o for o in datastream.get("Observations") or []
                            if isinstance(o, Mapping)]
            latest = observations[0] if observations else {}
            rows.append({
                **base,
                "id": None if thing_id is None or datastream_id is None
                else f"{thing_id}/{datastream_id}",
                "datastream_id": None if datastream_id is None else str(datastream_id),
                "datastream": datastream.get("name"),
                "unit": unit.get("symbol") if isinstance(unit, Mapping) else None,
                "time": _interval_end(latest.get("phenomenonTime")),
                "result_time": latest.get("resultTime"),
                "result": latest.get("result"),
            })
        return rows


def _first_geojson_location(locations: list[Any]) -> Mapping[str, Any] | None:
    """The first Location encoded as GeoJSON (``application/geo+json``; 1.0 servers say
    ``application/vnd.geo+json``)."""
    for location in locations:
        if isinstance(location, Mapping) and "geo+json" in str(location.get("encodingType", "")):
            return location
    return None


def _interval_end(value: Any) -> Any:
    """An ISO 8601 interval ``start/end`` as its end; a single instant as it is."""
    if isinstance(value, str) and "/" in value:
        return value.rsplit("/", 1)[1]
    return value


__all__ = ["SENSORTHINGS_EXPAND", "SensorThingsAdapter", "SensorThingsSettings",
           "parse_sensorthings_options"]
