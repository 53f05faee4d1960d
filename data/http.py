"""HTTP API adapters: Open311 GeoReport v2, OGC SensorThings API 1.1 and NGSI-LD.

Each adapter pages through its API with ``requests`` (always with a time-out),
flattens the API's records into flat rows and hands them to
:func:`data.base.normalise` like every other adapter. The source's field mapping
names keys of those flat rows: nested objects become dotted keys
(``properties.owner``, ``extended_attributes.channel``). Every adapter brings a
default mapping (its class's ``default_fields``), so a source needs no more than
its ``endpoint``; keys set in the config win over the defaults.

Retrying is not an adapter's job: the app reads the source again on its next
refresh. A read that fails — connection refused, time-out, HTTP status >= 400, a
body that is not JSON or not the API's shape — raises :class:`SourceError` naming
the URL (never a secret) and the status, and the layer keeps its last rows.

Secrets never come from the config file: ``token_env`` names the environment
variable holding a bearer token (or, with Open311's ``api_key_param``, an API key
sent as that query parameter). The token goes only to the endpoint's own host,
never to another host a paging link points at.

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
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import pandas as pd

from config.city import ConfigError, parse_duration
from data.base import AdapterBase, AdapterContext, Batch, SourceError, empty_frame

if TYPE_CHECKING:
    import requests

    from config.city import Source

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
#: Open311 servers answer at most this many requests per call (GeoReport v2, GET
#: Service Requests: "90 days or first 1000 requests returned, whichever is smallest").
OPEN311_SERVER_CAP = 1000
#: SensorThings: expand each Thing's Locations and its Datastreams, each with only its
#: latest Observation (OGC 18-088, "$expand" with nested $orderby/$top).
SENSORTHINGS_EXPAND = "Locations,Datastreams/Observations($orderby=phenomenonTime desc;$top=1)"
#: NGSI-LD attribute types in the normalized representation (ETSI GS CIM 009, clause 4.5).
NGSI_LD_ATTRIBUTE_TYPES = frozenset({
    "Property", "GeoProperty", "Relationship", "LanguageProperty", "VocabProperty",
    "JsonProperty", "ListProperty", "ListRelationship",
})
#: Entity members that are not attributes to flatten.
_NGSI_LD_SKIP = frozenset({"id", "type", "@context", "scope"})
#: Entity properties that may carry the observation time, in order of preference,
#: when no attribute has ``observedAt`` (Smart Data Models' ``dateObserved`` first).
_NGSI_LD_TIME_PROPERTIES = ("dateObserved", "dateModified", "modifiedAt")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ------------------------------------------------------------------ option checks
def _endpoint(where: str, value: Any) -> str:
    """An http(s) base URL without credentials, query or fragment; no trailing slash."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.endpoint: expected an http(s) URL, got {value!r}")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}.endpoint: expected an http(s) URL, got {value!r}")
    if parts.username or parts.password:
        raise ConfigError(f"{where}.endpoint: credentials do not belong in the config file; "
                          "name the environment variable holding a token with token_env")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}.endpoint: expected a base URL without '?…' or '#…', "
                          f"got {value!r}")
    return value.strip().rstrip("/")


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: expected a positive number of seconds, got {value!r}")
    return float(value)


def _whole(where: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo \
            or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{where}: expected a whole number {bounds}, got {value!r}")
    return value


def _text(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _env_name(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ConfigError(f"{where}: expected the name of an environment variable "
                          f"(e.g. CITY_API_TOKEN), got {value!r}")
    return value


def _span(where: str, value: Any) -> timedelta:
    seconds = parse_duration(where, value)
    if seconds <= 0:
        raise ConfigError(f"{where}: expected a positive duration, got {value!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class HttpSettings:
    """Options every HTTP adapter has."""

    endpoint: str
    timeout: float
    token_env: str | None


def _http_settings(where: str, options: Mapping[str, Any]) -> HttpSettings:
    if "endpoint" not in options:
        raise ConfigError(f"{where}: missing required key 'endpoint'")
    return HttpSettings(
        endpoint=_endpoint(where, options["endpoint"]),
        timeout=_positive(f"{where}.timeout", options.get("timeout", DEFAULT_TIMEOUT)),
        token_env=_env_name(f"{where}.token_env", options.get("token_env")),
    )


# ---------------------------------------------------------------------- the client
def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class HttpClient:
    """GETs JSON from one API: time-outs, auth from the environment, errors as SourceError.

    ``api_key_param`` sends the token as that query parameter instead of an
    ``Authorization: Bearer`` header. Messages show URLs without the key and with
    any echo of the token masked.
    """

    def __init__(self, settings: HttpSettings, api_key_param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.api_key_param = api_key_param
        self.headers = dict(headers or {})
        self._session: requests.Session | None = None
        self._secret: str | None = None

    def _requests(self) -> Any:
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = "citybrain"
        return requests

    def _token(self) -> str | None:
        # Read on every call: a rotated token is picked up without a restart.
        name = self.settings.token_env
        if name is None:
            return None
        token = os.environ.get(name, "").strip()
        if not token:
            raise SourceError(f"environment variable {name} (token_env) is not set or empty")
        self._secret = token
        return token

    def redact(self, text: str) -> str:
        """``text`` with the token masked, for messages and logs."""
        return text.replace(self._secret, "***") if self._secret else text

    def display(self, url: str, params: Mapping[str, Any] | None = None) -> str:
        """The URL as messages show it: query decoded for reading, the API key left out."""
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k != self.api_key_param]
        query += [(k, str(v)) for k, v in (params or {}).items() if k != self.api_key_param]
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        shown = urlunsplit((parts.scheme, netloc, parts.path, unquote(urlencode(query)), ""))
        return self.redact(shown)

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> tuple[Any, Mapping[str, str]]:
        """GET ``url`` and decode its JSON body; returns (body, response headers)."""
        http = self._requests()
        assert self._session is not None
        token = self._token()
        query = dict(params or {})
        send_headers = {**self.headers, **(headers or {})}
        if token is not None and _origin(url) == _origin(self.settings.endpoint):
            if self.api_key_param:
                query[self.api_key_param] = token
            else:
                send_headers["Authorization"] = f"Bearer {token}"
        shown = self.display(url, params)
        try:
            response = self._session.get(url, params=query or None, headers=send_headers,
                                         timeout=self.settings.timeout)
        except http.Timeout as exc:
            raise SourceError(f"GET {shown}: no answer within {self.settings.timeout:g} s "
                              "(timeout)") from exc
        except http.ConnectionError as exc:
            raise SourceError(f"GET {shown}: cannot connect: {self._reason(exc)}") from exc
        except http.RequestException as exc:
            raise SourceError(f"GET {shown}: {type(exc).__name__}: "
                              f"{self.redact(str(exc))}") from exc
        if response.status_code >= 400:
            detail = self._detail(response)
            raise SourceError(f"GET {shown}: HTTP {response.status_code} {response.reason or ''}"
                              .rstrip() + (f": {detail}" if detail else ""))
        try:
            body = response.json()
        except ValueError as exc:
            kind = response.headers.get("Content-Type", "no content type")
            snippet = " ".join(response.text[:80].split())
            raise SourceError(f"GET {shown}: the answer is not JSON ({kind}): "
                              f"{self.redact(snippet)!r}") from exc
        return body, response.headers

    def _reason(self, exc: Exception) -> str:
        # urllib3 wraps the socket error twice; its innermost text is the useful part
        # ("[Errno 111] Connection refused"), the rest repeats the URL.
        inner = getattr(exc.args[0], "reason", exc) if exc.args else exc
        text = str(inner)
        if "): " in text:
            text = text.split("): ", 1)[1]
        return self.redact(text)

    def _detail(self, response: Any) -> str:
        """The API's own words on an error: Open311 ``description``, NGSI-LD ProblemDetails
        ``title``/``detail``, FROST ``message`` — else the start of the body."""
        try:
            body = response.json()
        except ValueError:
            return self.redact(" ".join(response.text[:200].split()))
        if isinstance(body, list) and body and isinstance(body[0], Mapping):
            body = body[0]
        if isinstance(body, Mapping):
            words = [str(body[k]) for k in ("title", "detail", "description", "message")
                     if body.get(k)]
            if words:
                return self.redact(": ".join(words))[:300]
        return self.redact(" ".join(str(body)[:200].split()))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


# ------------------------------------------------------------------- shared helpers
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


def _instant(value: Any) -> datetime | None:
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


def _w3c(moment: datetime) -> str:
    """The W3C date-time form Open311 asks for, in UTC: ``2010-01-01T00:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HttpAdapter(AdapterBase):
    """Shared plumbing: settings, the client, default field mapping, rows → Batch."""

    #: Flattened-record keys a minimal config maps to (normalised name → key).
    default_fields: ClassVar[Mapping[str, str]] = {}
    settings: Any

    def __init__(self, source: Source, context: AdapterContext) -> None:
        super().__init__(source, context)
        if self.role.geometry != "point":
            raise ConfigError(f"[[sources]] {source.name!r}: the {self.name} adapter reads "
                              f"points; role {source.role!r} of layer {source.layer!r} is "
                              "an area role")
        valid = set(self.role.field_names())
        defaults = {k: v for k, v in self.default_fields.items() if k in valid}
        # The configured mapping wins; normalise reads the merged one.
        self.source = replace(source, fields={**defaults, **source.fields})
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


# ------------------------------------------------------------------------- Open311
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
    base = _http_settings(where, options)
    code = options.get("service_code")
    if isinstance(code, list):  # several codes travel comma-delimited (GeoReport v2)
        code = ",".join(str(c) for c in code) if code else None
    jurisdiction = options.get("jurisdiction_id")
    api_key_param = _text(f"{where}.api_key_param", options.get("api_key_param"))
    if api_key_param is not None and base.token_env is None:
        raise ConfigError(f"{where}.api_key_param: needs token_env, the environment variable "
                          "holding the key")
    return Open311Settings(
        endpoint=base.endpoint, timeout=base.timeout, token_env=base.token_env,
        jurisdiction_id=None if jurisdiction is None else _text(f"{where}.jurisdiction_id",
                                                                str(jurisdiction)),
        service_code=None if code is None else _text(f"{where}.service_code", str(code)),
        window=_span(f"{where}.window", options.get("window", "1d")),
        lookback=_span(f"{where}.lookback", options.get("lookback", "7d")),
        full_refresh=_span(f"{where}.full_refresh", options.get("full_refresh", "1h")),
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
    options = frozenset({"endpoint", "jurisdiction_id", "service_code", "window", "lookback",
                         "full_refresh", "timeout", "token_env", "api_key_param"})
    required_options: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    #: Called by the config loader, so option mistakes fail at start-up.
    check_options = staticmethod(parse_open311_options)
    default_fields: ClassVar[Mapping[str, str]] = {
        "id": "service_request_id", "time": "requested_datetime", "lat": "lat", "lon": "long",
        "label": "address", "category": "service_name", "status": "status",
        "agency": "agency_responsible", "descriptor": "description",
        "closed_time": "closed_datetime",
    }

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
        start = _instant(since) if isinstance(since, str) else None
        with self._lock:
            now = datetime.now(UTC).replace(microsecond=0)
            if start is None or self._last_full is None \
                    or now - self._last_full >= self.settings.full_refresh:
                return self.snapshot()
            records, rejected, warnings = self._read(start, now)
            # Servers that round the window to whole days answer requests from before the
            # cursor too: those were read already, like the requests delivered at the cursor.
            fresh = [r for r in records if _record_key(r) not in self._delivered
                     and not ((t := _instant(r.get("requested_datetime"))) is not None
                              and t < start)]
            batch = self._deliver(fresh, rejected, warnings, start, now)
            batch.replace = False
            return batch

    def _deliver(self, records: list[dict[str, Any]], rejected: Counter[str],
                 warnings: list[str], start: datetime, end: datetime) -> Batch:
        times = [_instant(r.get("requested_datetime")) for r in records]
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


# -------------------------------------------------------------------- SensorThings
@dataclass(frozen=True)
class SensorThingsSettings(HttpSettings):
    things_filter: str | None = None
    page_size: int = 100
    max_pages: int = 50


def parse_sensorthings_options(where: str, options: Mapping[str, Any],
                               fields: Mapping[str, str] | None = None) -> SensorThingsSettings:
    """Check a sensorthings source's options; every mistake is a :class:`ConfigError`."""
    base = _http_settings(where, options)
    return SensorThingsSettings(
        endpoint=base.endpoint, timeout=base.timeout, token_env=base.token_env,
        things_filter=_text(f"{where}.things_filter", options.get("things_filter")),
        page_size=_whole(f"{where}.page_size", options.get("page_size", 100), 1, 10_000),
        max_pages=_whole(f"{where}.max_pages", options.get("max_pages", 50)),
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
    options = frozenset({"endpoint", "things_filter", "page_size", "max_pages", "timeout",
                         "token_env"})
    required_options: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    check_options = staticmethod(parse_sensorthings_options)
    default_fields: ClassVar[Mapping[str, str]] = {
        "id": "id", "label": "name", "time": "time", "lat": "lat", "lon": "lon",
        "category": "datastream", "reading": "result",
    }

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


# -------------------------------------------------------------------------- NGSI-LD
@dataclass(frozen=True)
class NgsiLdSettings(HttpSettings):
    entity_type: str | None = None
    page_size: int = 100
    max_pages: int = 100
    tenant: str | None = None
    context: str | None = None
    key_values: bool = False


def parse_ngsild_options(where: str, options: Mapping[str, Any],
                         fields: Mapping[str, str] | None = None) -> NgsiLdSettings:
    """Check an ngsi-ld source's options; every mistake is a :class:`ConfigError`."""
    base = _http_settings(where, options)
    context = _text(f"{where}.context", options.get("context"))
    if context is not None and urlsplit(context).scheme not in ("http", "https"):
        raise ConfigError(f"{where}.context: expected the URL of a JSON-LD @context, "
                          f"got {context!r}")
    key_values = options.get("key_values", False)
    if not isinstance(key_values, bool):
        raise ConfigError(f"{where}.key_values: expected true or false, got {key_values!r}")
    return NgsiLdSettings(
        endpoint=base.endpoint, timeout=base.timeout, token_env=base.token_env,
        entity_type=_text(f"{where}.entity_type", options.get("entity_type")),
        # Brokers cap a page (Orion-LD: 1000) and answer 400 beyond it.
        page_size=_whole(f"{where}.page_size", options.get("page_size", 100), 1, 1000),
        max_pages=_whole(f"{where}.max_pages", options.get("max_pages", 100)),
        tenant=_text(f"{where}.tenant", options.get("tenant")),
        context=context,
        key_values=key_values,
    )


class NgsiLdAdapter(HttpAdapter):
    """Entities of an NGSI-LD context broker (FIWARE Orion-LD, Scorpio, Stellio …).

    Pages through ``GET /ngsi-ld/v1/entities?type=…&limit=…&offset=…`` until a short
    page (or the ``NGSILD-Results-Count`` total, asked for with ``count=true``), at
    most ``max_pages`` pages. Both representations are read: *normalized*
    (``{"type": "Property", "value": …, "observedAt": …}``) and *simplified*
    (``options=keyValues``, set ``key_values = true``). Each entity becomes a row:
    ``id``, ``type``, ``lat``/``lon`` from the ``location`` GeoProperty (GeoJSON:
    [longitude, latitude]), ``time`` the latest ``observedAt`` of its attributes,
    else its ``dateObserved``/``dateModified``; every other attribute as
    ``<name>`` (its value, or a Relationship's object), with ``<name>.observedAt``
    and ``<name>.unitCode`` when given.

    The broker holds current state, so ``updates()`` reads it all again.
    """

    name = "ngsi-ld"
    options = frozenset({"endpoint", "entity_type", "page_size", "max_pages", "tenant",
                         "context", "key_values", "timeout", "token_env"})
    required_options: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    check_options = staticmethod(parse_ngsild_options)
    default_fields: ClassVar[Mapping[str, str]] = {
        "id": "id", "label": "name", "time": "time", "lat": "lat", "lon": "lon",
        "category": "type",
    }

    def __init__(self, source: Source, context: AdapterContext) -> None:
        self.settings = parse_ngsild_options(f"[[sources]] {source.name!r}", source.options)
        super().__init__(source, context)
        endpoint = self.settings.endpoint
        self.url = (f"{endpoint}/entities" if endpoint.endswith("/ngsi-ld/v1")
                    else f"{endpoint}/ngsi-ld/v1/entities")

    def _client(self) -> HttpClient:
        headers = {"Accept": "application/ld+json, application/json;q=0.9"}
        if self.settings.tenant:
            headers["NGSILD-Tenant"] = self.settings.tenant
        if self.settings.context:
            # Terms in the answer are compacted with this @context (clause 6.3.5).
            headers["Link"] = (f'<{self.settings.context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                               'type="application/ld+json"')
        return HttpClient(self.settings, headers=headers)

    def snapshot(self) -> Batch:
        """Every entity of ``entity_type`` the broker holds (up to ``max_pages`` pages)."""
        read_at = datetime.now(UTC)
        rejected: Counter[str] = Counter()
        warnings: list[str] = []
        rows: list[dict[str, Any]] = []
        limit = self.settings.page_size
        total: int | None = None
        offset = 0
        for page in range(self.settings.max_pages + 1):
            if page == self.settings.max_pages:
                warnings.append(f"stopped after {page} pages (max_pages); the broker has more "
                                "entities")
                break
            params: dict[str, Any] = {"limit": limit, "offset": offset}
            if self.settings.entity_type:
                params["type"] = self.settings.entity_type
            if self.settings.key_values:
                params["options"] = "keyValues"
            if page == 0:
                params["count"] = "true"
            body, headers = self.client.get(self.url, params)
            if not isinstance(body, list):
                raise SourceError(f"GET {self.client.display(self.url, params)}: expected a "
                                  f"JSON array of entities, got {type(body).__name__}")
            if page == 0:
                total = _count_header(headers.get("NGSILD-Results-Count"))
            for entity in body:
                if not isinstance(entity, Mapping):
                    rejected["not a JSON object"] += 1
                    continue
                row = self._entity_row(entity, rejected)
                if row is not None:
                    rows.append(row)
            offset += len(body)
            if len(body) < limit or (total is not None and offset >= total):
                break
        batch = self._batch(rows, rejected, warnings)
        batch.cursor = read_at.isoformat()
        return batch

    def updates(self, since: Any) -> Batch:
        """The broker holds current state: read it again."""
        return self.snapshot()

    def _entity_row(self, entity: Mapping[str, Any], rejected: Counter[str]) -> dict[str, Any] | None:
        kind = entity.get("type")
        if isinstance(kind, list):  # several types (NGSI-LD 1.5+): the first names it
            kind = kind[0] if kind else None
        row: dict[str, Any] = {"id": entity.get("id"), "type": kind}
        observed: list[tuple[datetime, str]] = []
        location: Any = None
        for name, member in entity.items():
            if name in _NGSI_LD_SKIP:
                continue
            attribute = _ngsi_ld_instance(member)
            value = _ngsi_ld_value(attribute)
            if name == "location":
                location = value
                continue
            if isinstance(value, Mapping):  # a structured value, e.g. an address
                row.update(flatten(value, f"{name}."))
            else:
                row[name] = value
            if _is_ngsi_ld_attribute(attribute):
                for meta in ("observedAt", "unitCode"):
                    if meta in attribute:
                        row[f"{name}.{meta}"] = attribute[meta]
                moment = _instant(attribute.get("observedAt"))
                if moment is not None:
                    observed.append((moment, str(attribute["observedAt"])))
        if observed:
            row["time"] = max(observed)[1]
        else:
            row["time"] = next((row[p] for p in _NGSI_LD_TIME_PROPERTIES if row.get(p)), None)
        return row if self._place(row, location, rejected) else None


def _ngsi_ld_instance(member: Any) -> Any:
    """A multi-attribute (several instances, each with a ``datasetId``) as its default
    instance — the one without a datasetId — else its first."""
    if isinstance(member, list) and member and all(_is_ngsi_ld_attribute(m) for m in member):
        return next((m for m in member if "datasetId" not in m), member[0])
    return member


def _is_ngsi_ld_attribute(member: Any) -> bool:
    return isinstance(member, Mapping) and member.get("type") in NGSI_LD_ATTRIBUTE_TYPES


def _ngsi_ld_value(member: Any) -> Any:
    """An attribute's value in either representation.

    Normalized: a Property's ``value``, a Relationship's ``object``, a
    LanguageProperty's English (else first) string. Simplified: the member itself.
    JSON-LD typed values (``{"@type": "DateTime", "@value": "…"}``) are unwrapped.
    """
    value = member
    if _is_ngsi_ld_attribute(member):
        if "value" in member:
            value = member["value"]
        elif "object" in member:
            value = member["object"]
        elif isinstance(member.get("languageMap"), Mapping) and member["languageMap"]:
            texts = member["languageMap"]
            value = texts.get("en", next(iter(texts.values())))
        else:
            value = None
    if isinstance(value, Mapping) and "@value" in value:
        value = value["@value"]
    return value


def _count_header(value: str | None) -> int | None:
    try:
        return None if value is None else max(0, int(value))
    except ValueError:
        return None


__all__ = [
    "HttpAdapter", "HttpClient", "NgsiLdAdapter", "Open311Adapter", "SensorThingsAdapter",
    "flatten", "point_of",
]
