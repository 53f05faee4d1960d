"""Property-based fuzzing of every route the server has (Hypothesis), and the kept corpus.

Every rule of ``app.server.url_map`` has a strategy in :data:`STRATEGIES` (a new route
without one fails :func:`test_every_route_has_a_strategy`). Each strategy draws whole
requests: path parameters (cell ids as any text, integers of any size, valid cells at
every resolution with res 0 and the pentagons, event ids, layer and metric names),
query strings, JSON bodies (deeply nested, large, wrong types) and the caller
(anonymous or a signed-in operator). Whatever is drawn, the answer must be:

- never a 5xx;
- under ``/api/`` and for Dash's callback endpoint, JSON (a 204 has no body);
- a 400 names the bad parameter (``"parameter"``), one the request really had.

Two synthetic cities of different shapes (Testburg: the default map; Ceshi Town: a
finer base resolution and a coarser zoom step, so a different set of served
resolutions) are fuzzed; a cell profile must answer exactly at the resolutions the
city's config serves (computed here from the config, not asked of the app).

Runs are reproducible (``derandomize=True``) and bounded (``max_examples`` per route).
What fuzzing found is kept as data in ``tests/corpus/api/*.json`` and replayed on
every run with the status it must now get.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import h3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.synthetic_city import CESHI, TESTBURG, CitySpec, write_city

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "api"
MAX_EXAMPLES = int(os.environ.get("CITYBRAIN_FUZZ_EXAMPLES", "50"))
OPERATOR_TOKEN = "fuzz-operator-token-0123456789"
ROLES = ("anonymous", "operator")

EXTRA_TOML = """
[events]
store = "sqlite"
path = "{events}"

[[users]]
name = "officer"
role = "operator"
token_env = "CB_FUZZ_OPERATOR"

[[indicators]]
name = "open_requests"
title_zh = "未办结诉求"
title_en = "Open requests"
layer = "government"
role = "requests"
kind = "count"
where = {{ is_open = [true] }}
thresholds = {{ warn = 1, alarm = 100000 }}
forecast = false

[[rules]]
name = "open-requests-high"
kind = "threshold"
indicator = "open_requests"
title_zh = "未办结诉求积压"
title_en = "Open requests backlog"
{map}
"""

#: Ceshi Town's map: base resolution 11 and a zoom step at 6, so it serves 6 … 11.
CESHI_MAP = """
[map]
base_res = 11
res_by_zoom = [[0.0, 6], [9.0, 8], [11.5, 9], [12.75, 10]]
"""


@dataclass
class City:
    """The running app and the real values strategies mix in (so some requests succeed)."""

    name: str
    app: Any
    client: Any
    event_ids: list[int]
    cells: list[str]
    served: tuple[int, ...]
    layers: list[str]
    metrics: list[str]
    callbacks: dict[str, Any] = field(default_factory=dict)


def _served(base_res: int, steps: list[tuple[float, int]]) -> tuple[int, ...]:
    """The resolutions a city serves, as docs/new-city.md says: its zoom steps, its base
    resolution and the API's 7 … 10."""
    return tuple(sorted({res for _, res in steps} | {base_res} | {7, 8, 9, 10}))


CITIES: dict[str, tuple[CitySpec, str, tuple[int, ...]]] = {
    "testburg": (TESTBURG, "", _served(10, [(0.0, 7), (9.0, 8), (11.5, 9), (12.75, 10)])),
    "ceshi": (CESHI, CESHI_MAP, _served(11, [(0.0, 6), (9.0, 8), (11.5, 9), (12.75, 10)])),
}


@pytest.fixture(scope="module", params=sorted(CITIES))
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    from app import create_app, load_config
    from layers import LAYERS

    spec, map_toml, served = CITIES[request.param]
    directory = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    written = write_city(directory, spec)
    with written.config_path.open("a", encoding="utf-8") as handle:
        handle.write(EXTRA_TOML.format(events=directory / "events.sqlite3", map=map_toml))
    patch = pytest.MonkeyPatch()
    patch.setenv("CB_FUZZ_OPERATOR", OPERATOR_TOKEN)
    patch.setenv("CITYBRAIN_SECRET_KEY", "fuzz-secret")
    app = create_app(load_config(written.config_path), start_ingest=False)
    client = app.server.test_client()
    assert client.get("/_dash-layout").status_code == 200  # Dash registers its callbacks
    services = app.services
    assert services.store.config.map.served_resolutions == served
    events = services.events.events(limit=50)
    assert events, "the synthetic requests made no events"
    frame = services.store.frame("government", "requests")
    base = sorted({int(c) for c in frame["cell"].to_numpy()})[:20]
    cells = sorted({h3.cell_to_parent(h3.int_to_str(c), r) for c in base for r in served
                    if r <= h3.get_resolution(h3.int_to_str(c))})
    metrics = sorted({m.name for layer in LAYERS.values()
                      for m in layer.metrics(services.store.config.sources)})
    yield City(name=request.param, app=app, client=client, event_ids=[e.id for e in events],
               cells=cells, served=served, layers=list(LAYERS), metrics=metrics,
               callbacks=dict(app.callback_map))
    patch.undo()


# --------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Request:
    """One drawn request, and the parameter names it carries (what a 400 may name)."""

    method: str
    path: str
    names: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str = "application/json"
    role: str = "anonymous"

    def url(self) -> str:
        return self.path + (f"?{urlencode(self.query)}" if self.query else "")

    def describe(self) -> str:
        body = "" if self.body is None else f" body[{len(self.body)}]={self.body[:120]!r}"
        return f"{self.method} {self.url()[:300]} as {self.role}{body}"


class Body(bytes):
    """A request body whose repr stays short (a failing example may hold 2 MiB)."""

    def __repr__(self) -> str:
        return f"Body({bytes(self[:60])!r}…{len(self)} bytes)" if len(self) > 60 \
            else f"Body({bytes(self)!r})"


def _hex(n: int) -> str:
    return format(n, "x")


def _valid_cells() -> st.SearchStrategy[str]:
    """Valid H3 cells at every resolution 0 … 15, pentagons and res-0 cells included."""
    anywhere = st.builds(lambda lat, lon, res: h3.latlng_to_cell(lat, lon, res),
                         st.floats(-89.9, 89.9), st.floats(-179.9, 179.9), st.integers(0, 15))
    pentagons = st.integers(0, 15).flatmap(lambda r: st.sampled_from(sorted(h3.get_pentagons(r))))
    return st.one_of(anywhere, pentagons, st.sampled_from(sorted(h3.get_res0_cells())))


def cell_ids(city: City) -> st.SearchStrategy[str]:
    """Anything a client might put where a cell id goes."""
    return st.one_of(
        st.sampled_from(city.cells), _valid_cells(),
        st.text(max_size=40),
        st.integers().map(str),
        st.integers(min_value=0, max_value=2**80).map(_hex),
        st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: "0x" + _hex(n)),
        st.text(alphabet="0123456789abcdefABCDEF-+_ ", min_size=1, max_size=24))


def big_numbers() -> st.SearchStrategy[str]:
    """Numbers of any size as text (2^63, 2^64, a 5,000-digit one), and negatives."""
    return st.one_of(st.integers().map(str), st.integers(min_value=2**62, max_value=2**70).map(str),
                     st.integers(1, 6000).map(lambda n: "9" * n), st.sampled_from(["-1", "0", "1e9"]))


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=30))


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
        max_leaves=12)


#: Bodies past the limits (api.limits): deep nesting, over the size cap, not JSON at all.
SPECIAL_BODIES = tuple(Body(b) for b in (
    b"[" * 100_000, b"[" * 65 + b"]" * 65, b"{\"a\":" * 5000 + b"1" + b"}" * 5000,
    b"x" * (2 * 1024 * 1024 + 1), b"\xff\xfe\x00", b"", b"null", b"[]",
    b'{"to": "' + b"a" * 300_000 + b'"}'))


def bodies(fields: st.SearchStrategy[dict[str, Any]] | None = None) -> st.SearchStrategy[bytes]:
    """JSON bodies: special ones, any JSON, and (when given) objects of the route's own fields."""
    options = [st.sampled_from(SPECIAL_BODIES),
               json_values().map(lambda v: Body(json.dumps(v).encode()))]
    if fields is not None:
        options.append(fields.map(lambda v: Body(json.dumps(v).encode())))
    return st.one_of(*options)


def query(city: City, keys: tuple[str, ...]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """A query string of the route's own keys (and a stray one), with good and bad values."""
    value = st.one_of(st.sampled_from(["7", "8", "9", "10", "0", "15", "open", "all", "active",
                                       "cleared", "new,closed", "-1", ""]),
                      st.sampled_from(city.metrics), st.sampled_from(city.cells),
                      big_numbers(), st.text(max_size=30))
    key = st.sampled_from([*keys, "unknown"]) if keys else st.just("unknown")
    return st.lists(st.tuples(key, value), max_size=4).map(tuple)


def roles() -> st.SearchStrategy[str]:
    return st.sampled_from(ROLES)


def _path(text: str) -> str:
    return quote(text, safe="")


def get(path: st.SearchStrategy[str], names: tuple[str, ...], city: City,
        keys: tuple[str, ...] = ()) -> st.SearchStrategy[Request]:
    return st.builds(lambda p, q, r: Request("GET", p, frozenset(names + keys), q, role=r),
                     path, query(city, keys), roles())


def post(path: st.SearchStrategy[str], names: tuple[str, ...],
         body: st.SearchStrategy[bytes]) -> st.SearchStrategy[Request]:
    content = st.sampled_from(["application/json", "application/json", "text/plain",
                               "application/x-www-form-urlencoded"])
    return st.builds(lambda p, b, c, r: Request("POST", p, frozenset((*names, "body")), body=b,
                                                content_type=c, role=r),
                     path, body, content, roles())


def event_ids(city: City) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(city.event_ids).map(str), big_numbers())


def transition_fields() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(["to", "department", "note", "expected_version", "other"])
    values = st.one_of(scalars(), st.sampled_from(["dispatched", "closed", "in_progress", "new"]),
                       st.integers(min_value=2**62, max_value=2**70), st.just("a\x00b"),
                       st.text(min_size=190, max_size=2100))
    return st.dictionaries(keys, values, max_size=5)


def login_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(["name", "password", "other"]), scalars(), max_size=3)


def callback_bodies(city: City) -> st.SearchStrategy[bytes]:
    """Dash callback requests: a registered callback with any values for its inputs, or
    any JSON (wrong shapes, unknown outputs)."""
    def shaped(key: str, values: list[Any]) -> bytes:
        entry = city.callbacks[key]
        deps = [*entry["inputs"], *entry["state"]]
        filled = [[] if d["id"].startswith("{") else
                  {"id": d["id"], "property": d["property"], "value": v}
                  for d, v in zip(deps, values + [None] * len(deps), strict=False)]
        outputs = [{"id": o.component_id, "property": o.component_property}
                   if not isinstance(o.component_id, dict) else []
                   for o in (entry["output"] if isinstance(entry["output"], list)
                             else [entry["output"]])]
        trigger = f"{entry['inputs'][0]['id']}.{entry['inputs'][0]['property']}"
        payload = {"output": key, "outputs": outputs if isinstance(entry["output"], list)
                   else outputs[0], "inputs": filled[:len(entry["inputs"])],
                   "state": filled[len(entry["inputs"]):], "changedPropIds": [trigger]}
        return Body(json.dumps(payload).encode())

    real = st.builds(shaped, st.sampled_from(sorted(city.callbacks)),
                     st.lists(json_values(), max_size=12))
    return st.one_of(real, bodies())


#: Every rule of app.server.url_map → the requests drawn for it.
STRATEGIES: dict[str, Callable[[City], st.SearchStrategy[Request]]] = {
    "/api/health": lambda c: get(st.just("/api/health"), (), c),
    "/api/layers": lambda c: get(st.just("/api/layers"), (), c),
    "/api/dead-letters": lambda c: get(st.just("/api/dead-letters"), (), c, ("source",)),
    "/api/layers/<layer_id>/cells": lambda c: get(
        st.one_of(st.sampled_from(c.layers), st.text(max_size=20)).map(
            lambda n: f"/api/layers/{_path(n)}/cells"), ("layer_id",), c,
        ("res", "metric", "limit", "cursor")),
    "/api/cells/<cell_id>": lambda c: get(cell_ids(c).map(lambda t: f"/api/cells/{_path(t)}"),
                                          ("cell_id",), c),
    "/api/<path:rest>": lambda c: get(st.text(max_size=40).map(lambda t: f"/api/{_path(t)}"),
                                      ("rest",), c),
    "/api/events": lambda c: get(st.just("/api/events"), (), c,
                                 ("status", "department", "cell", "limit", "cursor")),
    "/api/events/stats": lambda c: get(st.just("/api/events/stats"), (), c),
    "/api/events/<int:event_id>": lambda c: get(
        event_ids(c).map(lambda i: f"/api/events/{i}"), ("event_id",), c),
    "/api/events/<int:event_id>/transition": lambda c: post(
        event_ids(c).map(lambda i: f"/api/events/{i}/transition"),
        ("event_id", "to", "department", "note", "expected_version"), bodies(transition_fields())),
    "/api/events/login": lambda c: post(st.just("/api/events/login"), ("name", "password"),
                                        bodies(login_fields())),
    "/api/events/logout": lambda c: post(st.just("/api/events/logout"), (), bodies()),
    "/api/events/me": lambda c: get(st.just("/api/events/me"), (), c),
    "/api/signs": lambda c: get(st.just("/api/signs"), (), c),
    "/api/alerts": lambda c: get(st.just("/api/alerts"), (), c, ("state", "limit", "cursor")),
    "/api/alerts/<alert_id>/ack": lambda c: post(
        st.text(max_size=30).map(lambda t: f"/api/alerts/{_path(t) or 'x'}/ack"), ("alert_id",),
        bodies()),
    # Dash's own routes: the page, its assets and the callback endpoint.
    "/": lambda c: get(st.just("/"), (), c, ("tour", "lang")),
    "/<path:path>": lambda c: get(st.text(min_size=1, max_size=40).map(lambda t: "/" + _path(t)),
                                  ("path",), c),
    "/static/<path:filename>": lambda c: get(
        st.text(max_size=30).map(lambda t: "/static/" + t.replace("?", "").replace("#", "")),
        ("filename",), c),
    "/assets/<path:filename>": lambda c: get(
        st.one_of(st.just("../app.py"), st.text(max_size=30)).map(
            lambda t: "/assets/" + t.replace("?", "").replace("#", "")), ("filename",), c),
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>": lambda c: get(
        st.tuples(st.sampled_from(["dash", "plotly", "..", "x"]), st.text(max_size=30)).map(
            lambda t: f"/_dash-component-suites/{t[0]}/{_path(t[1]) or 'x'}"),
        ("package_name", "fingerprinted_path"), c),
    "/_dash-layout": lambda c: get(st.just("/_dash-layout"), (), c),
    "/_dash-dependencies": lambda c: get(st.just("/_dash-dependencies"), (), c),
    "/_dash-update-component": lambda c: post(st.just("/_dash-update-component"),
                                              ("output", "outputs", "inputs", "state",
                                               "changedPropIds"), callback_bodies(c)),
    "/_reload-hash": lambda c: get(st.just("/_reload-hash"), (), c),
    "/_favicon.ico": lambda c: get(st.just("/_favicon.ico"), (), c),
}

#: Paths whose answers are JSON whatever happens (Dash's page and assets are not).
JSON_PATHS = ("/api/", "/_dash-update-component")


def send(city: City, request: Request) -> Any:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"} if request.role == "operator" else {}
    return city.client.open(request.url(), method=request.method, data=request.body,
                            content_type=request.content_type if request.body is not None else None,
                            headers=headers)


def check(city: City, request: Request, expected: int | None = None) -> Any:
    """Send ``request`` and assert what every answer must be; return the answer."""
    answer = send(city, request)
    what = f"{request.describe()} → {answer.status_code} {answer.get_data()[:300]!r}"[:1500]
    assert answer.status_code < 500, what
    if expected is not None:
        assert answer.status_code == expected, what
    if request.path.startswith(JSON_PATHS) and answer.status_code != 204:
        assert answer.is_json, what
        body = answer.get_json()
        if answer.status_code >= 400:
            assert isinstance(body, dict) and body.get("error"), what
        if answer.status_code == 400:
            assert body.get("parameter") in request.names, what
    return answer


def test_every_route_has_a_strategy(city: City) -> None:
    rules = {r.rule for r in city.app.server.url_map.iter_rules()}
    assert sorted(rules - set(STRATEGIES)) == [], "routes without a strategy in STRATEGIES"
    assert sorted(set(STRATEGIES) - rules) == []


@pytest.mark.parametrize("rule", sorted(STRATEGIES))
def test_no_request_breaks_a_route(city: City, rule: str) -> None:
    strategy = STRATEGIES[rule](city)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=strategy)
    def fuzz(request: Request) -> None:
        check(city, request)

    fuzz()


def test_cell_profiles_answer_exactly_the_served_resolutions(city: City) -> None:
    """Every resolution 0 … 15 (pentagons included): 200 where the config serves it, else
    a 400 naming ``cell_id`` and the served resolutions — never a continent-sized profile."""
    lat, lon = TESTBURG.center_lat, TESTBURG.center_lon
    if city.name == "ceshi":
        lat, lon = CESHI.center_lat, CESHI.center_lon
    for res in range(16):
        for cell in (h3.latlng_to_cell(lat, lon, res), sorted(h3.get_pentagons(res))[3]):
            answer = check(city, Request("GET", f"/api/cells/{cell}", frozenset({"cell_id"})))
            if res in city.served:
                assert answer.status_code == 200, (cell, res)
                assert answer.get_json()["area_km2"] == pytest.approx(
                    h3.cell_area(cell, "km^2"), rel=1e-3, abs=1e-4)
            else:
                assert answer.status_code == 400, (cell, res)
                assert answer.get_json()["valid_resolutions"] == list(city.served)


# ----------------------------------------------------------------------- corpus
def corpus_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        for i, case in enumerate(json.loads(path.read_text(encoding="utf-8"))["cases"]):
            cases.append((f"{path.stem}[{i}]", case))
    return cases


def corpus_request(city: City, case: dict[str, Any]) -> Request:
    """A corpus case as a request: ``{event}`` / ``{cell}`` in the path are the city's own."""
    path = case["path"].format(event=city.event_ids[0], cell=city.cells[-1])
    body: bytes | None = None
    if "json" in case:
        body = json.dumps(case["json"]).encode()
    elif "repeat" in case:  # [text, times]: a body too large to keep as it is
        body = "".join(str(text) * int(times) for text, times in case["repeat"]).encode()
    elif "body" in case:
        body = case["body"].encode("utf-8", "surrogateescape")
    return Request(case.get("method", "GET"), path, frozenset(case.get("names", ())),
                   body=body, content_type=case.get("content_type", "application/json"),
                   role=case.get("role", "anonymous"))


@pytest.mark.parametrize(("name", "case"), corpus_cases(), ids=[n for n, _ in corpus_cases()])
def test_corpus_cases_are_answered_as_recorded(city: City, name: str, case: dict[str, Any]) -> None:
    answer = check(city, corpus_request(city, case), case.get("status"))
    if "parameter" in case:
        assert answer.get_json()["parameter"] == case["parameter"], name
