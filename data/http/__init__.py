"""HTTP API adapters: Open311 GeoReport v2, OGC SensorThings API 1.1 and NGSI-LD.

One module per protocol (:mod:`~data.http.open311`, :mod:`~data.http.sensorthings`,
:mod:`~data.http.ngsild`), on a shared client (:mod:`~data.http.client`) and base
class (:mod:`~data.http.adapter`).

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

from data.http.adapter import HttpAdapter, flatten, point_of
from data.http.client import HttpClient, HttpSettings
from data.http.ngsild import NgsiLdAdapter
from data.http.open311 import Open311Adapter
from data.http.sensorthings import SensorThingsAdapter

__all__ = [
    "HttpAdapter", "HttpClient", "HttpSettings", "NgsiLdAdapter", "Open311Adapter",
    "SensorThingsAdapter", "flatten", "point_of",
]
