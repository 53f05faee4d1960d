"""Real HTTP servers on 127.0.0.1 speaking Open311, SensorThings and NGSI-LD, for tests.

Each server is a :class:`http.server.ThreadingHTTPServer` on a free port in a
background thread. It answers the way the specification's own examples do
(the payload helpers below cite the section they follow) and it can be told to
misbehave for fault tests: :meth:`ApiServer.fail` with ``"500"`` (an HTTP 500),
``"hang"`` (answer nothing for ``hang_seconds``), ``"garbage"`` (200 with a body
that is not JSON), ``"shape"`` (valid JSON, not the API's shape), ``"trickle"``
(headers at once, then one byte of body every ``trickle_seconds``) or ``"huge"``
(a body of ``huge_bytes``, streamed from a small buffer, with or without a
``Content-Length``: ``huge_declared``). Every request
is logged (path, query, headers) so tests can check what an adapter asked.

Example::

    with Open311Server(records) as server:
        adapter = make_adapter(endpoint=server.url + "/open311/v2")
        server.fail("500")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

Fault = Literal["500", "hang", "garbage", "shape", "trickle", "huge"]


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer  # set on the per-server subclass

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.api.log.append(Logged(parts.path, query, dict(self.headers.items())))
        if self.api.fault in ("trickle", "huge"):
            self._stream(self.api.fault)
            return
        reply = self.api.reply_for(parts.path, query, self.headers)
        if reply is None:  # hanging: the client gave up, or the server is stopping
            return
        raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _stream(self, fault: str) -> None:
        api = self.api
        size = api.huge_bytes if fault == "huge" else 10_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if fault == "trickle" or api.huge_declared:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            if fault == "trickle":
                for _ in range(size):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    if api._release.wait(api.trickle_seconds):
                        return
            else:
                block = b" " * 65536
                sent = 0
                while sent < size and not api._release.is_set():
                    part = block[: size - sent]
                    self.wfile.write(part)
                    sent += len(part)
                    api.streamed += len(part)
        except OSError:  # the client gave up: what a refused answer looks like here
            return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        return None


class ApiServer:
    """A threaded HTTP server on 127.0.0.1:<free port>; subclasses implement :meth:`answer`."""

    def __init__(self) -> None:
        self.log: list[Logged] = []
        self.fault: Fault | None = None
        self.hang_seconds = 10.0
        self.trickle_seconds = 3.0
        self.huge_bytes = 300_000_000
        self.huge_declared = True
        #: Bytes of "huge" bodies actually sent (what the client pulled before it hung up).
        self.streamed = 0
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"api": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False  # a hanging handler must not hold up stop()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------- behaviour
    def fail(self, fault: Fault | None) -> None:
        """Misbehave from now on (``None``: answer normally again)."""
        self.fault = fault

    def requests_to(self, path: str) -> list[Logged]:
        return [entry for entry in self.log if entry.path == path]

    def reply_for(self, path: str, query: dict[str, str], headers: Message) -> Reply | None:
        fault = self.fault
        if fault == "500":
            return Reply(500, {"message": "internal error (test fault)"})
        if fault == "hang":
            self._release.wait(self.hang_seconds)
            return None
        if fault == "garbage":
            return Reply(200, b"<html><body>Gateway says hello</body></html>",
                         content_type="application/json")
        if fault == "shape":
            return Reply(200, {"message": "valid JSON, but not what the API answers"})
        return self.answer(path, query, headers)

    def answer(self, path: str, query: dict[str, str], headers: Message) -> Reply:
        raise NotImplementedError


def with_utc_zone(text: str | None) -> str | None:
    """A naive ISO time read as UTC, with the zone the APIs require (``…Z``); text
    that is not a time stays as it is (the sample's bad row)."""
    if text is None:
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return text
    return f"{text}Z"


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------------ Open311
def _iso(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment


def open311_request(service_request_id: Any, requested: datetime | str | None, lat: Any, lon: Any,
                    status: str = "open", service_name: str = "Sidewalk and Curb Issues",
                    updated: datetime | str | None = None, **extra: Any) -> dict[str, Any]:
    """A service request shaped as GeoReport v2's own example (GET Service Requests,
    JSON sample response): every field present, ``null`` when unknown. ``extra``
    sets any other field (``agency_responsible = "DOT"``)."""
    record = {
        "service_request_id": service_request_id,
        "status": status,
        "status_notes": None,
        "service_name": service_name,
        "service_code": "006",
        "description": None,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": _iso(requested),
        "updated_datetime": _iso(updated or requested),
        "expected_datetime": None,
        "address": "8TH AVE and JUDAH ST",
        "address_id": 545483,
        "zipcode": 94122,
        "lat": lat,
        "long": lon,
        "media_url": f"http://city.gov.s3.amazonaws.com/requests/media/{service_request_id}.jpg",
    }
    record.update(extra)
    return record


def open311_spec_example(now: datetime) -> list[dict[str, Any]]:
    """The two requests of GeoReport v2's JSON sample (GET Service Requests), moved to
    the last days so a server filtering by date still answers them; times keep the
    sample's -08:00 offset."""
    pacific = timezone(timedelta(hours=-8))
    first = (now - timedelta(days=2)).astimezone(pacific).replace(microsecond=0)
    second = (now - timedelta(hours=5)).astimezone(pacific).replace(microsecond=0)
    return [
        open311_request(638344, first, 37.762221815, -122.4651145, status="closed",
                        status_notes="Duplicate request.", updated=first + timedelta(hours=1),
                        expected_datetime=(first + timedelta(days=1)).isoformat()),
        open311_request(638349, second, 37.762221815, -122.4651145, status="open",
                        expected_datetime=second.isoformat()),
    ]


class Open311Server(ApiServer):
    """``GET {prefix}/requests.json`` of GeoReport v2 over ``records``.

    Filters by ``requested_datetime`` within ``start_date``..``end_date`` (both
    inclusive, as the spec words them) and by ``service_code``; records whose date
    cannot be read are answered whatever the window (a sloppy server). With
    ``round_to_days`` the window is widened to whole UTC days, as some servers do;
    ``api_key`` makes the key query parameter required (403 otherwise, in the
    spec's error shape).
    """

    def __init__(self, records: Iterable[dict[str, Any]], prefix: str = "/open311/v2",
                 round_to_days: bool = False, api_key: str | None = None,
                 cap: int = 1000) -> None:
        super().__init__()
        self.records = list(records)
        self.prefix = prefix
        self.round_to_days = round_to_days
        self.api_key = api_key
        self.cap = cap
        #: Requests answered in all, counting repeats across windows.
        self.served = 0

    @property
    def endpoint(self) -> str:
        return self.url + self.prefix

    def answer(self, path: str, query: dict[str, str], headers: Message) -> Reply:
        if path != f"{self.prefix}/requests.json":
            return Reply(404, [{"code": 404, "description": f"no such resource {path}"}])
        if self.api_key is not None and query.get("api_key") != self.api_key:
            return Reply(403, [{"code": 403, "description": "Invalid api_key received"}])
        start, end = _instant(query.get("start_date")), _instant(query.get("end_date"))
        if self.round_to_days:
            start = start and start.astimezone(UTC).replace(hour=0, minute=0, second=0)
            end = end and (end.astimezone(UTC).replace(hour=0, minute=0, second=0)
                           + timedelta(days=1))
        codes = set(query["service_code"].split(",")) if query.get("service_code") else None
        out = []
        for record in self.records:
            if not isinstance(record, Mapping):  # junk in the feed goes out as it is
                out.append(record)
                continue
            moment = _instant(record.get("requested_datetime"))
            if moment is not None and ((start and moment < start) or (end and moment > end)):
                continue
            if codes is not None and str(record.get("service_code")) not in codes:
                continue
            out.append(record)
        self.served += len(out[: self.cap])
        return Reply(200, out[: self.cap])


# ------------------------------------------------------------------- SensorThings
def sensorthings_thing(base: str, thing_id: Any, name: str, description: str = "",
                       properties: Mapping[str, Any] | None = None,
                       location: tuple[float, float] | Mapping[str, Any] | None = None,
                       datastreams: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A Thing as OGC 18-088 (SensorThings API 1.1) shows its entities, expanded.

    Control information (``@iot.id``, ``@iot.selfLink``, ``…@iot.navigationLink``)
    follows the spec's "Common control information"; the Thing, Location (GeoJSON,
    ``encodingType: application/geo+json``), Datastream and Observation members
    follow its entity examples. ``location`` is (lon, lat) or any GeoJSON object;
    each datastream is ``{"id", "name", "unit", "observation": (time, result) | None}``.
    """
    link = f"{base}/Things({thing_id})"
    thing: dict[str, Any] = {
        "@iot.id": thing_id,
        "@iot.selfLink": link,
        "Locations@iot.navigationLink": f"{link}/Locations",
        "Datastreams@iot.navigationLink": f"{link}/Datastreams",
        "HistoricalLocations@iot.navigationLink": f"{link}/HistoricalLocations",
        "name": name,
        "description": description,
        "properties": dict(properties or {}),
        "Locations": [],
        "Datastreams": [],
    }
    if location is not None:
        geometry = ({"type": "Point", "coordinates": list(location)}
                    if isinstance(location, tuple) else dict(location))
        thing["Locations"].append({
            "@iot.id": thing_id,
            "@iot.selfLink": f"{base}/Locations({thing_id})",
            "name": f"{name} location",
            "description": f"Where {name} stands",
            "encodingType": "application/geo+json",
            "location": {"type": "Feature", "geometry": geometry},
        })
    for stream in datastreams:
        stream_link = f"{base}/Datastreams({stream['id']})"
        observations = []
        if stream.get("observation") is not None:
            time, result = stream["observation"]
            observations.append({
                "@iot.id": f"{stream['id']}-latest",
                "@iot.selfLink": f"{base}/Observations({stream['id']}-latest)",
                "phenomenonTime": time,
                "resultTime": time,
                "result": result,
            })
        thing["Datastreams"].append({
            "@iot.id": stream["id"],
            "@iot.selfLink": stream_link,
            "Thing@iot.navigationLink": f"{stream_link}/Thing",
            "Sensor@iot.navigationLink": f"{stream_link}/Sensor",
            "ObservedProperty@iot.navigationLink": f"{stream_link}/ObservedProperty",
            "Observations@iot.navigationLink": f"{stream_link}/Observations",
            "name": stream["name"],
            "description": f"{stream['name']} of {name}",
            "unitOfMeasurement": {"name": stream.get("unit_name", ""), "symbol": stream.get("unit", ""),
                                  "definition": stream.get("definition", "")},
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "Observations": observations,
        })
    return thing


def sensorthings_spec_example(base: str) -> list[dict[str, Any]]:
    """OGC 18-088's example entities joined up: the Thing "Oven" (properties owner and
    color), the Location "CCIT" at [-114.06, 51.05], the Datastream "oven temperature"
    in °C and its Observation 70.4 at 2014-12-31T11:59:59.00+08:00."""
    return [sensorthings_thing(
        base, 1, "Oven", "This thing is an oven.",
        properties={"owner": "Noah Liang", "color": "Black"},
        location=(-114.06, 51.05),
        datastreams=[{"id": 1, "name": "oven temperature", "unit": "°C",
                      "unit_name": "degree Celsius",
                      "definition": "http://unitsofmeasure.org/ucum.html#para-30",
                      "observation": ("2014-12-31T11:59:59.00+08:00", 70.4)}],
    )]


class SensorThingsServer(ApiServer):
    """``GET {root}/Things`` of SensorThings 1.1 with server-driven paging.

    Answers ``{"@iot.count", "value": […], "@iot.nextLink"}``: at most ``$top``
    Things (capped at ``max_top``) from ``$skip``, and a next link carrying the same
    query with the next ``$skip`` while Things remain ("Server-driven paging").
    ``$expand`` is honoured for Locations, Datastreams and Datastreams/Observations;
    ``$filter`` understands ``name eq '…'`` and ``properties/<key> eq '…'`` (else 400).
    """

    def __init__(self, things: Iterable[dict[str, Any]] = (), root: str = "/v1.1",
                 max_top: int = 100) -> None:
        super().__init__()
        self.things = list(things)
        self.root = root
        self.max_top = max_top

    @property
    def endpoint(self) -> str:
        return self.url + self.root

    def answer(self, path: str, query: dict[str, str], headers: Message) -> Reply:
        if path != f"{self.root}/Things":
            return Reply(404, {"code": 404, "type": "error", "message": f"Not a valid path: {path}"})
        things = self.things
        if "$filter" in query:
            matcher = _st_filter(query["$filter"])
            if matcher is None:
                return Reply(400, {"code": 400, "type": "error",
                                   "message": f"Unsupported filter {query['$filter']!r}"})
            things = [t for t in things if matcher(t)]
        top = min(int(query.get("$top", self.max_top)), self.max_top)
        skip = int(query.get("$skip", 0))
        expand = query.get("$expand", "")
        page = [_st_expand(t, expand) for t in things[skip: skip + top]]
        body: dict[str, Any] = {"@iot.count": len(things), "value": page}
        if skip + top < len(things):
            body["@iot.nextLink"] = (f"{self.url}{path}?"
                                     + urlencode({**query, "$top": top, "$skip": skip + top}))
        return Reply(200, body)


def _st_filter(expression: str) -> Any:
    left, op, right = (expression.split(" ", 2) + ["", ""])[:3]
    if op != "eq" or not (right.startswith("'") and right.endswith("'")):
        return None
    wanted = right[1:-1]
    if left == "name":
        return lambda thing: thing.get("name") == wanted
    if left.startswith("properties/"):
        key = left.split("/", 1)[1]
        return lambda thing: str(thing.get("properties", {}).get(key)) == wanted
    return None


def _st_expand(thing: dict[str, Any], expand: str) -> dict[str, Any]:
    parts = {p.split("(")[0] for p in expand.split(",") if p}
    out = dict(thing)
    if "Locations" not in parts:
        out.pop("Locations", None)
    if not any(p.startswith("Datastreams") for p in parts):
        out.pop("Datastreams", None)
    elif "Datastreams/Observations" not in parts:
        out["Datastreams"] = [{k: v for k, v in d.items() if k != "Observations"}
                              for d in thing["Datastreams"]]
    return out


# ------------------------------------------------------------------------ NGSI-LD
#: The core @context NGSI-LD answers carry (ETSI GS CIM 009, clause 4.3 / annex B).
NGSI_LD_CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"


def ngsild_spec_example() -> list[dict[str, Any]]:
    """ETSI GS CIM 009's example entities (annex C, normalized representation): the
    OffStreetParking "Downtown1" at [-8.5, 41.2] with ``availableSpotNumber`` observed
    at 2017-07-29T12:05:02Z, and the Vehicle "A4567" (no location: a bad record for a
    map), plus a Smart Data Models AirQualityObserved dated by ``dateObserved``."""
    return [
        {
            "id": "urn:ngsi-ld:OffStreetParking:Downtown1",
            "type": "OffStreetParking",
            "name": {"type": "Property", "value": "Downtown One"},
            "availableSpotNumber": {
                "type": "Property", "value": 121, "observedAt": "2017-07-29T12:05:02Z",
                "reliability": {"type": "Property", "value": 0.7},
                "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Camera:C1"},
            },
            "totalSpotNumber": {"type": "Property", "value": 200},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [-8.5, 41.2]}},
        },
        {
            "id": "urn:ngsi-ld:Vehicle:A4567",
            "type": "Vehicle",
            "brandName": {"type": "Property", "value": "Mercedes"},
            "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1",
                         "observedAt": "2017-07-29T12:00:04Z",
                         "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob"}},
        },
        {
            "id": "urn:ngsi-ld:AirQualityObserved:Madrid-Plaza-de-Espana",
            "type": "AirQualityObserved",
            "dateObserved": {"type": "Property",
                             "value": {"@type": "DateTime", "@value": "2016-03-15T11:00:00Z"}},
            "NO2": {"type": "Property", "value": 22, "unitCode": "GP"},
            "address": {"type": "Property", "value": {"addressLocality": "Madrid",
                                                      "streetAddress": "Plaza de España"}},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [-3.712247222, 40.423852777]}},
        },
    ]


def ngsild_key_values(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An entity in the simplified representation (``options=keyValues``, clause 4.5.3)."""
    out: dict[str, Any] = {}
    for name, member in entity.items():
        if isinstance(member, Mapping) and member.get("type") in ("Property", "GeoProperty"):
            value = member.get("value")
            out[name] = value
        elif isinstance(member, Mapping) and member.get("type") == "Relationship":
            out[name] = member.get("object")
        else:
            out[name] = member
    return out


class NgsiLdServer(ApiServer):
    """``GET /ngsi-ld/v1/entities`` (Query Entities, clause 6.4.3.2) over ``entities``.

    ``type`` filters, ``limit``/``offset`` page (default limit 20; above ``max_limit``
    a 400 ProblemDetails), ``count=true`` adds ``NGSILD-Results-Count`` (clause
    6.3.13; not with ``count_header=False``, like a broker that ignores it),
    ``options=keyValues`` answers the simplified representation. With
    ``Accept: application/ld+json`` each entity carries its ``@context``; otherwise
    the answer is ``application/json`` with the context in a ``Link`` header.
    """

    def __init__(self, entities: Iterable[dict[str, Any]] = (), max_limit: int = 1000,
                 count_header: bool = True) -> None:
        super().__init__()
        self.entities = list(entities)
        self.max_limit = max_limit
        self.count_header = count_header

    def answer(self, path: str, query: dict[str, str], headers: Message) -> Reply:
        if path != "/ngsi-ld/v1/entities":
            return _problem(404, "ResourceNotFound", f"no such resource {path}")
        try:
            limit = int(query.get("limit", 20))
            offset = int(query.get("offset", 0))
        except ValueError:
            return _problem(400, "BadRequestData", "limit and offset must be integers")
        if not 0 <= limit <= self.max_limit:
            return _problem(400, "BadRequestData", f"limit must be in [0, {self.max_limit}]")
        entities = [e for e in self.entities
                    if "type" not in query or e.get("type") == query["type"]]
        page = entities[offset: offset + limit]
        if "keyValues" in query.get("options", "").split(","):
            page = [ngsild_key_values(e) for e in page]
        reply_headers: dict[str, str] = {}
        if query.get("count") == "true" and self.count_header:
            reply_headers["NGSILD-Results-Count"] = str(len(entities))
        if "application/ld+json" in headers.get("Accept", ""):
            page = [{**e, "@context": NGSI_LD_CORE_CONTEXT} for e in page]
            return Reply(200, page, reply_headers, "application/ld+json")
        reply_headers["Link"] = (f'<{NGSI_LD_CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
                                 'type="application/ld+json"')
        return Reply(200, page, reply_headers)


def _problem(status: int, kind: str, detail: str) -> Reply:
    """An error as NGSI-LD answers one: RFC 7807 ProblemDetails (clause 5.5.2)."""
    return Reply(status, {"type": f"https://uri.etsi.org/ngsi-ld/errors/{kind}",
                          "title": kind, "detail": detail},
                 content_type="application/json")
