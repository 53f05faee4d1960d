"""Open311 GeoReport v2: service requests, read in date windows.

Example::

    [[sources]]
    name = "311-live"
    layer = "government"
    role = "requests"
    adapter = "open311"
    endpoint = "https://311.city.gov/open311/v2"
    lookback = "7d"
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from config.city import ConfigError
from data.base import AdapterContext, Batch, SourceError
from data.http.adapter import HttpAdapter, flatten, instant
from data.http.client import (
    HTTP_OPTIONS,
    HttpClient,
    HttpSettings,
    http_settings,
    positive_span,
    text_option,
)

if TYPE_CHECKING:
    from config.city import Source

#: Open311 servers answer at most this many requests per call (GeoReport v2, GET
#: Service Requests: "90 days or first 1000 requests returned, whichever is smallest").
OPEN311_SERVER_CAP = 1000


def _w3c(moment: datetime) -> str:
    """The W3C date-time form Open311 asks for, in UTC: ``2010-01-01T00:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")



@dataclass(frozen=True)
class Open311Settings(HttpSettings):
    jurisdiction_id: str | None = None
    service_code: str | None = None
    window: timedelta = timedelta(days=1)
    lookback: timedelta = timedelta(days=7)
    full_refresh: timedelta = timedelta(hours=1)
    api_key_param: str | None = None


def parse_open311_options(where: str, options: Mapping[str, Any],
                          fields: Mapping[str, str] | None = None) -> Open311Settings:
    """Check an open311 source's options; every mistake is a :class:`ConfigError`."""
    base = http_settings(where, options)
    code = options.get("service_code")
    if isinstance(code, list):  # several codes travel comma-delimited (GeoReport v2)
        code = ",".join(str(c) for c in code) if code else None
    jurisdiction = options.get("jurisdiction_id")
    api_key_param = text_option(f"{where}.api_key_param", options.get("api_key_param"))
    if api_key_param is not None and base.token_env is None:
        raise ConfigError(f"{where}.api_key_param: needs token_env, the environment variable "
                          "holding the key")
    return Open311Settings(
        endpoint=base.endpoint, timeout=base.timeout, token_env=base.token_env,
        max_body=base.max_body,
        jurisdiction_id=None if jurisdiction is None else text_option(f"{where}.jurisdiction_id",
                                                                str(jurisdiction)),
        service_code=None if code is None else text_option(f"{where}.service_code", str(code)),
        window=positive_span(f"{where}.window", options.get("window", "1d")),
        lookback=positive_span(f"{where}.lookback", options.get("lookback", "7d")),
        full_refresh=positive_span(f"{where}.full_refresh", options.get("full_refresh", "1h")),
        api_key_param=api_key_param,
    )


#: Fields of a service request in GeoReport v2 (GET Service Requests); every flat row
#: has them all, so the default mapping never points at an absent column.
OPEN311_FIELDS = (
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
)


class Open311Adapter(HttpAdapter):
    """Service requests from an Open311 GeoReport v2 server (``GET requests.json``).

    ``snapshot()`` reads the last ``lookback`` in date windows of ``window`` each
    (``start_date``/``end_date``; servers answer at most 1000 requests or 90 days per
    call), merging the windows by ``service_request_id``. ``updates(since)`` asks from
    the cursor — the newest ``requested_datetime`` seen, which is what the API's date
    filter compares — onward and appends only requests not yet delivered; every
    ``full_refresh`` it reads the whole lookback again instead, so status changes and
    closures of older requests arrive too.

    Besides the API's own fields, each row has ``closed_datetime``: the
    ``updated_datetime`` of a request whose status is ``closed`` (the spec: "for
    requests with status=closed, this will be the date the request was closed").
    """

    name = "open311"
    options = HTTP_OPTIONS | {"jurisdiction_id", "service_code", "window", "lookback",
                              "full_refresh", "api_key_param"}
    required_options: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    default_fields: ClassVar[Mapping[str, str]] = {
        "id": "service_request_id", "time": "requested_datetime", "lat": "lat", "lon": "long",
        "label": "address", "category": "service_name", "status": "status",
        "agency": "agency_responsible", "descriptor": "description",
        "closed_time": "closed_datetime",
    }

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Validate the options when the config loads, not at the first read."""
        parse_open311_options(where, options, fields)

    def __init__(self, source: Source, context: AdapterContext) -> None:
        self.settings = parse_open311_options(f"[[sources]] {source.name!r}", source.options)
        super().__init__(source, context)
        self.url = f"{self.settings.endpoint}/requests.json"
        # Ids delivered since the last full read, with their request time: the cursor's
        # window starts at an instant already read, whose requests must not come twice.
        self._delivered: dict[str, datetime | None] = {}
        self._last_full: datetime | None = None
        # The ingest thread and a page request may read one source at once.
        self._lock = threading.RLock()

    def _client(self) -> HttpClient:
        return HttpClient(self.settings, api_key_param=self.settings.api_key_param,
                          headers={"Accept": "application/json"})

    def snapshot(self) -> Batch:
        """Every request of the last ``lookback``; the cursor is the newest request time."""
        with self._lock:
            end = datetime.now(UTC).replace(microsecond=0)  # API windows are wall time
            start = end - self.settings.lookback
            records, rejected, warnings = self._read(start, end)
            self._delivered = {}
            self._last_full = end
            batch = self._deliver(records, rejected, warnings, start, end)
            batch.replace = True
            return batch

    def updates(self, since: Any) -> Batch:
        """Requests made since cursor ``since`` that were not delivered yet (appended)."""
        start = instant(since) if isinstance(since, str) else None
        with self._lock:
            now = datetime.now(UTC).replace(microsecond=0)
            if start is None or self._last_full is None \
                    or now - self._last_full >= self.settings.full_refresh:
                return self.snapshot()
            records, rejected, warnings = self._read(start, now)
            # Servers that round the window to whole days answer requests from before the
            # cursor too: those were read already, like the requests delivered at the cursor.
            fresh = [r for r in records if _record_key(r) not in self._delivered
                     and not ((t := instant(r.get("requested_datetime"))) is not None
                              and t < start)]
            batch = self._deliver(fresh, rejected, warnings, start, now)
            batch.replace = False
            return batch

    def _deliver(self, records: list[dict[str, Any]], rejected: Counter[str],
                 warnings: list[str], start: datetime, end: datetime) -> Batch:
        times = [instant(r.get("requested_datetime")) for r in records]
        # A request dated in the future (a skewed server clock) must not move the cursor
        # past requests still to come.
        cursor = max([start, *(t for t in times if t is not None and t <= end)])
        for record, moment in zip(records, times, strict=True):
            self._delivered[_record_key(record)] = moment
        # Only requests at or after the cursor can come back in the next window (and
        # undated ones, which a sloppy server answers every time).
        self._delivered = {k: t for k, t in self._delivered.items() if t is None or t >= cursor}
        batch = self._batch(records, rejected, warnings)
        batch.cursor = _w3c(cursor)
        return batch

    def _windows(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        # A cursor in the current second still asks once: requests may share its second.
        end = max(start, end)
        low = start
        while True:
            high = min(low + self.settings.window, end)
            yield low, high
            if high >= end:
                return
            low = high

    def _read(self, start: datetime, end: datetime
              ) -> tuple[list[dict[str, Any]], Counter[str], list[str]]:
        """Flat records of [start, end], window by window, merged by request id."""
        rejected: Counter[str] = Counter()
        warnings: list[str] = []
        by_id: dict[str, dict[str, Any]] = {}
        # Records without an id (and junk) are kept by content: a server that cannot
        # date one answers it in every window, and it is still one record.
        anonymous: dict[str, dict[str, Any]] = {}
        junk: set[str] = set()
        for low, high in self._windows(start, end):
            params = {"start_date": _w3c(low), "end_date": _w3c(high)}
            if self.settings.jurisdiction_id:
                params["jurisdiction_id"] = self.settings.jurisdiction_id
            if self.settings.service_code:
                params["service_code"] = self.settings.service_code
            body, _ = self.client.get(self.url, params)
            if not isinstance(body, list):
                raise SourceError(f"GET {self.client.display(self.url, params)}: expected a JSON "
                                  f"array of service requests, got {type(body).__name__}")
            if len(body) >= OPEN311_SERVER_CAP:
                warnings.append(f"{_w3c(low)}–{_w3c(high)}: {len(body)} requests, the most a "
                                "server answers per call; some may be missing — set a "
                                "smaller window")
            for record in body:
                if not isinstance(record, Mapping):
                    junk.add(json.dumps(record, default=str))
                    continue
                row = {name: None for name in OPEN311_FIELDS}
                row.update(flatten(record))
                status = row.get("status")
                closed = isinstance(status, str) and status.strip().lower() == "closed"
                row["closed_datetime"] = row.get("updated_datetime") if closed else None
                request_id = row.get("service_request_id")
                if request_id is None:  # normalise counts it as 'missing id'
                    anonymous[json.dumps(record, sort_keys=True, default=str)] = row
                else:
                    # Windows share their boundary instant (both ends are inclusive), and
                    # some servers round them to whole days: the same request comes twice.
                    by_id[str(request_id)] = row
        if junk:
            rejected["not a JSON object"] += len(junk)
        return [*by_id.values(), *anonymous.values()], rejected, warnings


def _record_key(row: Mapping[str, Any]) -> str:
    """A service request's id, or its whole content when it has none."""
    request_id = row.get("service_request_id")
    if request_id is not None:
        return f"id:{request_id}"
    return "content:" + json.dumps(row, sort_keys=True, default=str)


__all__ = ["OPEN311_FIELDS", "Open311Adapter", "Open311Settings", "parse_open311_options"]
