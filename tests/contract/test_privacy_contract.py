"""Privacy by role: every Dash callback and every API route, for every role.

The city is synthetic (Testburg, :mod:`tests.synthetic_city`) with an event pipeline,
vital signs, users for the exhibition, viewer and operator roles (API tokens from the
environment), and its service requests declared person-level. Every request
description carries a made-up resident's name, address and phone number.

Each registered callback is driven through Dash's own HTTP endpoint
(``/_dash-update-component``) with a payload built from its inputs and state, and
each ``/api`` route of ``app.server.url_map`` is called, anonymously and as each role.
What the anonymous caller and the exhibition wall get must hold no free text, no
names or addresses, no exact event coordinates, no event ids and no count of people
below k; viewers and operators get the details (which proves the checks can see
them). A callback or route without an entry in :data:`CALLBACKS` / :data:`ROUTES`
fails the test: a new one must say what each role may see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest

from tests.synthetic_city import TESTBURG, write_city

K = 10
PII = ("Jane Doe", "12 Elm St", "555-0100")
TOKENS = {"exhibition": "exhibition-token-0123456789", "viewer": "viewer-token-0123456789",
          "operator": "operator-token-0123456789"}
ROLES = ("anonymous", "exhibition", "viewer", "operator")
PUBLIC = ("anonymous", "exhibition")

EXTRA_TOML = """
[events]
store = "sqlite"
path = "{events}"

[[users]]
name = "hall"
role = "exhibition"
token_env = "CB_PRIVACY_HALL"

[[users]]
name = "analyst"
role = "viewer"
token_env = "CB_PRIVACY_VIEWER"

[[users]]
name = "officer"
role = "operator"
token_env = "CB_PRIVACY_OPERATOR"

[privacy]
k = {k}
person_sources = ["requests"]

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
"""


@dataclass
class City:
    """The running app and what the checks need to know about its data."""

    app: Any
    client: Any
    event_id: int
    event_version: int
    event_points: list[tuple[float, float]]
    small_cell: str
    area: dict[str, str]
    view: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    from app import create_app, load_config

    directory = tmp_path_factory.mktemp("privacy-city")
    written = write_city(directory, TESTBURG)
    requests = directory / "requests.csv"
    text = requests.read_text(encoding="utf-8")
    assert "reported near house" in text
    requests.write_text(text.replace(
        "reported near house", "Resident Jane Doe, 12 Elm St, phone 555-0100, reported near house"),
        encoding="utf-8")
    with written.config_path.open("a", encoding="utf-8") as handle:
        handle.write(EXTRA_TOML.format(events=directory / "events.sqlite3", k=K))
    patch = pytest.MonkeyPatch()
    for env, role in (("CB_PRIVACY_HALL", "exhibition"), ("CB_PRIVACY_VIEWER", "viewer"),
                      ("CB_PRIVACY_OPERATOR", "operator")):
        patch.setenv(env, TOKENS[role])
    patch.setenv("CITYBRAIN_SECRET_KEY", "privacy-contract-secret")
    config = load_config(written.config_path)
    app = create_app(config, start_ingest=False)
    client = app.server.test_client()
    assert client.get("/_dash-layout").status_code == 200  # Dash registers its callbacks
    pipeline = _services(app).events
    events = pipeline.events(limit=1000)
    assert events, "the synthetic requests made no events"
    event = events[0]
    assert any(p in event.description for p in PII)
    data = _services(app).store
    requests_rows = data.frame("government", "requests")
    base = pd.Series(1, index=requests_rows["cell"].to_numpy()).groupby(level=0).sum()
    at9 = base.groupby(h3_parents(base.index, 9)).sum()
    small = next(int(c) for c, n in at9.items() if 0 < n < K)
    boundary = data.boundaries[0]
    lat, lon = config.city.center_lat, config.city.center_lon
    view = {"zoom": 16.0, "center": [lat, lon],
            "bbox": [lon - 0.2, lat - 0.2, lon + 0.2, lat + 0.2]}
    yield City(app=app, client=client, event_id=event.id, event_version=event.version,
               event_points=sorted({(round(e.lat, 5), round(e.lon, 5)) for e in events}),
               small_cell=format(small, "x"),
               area={"level": boundary.spec.level,
                     "name": str(boundary.cells["name"].iloc[0])}, view=view)
    patch.undo()


def h3_parents(cells: pd.Index, res: int) -> list[int]:
    return [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in cells]


def _services(app: Any) -> Any:
    """The app's :class:`services.Services` (``create_app`` keeps it as ``app.services``)."""
    return app.services


# ------------------------------------------------------------------ what is seen
def headers(role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"Authorization": f"Bearer {TOKENS[role]}"}


def leaks(city: City, body: str) -> list[str]:
    """What a public answer must not hold: people's text, exact places, event ids."""
    found = [p for p in PII if p in body]
    places = set(city.event_points)
    found += [f"exact place {p}" for p in points_in(body) if p in places][:3]
    found += re.findall(r"event:\d+", body)[:3]
    return found


def _place(lat: Any, lon: Any) -> tuple[float, float] | None:
    if isinstance(lat, int | float) and isinstance(lon, int | float) \
            and not isinstance(lat, bool) and not isinstance(lon, bool):
        return round(float(lat), 5), round(float(lon), 5)
    return None


def points_in(body: str) -> set[tuple[float, float]]:
    """Every (lat, lon) a JSON answer holds: ``{lat, lon}`` objects, plotly ``lat``/``lon``
    arrays, and ``[lon, lat]`` pairs, rounded to 5 decimals (~1 m). Cell outlines (a
    trace's ``geojson``) are cells, which anyone may see: they are not walked."""
    try:
        document = json.loads(body)
    except ValueError:
        return set()
    found: set[tuple[float, float]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            lat, lon = node.get("lat"), node.get("lon")
            if isinstance(lat, list) and isinstance(lon, list):
                found.update(p for p in map(_place, lat, lon) if p is not None)
            elif (p := _place(lat, lon)) is not None:
                found.add(p)
            for key, value in node.items():
                if key != "geojson":
                    walk(value)
        elif isinstance(node, list):
            if len(node) == 2 and (p := _place(node[1], node[0])) is not None:
                found.add(p)
            for value in node:
                walk(value)

    walk(document)
    return found


def small_counts_in_profile(profile: dict[str, Any]) -> list[str]:
    gov = profile["layers"]["government"]
    shown = [m for m in gov["metrics"] if m["value"] is not None and 0 < m["value"] < K
             and m["name"] in ("requests", "count:requests")]
    shown += [i for b in gov["breakdowns"] if b["role"] == "requests" for i in b["items"]
              if i["count"] is not None and 0 < i["count"] < K]
    return [str(s) for s in shown]


# ------------------------------------------------------------------- callbacks
def _values(city: City) -> dict[str, Any]:
    """A value for every (component.property) a callback reads, as a page would send."""
    return {
        "store-language.data": "en", "store-theme.data": "dark", "url.search": "",
        "radio-hex-layer.value": "government", "dropdown-metric.value": None,
        "checklist-overlays.value": ["events", "alerts", "things"],
        "dropdown-outline.value": None, "store-view.data": city.view,
        "store-selected-cell.data": city.small_cell, "store-area.data": city.area,
        "interval-tick.n_intervals": 3, "store-replay.data": None,
        "store-ops-fingerprint.data": None, "store-revision.data": "city",
        "store-rendered.data": None, "store-camera.data": None,
        "tabs-panel.value": "events", "store-selected-event.data": city.event_id,
        "store-queue-filter.data": None, "store-session-user.data": None,
        "store-ops-changed.data": 0, "store-event-detail-key.data": None,
        "map.clickData": {"points": [{"customdata": [f"event:{city.event_id}"]}]},
        "map.relayoutData": {"map.zoom": 16.0, "map.center": {"lat": city.view["center"][0],
                                                              "lon": city.view["center"][1]}},
        "dropdown-district.value": city.area["name"], "dropdown-subarea.value": None,
        "slider-history.value": 0, "store-tour.data": None, "interval-tour.n_intervals": 1,
        "input-login-name.value": None, "input-login-password.value": None,
    }


def _patterns(city: City) -> dict[str, list[dict[str, Any]]]:
    """Concrete ids (and values) for pattern-matching dependencies, by their ``type``."""
    e = city.event_id
    return {
        "label": [{"id": {"type": "label", "key": "tab.events"}, "value": None}],
        "event-pick": [{"id": {"type": "event-pick", "list": "overdue", "event": e}, "value": 1}],
        "event-action": [{"id": {"type": "event-action", "event": e, "to": "dispatched",
                                 "version": city.event_version}, "value": 1}],
        "event-department": [{"id": {"type": "event-department", "event": e},
                              "value": "Public Works"}],
        "event-note": [{"id": {"type": "event-note", "event": e}, "value": "on it"}],
        "queue-pick": [{"id": {"type": "queue-pick", "department": "unassigned"}, "value": 1}],
        "alert-ack": [{"id": {"type": "alert-ack", "alert": "no-such-alert"}, "value": 1}],
        "layer-toggle": [],
    }


@dataclass(frozen=True)
class Expect:
    """One callback: what fires it, which tab it is looked at in, and what it shows."""

    trigger: str
    tab: str | None = None
    #: "detail" when viewers must see people's text here (proof the check can see it);
    #: "counts" when it shows a person-level count of ``small_cell`` or its area.
    shows: str | None = None


#: Every server callback by function name (clientside ones by their input). A new
#: callback fails the test until it is listed here with what it reveals.
CALLBACKS: dict[str, Expect] = {
    "toggle_language": Expect("button-language.n_clicks"),
    "toggle_theme": Expect("button-theme.n_clicks"),
    "apply_theme": Expect("store-theme.data"),
    "translate": Expect("store-language.data"),
    "metric_choices": Expect("radio-hex-layer.value"),
    "subarea_choices": Expect("dropdown-district.value"),
    "drill": Expect("dropdown-district.value"),
    "replay": Expect("button-replay-play.n_clicks"),
    "track_view": Expect("map.relayoutData"),
    "draw": Expect("store-view.data", shows="map"),
    "pick_cell": Expect("map.clickData"),
    "show_cell": Expect("store-selected-cell.data", shows="counts"),
    "show_area": Expect("store-area.data", shows="area"),
    "stale_banner": Expect("interval-tick.n_intervals"),
    "show_sources": Expect("interval-tick.n_intervals"),
    "start": Expect("url.search"),
    "advance": Expect("interval-tour.n_intervals"),
    "watch": Expect("interval-tick.n_intervals"),
    "on_sign_in": Expect("url.search"),
    "show_session": Expect("store-session-user.data"),
    "show_overview": Expect("tabs-panel.value", tab="events"),
    "pick_queue": Expect("queue-pick"),
    "pick_event": Expect("event-pick"),
    "detail": Expect("store-selected-event.data", tab="events", shows="detail"),
    "act": Expect("event-action"),
    "cell_events": Expect("store-selected-cell.data", tab="place"),
    "show_signs": Expect("tabs-panel.value", tab="signs"),
    "show_alerts": Expect("tabs-panel.value", tab="alerts"),
    "acknowledge": Expect("alert-ack"),
    "clientside:event-detail.children": Expect("event-detail.children"),
}


def _callback_name(key: str, entry: dict[str, Any]) -> str:
    function = entry.get("callback")
    if function is None:
        return "clientside:" + ",".join(f"{i['id']}.{i['property']}" for i in entry["inputs"])
    return str(getattr(function, "__name__", key))


def _dependency(dep: dict[str, Any], values: dict[str, Any],
                patterns: dict[str, list[dict[str, Any]]], tab: str | None) -> Any:
    raw = dep["id"]
    if raw.startswith("{"):
        kind = json.loads(raw)["type"]
        return [{"id": p["id"], "property": dep["property"], "value": p["value"]}
                for p in patterns.get(kind, [])]
    key = f"{raw}.{dep['property']}"
    value = tab if key == "tabs-panel.value" and tab is not None else values.get(key)
    return {"id": raw, "property": dep["property"], "value": value}


def _outputs(entry: dict[str, Any], patterns: dict[str, list[dict[str, Any]]]) -> Any:
    outputs = entry["output"] if isinstance(entry["output"], list) else [entry["output"]]
    shaped = []
    for output in outputs:
        if isinstance(output.component_id, dict):
            kind = output.component_id["type"]
            shaped.append([{"id": p["id"], "property": output.component_property}
                           for p in patterns.get(kind, [])])
        else:
            shaped.append({"id": output.component_id, "property": output.component_property})
    return shaped if isinstance(entry["output"], list) else shaped[0]


def call_callback(city: City, key: str, entry: dict[str, Any], expect: Expect,
                  role: str) -> tuple[int, str]:
    values, patterns = _values(city), _patterns(city)
    inputs = [_dependency(d, values, patterns, expect.tab) for d in entry["inputs"]]
    state = [_dependency(d, values, patterns, expect.tab) for d in entry["state"]]
    if expect.trigger in patterns:
        changed = [f"{json.dumps(p['id'], sort_keys=True, separators=(',', ':'))}.n_clicks"
                   for p in patterns[expect.trigger]]
    else:
        changed = [expect.trigger]
    payload = {"output": key, "outputs": _outputs(entry, patterns), "inputs": inputs,
               "state": state, "changedPropIds": changed}
    answer = city.client.post("/_dash-update-component", json=payload, headers=headers(role))
    body = answer.get_data(as_text=True)
    if answer.is_json:  # Dash writes "<" as \u003c: compare the text itself
        body = json.dumps(json.loads(body), ensure_ascii=False)
    return answer.status_code, body


def test_every_callback_checks_the_role(city: City) -> None:
    registered = {_callback_name(k, v): (k, v) for k, v in city.app.callback_map.items()}
    assert sorted(set(registered) - set(CALLBACKS)) == [], \
        "callbacks without an entry in CALLBACKS (say what each role may see there)"
    assert sorted(set(CALLBACKS) - set(registered)) == []
    seen: dict[tuple[str, str], str] = {}
    for name, (key, entry) in registered.items():
        expect = CALLBACKS[name]
        if name.startswith("clientside:"):
            continue  # runs in the browser: nothing is served
        for role in ROLES:
            status, body = call_callback(city, key, entry, expect, role)
            assert status in (200, 204), f"{name} as {role}: {status} {body[:300]}"
            seen[(name, role)] = body
            if role in PUBLIC:
                assert leaks(city, body) == [], f"{name} as {role} shows {leaks(city, body)[:5]}"
    # The checks can see a leak: viewers get the people's text where it belongs.
    for name, expect in CALLBACKS.items():
        if expect.shows == "detail":
            assert any(p in seen[(name, "viewer")] for p in PII), name
    # Small counts: the cell panel says "< k" to the public, the number to a viewer.
    assert f"< {K}" in seen[("show_cell", "anonymous")]
    assert f"< {K}" not in seen[("show_cell", "viewer")]
    # The map: the public's hexagon values of the person-level layer are never below k.
    for role in ROLES:
        figure = json.loads(seen[("draw", role)])["response"]["map"]["figure"]
        hexes = next(t for t in figure["data"] if t["uid"] == "hexes")
        if role in PUBLIC:
            assert hexes["type"] == "choroplethmap"  # never people as points
            assert [z for z in hexes["z"] if z is not None and 0 < z < K] == []
        else:
            assert hexes["type"] == "scattermap"  # zoom 16: single requests, for a viewer


# ---------------------------------------------------------------------- routes
@dataclass(frozen=True)
class Route:
    """One API route: a concrete request and the status each role gets."""

    method: str
    path: Callable[[City], str]
    status: dict[str, int]
    body: dict[str, Any] | None = None
    #: viewers must see people's text here (proof the leak check works).
    detail: bool = False


ALL_OK = {role: 200 for role in ROLES}
READERS = {"anonymous": 401, "exhibition": 403, "viewer": 200, "operator": 200}

#: Every /api route of the app (Flask rule → what each role gets).
ROUTES: dict[str, Route] = {
    "/api/health": Route("GET", lambda c: "/api/health", ALL_OK),
    "/api/dead-letters": Route("GET", lambda c: "/api/dead-letters",
                               {"anonymous": 401, "exhibition": 403, "viewer": 403,
                                "operator": 200}),
    "/api/layers": Route("GET", lambda c: "/api/layers", ALL_OK),
    "/api/layers/<layer_id>/cells": Route(
        "GET", lambda c: "/api/layers/government/cells?res=9", ALL_OK),
    "/api/cells/<cell_id>": Route("GET", lambda c: f"/api/cells/{c.small_cell}", ALL_OK),
    "/api/<path:rest>": Route("GET", lambda c: "/api/nothing-here", {r: 404 for r in ROLES}),
    "/api/events": Route("GET", lambda c: "/api/events?limit=50", READERS, detail=True),
    "/api/events/stats": Route("GET", lambda c: "/api/events/stats", READERS),
    "/api/events/<int:event_id>": Route("GET", lambda c: f"/api/events/{c.event_id}", READERS,
                                        detail=True),
    "/api/events/<int:event_id>/transition": Route(
        "POST", lambda c: f"/api/events/{c.event_id}/transition",
        {"anonymous": 401, "exhibition": 403, "viewer": 403, "operator": 409},
        body={"to": "dispatched", "expected_version": 987}),
    "/api/events/login": Route("POST", lambda c: "/api/events/login",
                               {r: 400 for r in ROLES}, body={"name": 1}),
    "/api/events/logout": Route("POST", lambda c: "/api/events/logout", ALL_OK, body={}),
    "/api/events/me": Route("GET", lambda c: "/api/events/me",
                            {"anonymous": 401, "exhibition": 200, "viewer": 200,
                             "operator": 200}),
    "/api/signs": Route("GET", lambda c: "/api/signs", ALL_OK),
    "/api/alerts": Route("GET", lambda c: "/api/alerts?state=all", ALL_OK),
    "/api/alerts/<alert_id>/ack": Route(
        "POST", lambda c: "/api/alerts/no-such-alert/ack",
        {"anonymous": 403, "exhibition": 403, "viewer": 403, "operator": 404}, body={}),
}


def test_every_api_route_checks_the_role(city: City) -> None:
    rules = {r.rule for r in city.app.server.url_map.iter_rules() if r.rule.startswith("/api")}
    assert sorted(rules - set(ROUTES)) == [], "routes without an entry in ROUTES"
    assert sorted(set(ROUTES) - rules) == []
    for rule, route in ROUTES.items():
        for role in ROLES:
            answer = city.client.open(route.path(city), method=route.method, json=route.body,
                                      headers=headers(role))
            body = answer.get_data(as_text=True)
            assert answer.status_code == route.status[role], f"{rule} as {role}: {body[:300]}"
            assert answer.is_json, f"{rule} as {role} did not answer JSON"
            if role in PUBLIC:
                assert leaks(city, body) == [], f"{rule} as {role} shows {leaks(city, body)}"
            elif route.detail:
                assert any(p in body for p in PII), f"{rule} as {role} shows no detail"


def test_public_cells_and_profiles_hide_small_counts_unrecoverably(city: City) -> None:
    """The API's cells answer at every resolution, as the public gets it: no count below
    k, and no hidden cell equal to a visible parent minus its visible children."""
    by_res: dict[int, dict[str, Any]] = {}
    for res in range(7, 11):
        answer = city.client.get(f"/api/layers/government/cells?res={res}&metric=requests")
        assert answer.status_code == 200
        by_res[res] = {c["cell"]: c for c in answer.get_json()}
        shown = [c["value"] for c in by_res[res].values() if c["value"] is not None]
        assert [v for v in shown if 0 < v < K] == []
        assert any(c["value"] is None and c["suppressed"] == f"< {K}"
                   for c in by_res[res].values())
    for res in range(7, 10):
        for cell, parent in by_res[res].items():
            if parent["value"] is None:
                continue
            children = [by_res[res + 1][c] for c in h3.cell_to_children(cell, res + 1)
                        if c in by_res[res + 1]]
            hidden = [c for c in children if c["value"] is None]
            assert len(hidden) != 1, f"{hidden[0]['cell']} = {cell} − its visible children"
    # A viewer gets the same cells with every count.
    viewer = city.client.get("/api/layers/government/cells?res=9&metric=requests",
                             headers=headers("viewer")).get_json()
    assert any(0 < c["value"] < K for c in viewer)
    public = city.client.get(f"/api/cells/{city.small_cell}").get_json()
    assert small_counts_in_profile(public) == []
    detail = city.client.get(f"/api/cells/{city.small_cell}", headers=headers("viewer")).get_json()
    assert small_counts_in_profile(detail) != []


def test_anonymous_may_be_viewer_only_without_users(tmp_path: Path) -> None:
    from app import create_app, load_config
    from config.kit import ConfigError

    written = write_city(tmp_path / "c", TESTBURG)
    with written.config_path.open("a", encoding="utf-8") as handle:
        handle.write('\n[privacy]\nanonymous = "viewer"\nperson_sources = ["requests"]\n'
                     '\n[[users]]\nname = "x"\nrole = "viewer"\ntoken_env = "X_TOKEN"\n')
    with pytest.raises(ConfigError, match=r"\[privacy\]\.anonymous"):
        create_app(load_config(written.config_path), start_ingest=False)
    with pytest.raises(ConfigError, match="valid sources are|valid source"):
        text = written.config_path.read_text(encoding="utf-8").replace(
            'person_sources = ["requests"]', 'person_sources = ["nope"]')
        written.config_path.write_text(text, encoding="utf-8")
        load_config(written.config_path)
