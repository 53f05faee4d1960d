"""End-to-end: the operations panel of the real app in headless Chromium.

The app runs in a subprocess on the snapshot city, extended by a temporary config
(``cities/nyc/_e2e-ops-<pid>.toml``, deleted afterwards) that puts the event store
in a temporary folder and adds two vital signs and two warning rules that hold on
the snapshot's data. Users and the session secret come from the environment, as in
production: werkzeug hashes of test passwords, a test API token, a test secret key.

Covered: an operator signs in, opens an overdue event and moves it dispatched →
in_progress → resolved (audit trail on the page and in the API); a change made
meanwhile through the API makes the next click a conflict, shown and reloaded; the
events overlay colours events by state and a click on a marker opens that event and
the events of its cell; a viewer sees no action buttons; vital signs, alerts with
Acknowledge, and alert cells on the map. Every page stays offline and error-free.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from werkzeug.security import generate_password_hash

from tests.conftest import REPO, free_port, start_server, stop_server
from tests.e2e.mapping import GD, screen_point

pytestmark = pytest.mark.e2e

SCREENSHOTS = REPO / "var" / "screenshots"
VIEWPORT = {"width": 1600, "height": 900}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
IGNORED_CONSOLE = ("GL Driver Message", "WebGL", "GPU stall")
PASSWORDS = {"duty-officer": "operator-pass-4711", "analyst": "viewer-pass-4711"}
TOKEN = "duty-officer-e2e-token-0123456789"
GREY = "#8b95a7"

JS_MAP_DRAWN = f"""() => {{
    const gd = {GD};
    const hexes = gd && gd.data && gd.data.find(t => t.uid === 'hexes');
    const map = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot
        && gd._fullLayout.map._subplot.map;
    return !!(hexes && hexes.locations && hexes.locations.length && map && map.loaded());
}}"""
JS_TRACE = f"(uid) => {{ const t = {GD}.data.find(t => t.uid === uid); " \
           "return t ? {customdata: t.customdata || [], color: (t.marker || {}).color || [], " \
           "lat: t.lat || []} : null; }"

#: Two vital signs and two rules that hold on the snapshot city (as of its newest row).
OPS_TABLES = """
[[indicators]]
name = "requests_per_hour"
title_zh = "每小时诉求"
title_en = "Requests per hour"
layer = "government"
role = "requests"
kind = "rate"
bucket = "1h"
window = "24h"
unit_zh = "件/小时"
unit_en = "requests/h"
thresholds = { warn = 8, alarm = 15 }
forecast = { horizon = "3h" }

[[indicators]]
name = "open_requests"
title_zh = "未办结诉求"
title_en = "Open requests"
layer = "government"
role = "requests"
kind = "count"
where = { is_open = [true] }
unit_zh = "件"
unit_en = "requests"
thresholds = { warn = 200, alarm = 500 }
forecast = false

[[rules]]
name = "open-requests-high"
kind = "threshold"
indicator = "open_requests"
title_zh = "未办结诉求积压"
title_en = "Open requests backlog"

[[rules]]
name = "requests-cluster"
kind = "cell_count"
title_zh = "诉求聚集"
title_en = "Requests cluster"
layer = "government"
role = "requests"
res = 7
window = "2d"
above = 4
severity = "warn"
max_alerts = 10
"""


# ------------------------------------------------------------------- the app
@pytest.fixture(scope="module")
def ops_server() -> Iterator[str]:
    """The real app on the snapshot city with a private event store, users and rules."""
    folder = Path(tempfile.mkdtemp(prefix="citybrain-ops-e2e-"))
    config = REPO / "cities" / "nyc" / f"_e2e-ops-{os.getpid()}.toml"
    config.write_text('extends = "snapshot.toml"\n\n[events]\n'
                      f'path = {json.dumps(str(folder / "events.sqlite3"))}\n'
                      + OPS_TABLES, encoding="utf-8")
    env = {
        "CITYBRAIN_DUTY_OFFICER_PASSWORD_HASH": generate_password_hash(PASSWORDS["duty-officer"]),
        "CITYBRAIN_ANALYST_PASSWORD_HASH": generate_password_hash(PASSWORDS["analyst"]),
        "CITYBRAIN_DUTY_OFFICER_TOKEN": TOKEN,
        "CITYBRAIN_SECRET_KEY": "e2e-session-secret-not-for-production",
    }
    port = free_port()
    try:
        process = start_server([sys.executable, "app.py", "--config", str(config), "--port",
                                str(port)], port, env=env, log_name="ops-app")
    finally:
        config.unlink()  # read once at start; the repository keeps no test config
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


def api(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The JSON API as the duty officer (bearer token)."""
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


class Watched:
    """A page plus what it did that a clean, offline app must not do."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("response", lambda response: self.problems.append(
            f"{response.status} {response.url}") if response.status >= 500 else None)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not any(s in message.text for s in IGNORED_CONSOLE):
            self.problems.append(f"console: {message.text}")

    def assert_clean(self) -> None:
        offsite = [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob")
                   and urlsplit(u).hostname not in LOCAL_HOSTS]
        assert self.requests and offsite == []
        assert self.problems == []
        assert self.page.locator(".dash-fe-error__title").count() == 0

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"e2e-ops-{name}.png"))


@pytest.fixture()
def watched(browser: Any, ops_server: str) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield Watched(page)
    finally:
        context.close()


def label(key: str) -> str:
    return f"""[id='{json.dumps({"key": key, "type": "label"}, separators=(",", ":"))}']"""


def open_tab(page: Any, key: str) -> None:
    page.locator(label(key)).click()
    page.wait_for_function("(key) => document.querySelector(`.cb-tab-selected [id*='${key}']`)",
                           arg=key)


def open_app(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.wait_for_function(JS_MAP_DRAWN, timeout=30_000)


def sign_in(page: Any, name: str, password: str) -> None:
    page.fill("#input-login-name", name)
    page.fill("#input-login-password", password)
    page.click("#button-login")


def card(page: Any, **attributes: Any) -> Any:
    selector = "#event-card" + "".join(f"[data-{k}='{v}']" for k, v in attributes.items())
    locator = page.locator(selector)
    locator.wait_for()
    return locator


# ------------------------------------------------------------------- the tests
def test_operator_moves_an_overdue_event_and_sees_the_audit_trail(
        watched: Watched, ops_server: str) -> None:
    page = watched.page
    open_app(page, ops_server)
    open_tab(page, "tab.events")
    # Nobody signed in: events are people's reports, the public sees a hint, no event.
    page.locator("#events-stats .cb-hint").wait_for()
    assert page.locator(".ops-action").count() == page.locator(".ops-event").count() == 0
    sign_in(page, "duty-officer", PASSWORDS["duty-officer"])
    page.locator("#signed-in-as[data-role='operator']").wait_for()
    stats = api(ops_server, "/api/events/stats")
    overdue = page.locator("[data-stat='overdue']")
    overdue.wait_for()
    assert (overdue.text_content() or "").replace(",", "") == str(stats["overdue"]) != "0"

    # The overdue list is most overdue first; open its first event.
    first = page.locator("#events-list .ops-event").first
    event_id = int(first.get_attribute("data-event") or 0)
    assert event_id == stats["overdue_events"][0]["id"]
    # Signing in redraws the lists (and the first tick on the tab may redraw them again):
    # a click on a button that was just replaced is lost, so click until the card opens.
    for _ in range(3):
        page.locator(f"#events-list .ops-event[data-event='{event_id}']").first.click()
        try:
            page.locator(f"#event-card[data-event='{event_id}']").wait_for(timeout=8_000)
            break
        except PlaywrightTimeout:
            continue
    card(page, event=event_id, status="dispatched")
    assert page.locator("#event-card .ops-chip.ops-bad").count() == 1  # "overdue by …"
    page.fill("#event-card textarea", "crew sent <b>now</b>")
    page.click("#event-card .ops-action[data-to='in_progress']")
    card(page, event=event_id, status="in_progress")
    assert page.locator("[data-outcome='events.done']").count() == 1
    page.click("#event-card .ops-action[data-to='resolved']")
    card(page, event=event_id, status="resolved")
    entries = page.locator("#event-audit li")
    assert entries.nth(entries.count() - 2).get_attribute("data-to") == "in_progress"
    assert entries.nth(entries.count() - 1).get_attribute("data-to") == "resolved"
    trail = page.locator("#event-audit").inner_text()
    assert "duty-officer (operator)" in trail and "crew sent <b>now</b>" in trail
    audit = api(ops_server, f"/api/events/{event_id}")["audit"]
    assert [(a["to"], a["actor"]) for a in audit[-2:]] == [("in_progress", "duty-officer"),
                                                            ("resolved", "duty-officer")]
    watched.screenshot("operator-resolved")

    # Someone else closes it through the API while the page still shows "resolved".
    # Ticks are held back so the page cannot refresh first: the click must conflict.
    hold = {"ticks": True}

    def hold_ticks(route: Any) -> None:
        changed = json.loads(route.request.post_data or "{}").get("changedPropIds", [])
        if hold["ticks"] and "interval-tick.n_intervals" in changed:
            route.fulfill(status=204, body="")  # Dash reads 204 as "no update"
        else:
            route.continue_()

    page.route("**/_dash-update-component", hold_ticks)
    version = int(card(page, event=event_id).get_attribute("data-version") or 0)
    api(ops_server, f"/api/events/{event_id}/transition",
        {"to": "closed", "expected_version": version, "note": "closed from the API"})
    page.click("#event-card .ops-action[data-to='closed']")
    page.locator("[data-outcome='events.conflict']").wait_for()
    card(page, event=event_id, status="closed")  # reloaded, with nothing left to do
    assert page.locator("#event-card .ops-action").count() == 0
    hold["ticks"] = False
    page.unroute("**/_dash-update-component")
    watched.screenshot("operator-conflict")

    # The events overlay: overdue red, and the event just closed grey.
    page.get_by_text("事件（按状态）").click()
    page.wait_for_function(f"() => {GD}.data.some(t => t.uid === 'overlay-events')")
    trace = page.evaluate(JS_TRACE, "overlay-events")
    drawn = [row[0] for row in trace["customdata"]]
    assert trace["color"][drawn.index(f"event:{event_id}")] == GREY
    assert len(drawn) == stats["open"]  # every open one (minus ours) and ours, closed
    assert trace["color"][-1] == "#ef3b4f"

    # A click on a marker opens that event, and the cell around it lists its events.
    target = api(ops_server, "/api/events?status=open&limit=1")[0]
    x, y = screen_point(page, target["lon"], target["lat"])
    page.mouse.move(x, y)
    hovered = page.wait_for_function(f"""() => {{
        const point = ({GD}._hoverdata || []).find(
            p => Array.isArray(p.customdata) && String(p.customdata[0]).startsWith('event:'));
        return point ? point.customdata[0] : null;
    }}""").json_value()
    picked = int(hovered.split(":")[1])
    page.mouse.click(x, y)
    card(page, event=picked)
    page.wait_for_function("() => document.querySelector(\".cb-tab-selected [id*='tab.events']\")")
    place = api(ops_server, f"/api/events/{picked}")["event"]
    assert abs(place["lat"] - target["lat"]) < 0.01 and abs(place["lon"] - target["lon"]) < 0.01
    open_tab(page, "tab.place")
    section = page.locator("#profile-events [data-total]")
    section.wait_for()
    cell = (page.locator("#profile-cell-id").text_content() or "").strip()
    inside = api(ops_server, f"/api/events?cell={cell}&limit=1000")
    # (The map picks the cell under the pointer; an event counts in the parent of its
    # res-10 cell, which near a cell's edge can be the neighbour: compare with the API.)
    assert inside
    assert int(section.get_attribute("data-total") or 0) == len(inside)
    assert int(section.get_attribute("data-overdue") or 0) == sum(e["overdue"] for e in inside)
    watched.screenshot("cell-events")

    open_tab(page, "tab.events")
    page.click("#button-logout")
    page.locator("#input-login-name").wait_for(state="visible")
    assert page.locator("#signed-in-as").count() == 0
    watched.assert_clean()


def test_a_viewer_sees_events_but_no_action(watched: Watched, ops_server: str) -> None:
    page = watched.page
    open_app(page, ops_server)
    open_tab(page, "tab.events")
    sign_in(page, "analyst", "not-the-password")
    page.locator("#login-status .ops-bad").wait_for()
    sign_in(page, "analyst", PASSWORDS["analyst"])
    page.locator("#signed-in-as[data-role='viewer']").wait_for()
    first = page.locator("#events-list .ops-event").first
    event_id = int(first.get_attribute("data-event") or 0)
    first.click()
    card(page, event=event_id)
    page.locator("#event-card .ops-read-only").wait_for()
    assert page.locator(".ops-action").count() == 0
    assert page.locator("#event-card textarea").count() == 0
    # A department's queue: its open events, most overdue first.
    # The panel may be re-rendering when the row is clicked (the row is then replaced
    # and that click lost, as it would be for a person, who clicks again).
    for attempt in range(4):
        page.locator(".ops-queue-row").first.click()
        try:
            page.locator("[data-list='queue']").wait_for(timeout=5_000)
            break
        except Exception:
            if attempt == 3:
                raise
    watched.screenshot("viewer")
    watched.assert_clean()


def test_vital_signs_alerts_and_alert_cells(watched: Watched, ops_server: str) -> None:
    page = watched.page
    open_app(page, ops_server)
    open_tab(page, "tab.signs")
    page.locator(".ops-sign").nth(1).wait_for()
    assert page.locator(".ops-sign").count() == 2
    assert page.locator("#sign-open_requests").get_attribute("data-status") == "alarm"
    spark = page.locator("#sign-requests_per_hour img").get_attribute("src") or ""
    assert spark.startswith("data:image/svg+xml;base64,")
    watched.screenshot("signs")

    open_tab(page, "tab.alerts")
    page.locator("#alerts-active .ops-alert").first.wait_for()
    assert page.locator("[id*='alert-ack']").count() == 0  # read-only until signed in
    open_tab(page, "tab.events")
    sign_in(page, "duty-officer", PASSWORDS["duty-officer"])
    page.locator("#signed-in-as[data-role='operator']").wait_for()
    open_tab(page, "tab.alerts")
    alarm = page.locator("#alerts-active .ops-alert[data-severity='alarm']").first
    alert_id = alarm.get_attribute("data-alert")
    alarm.locator("button").click()
    page.locator("[data-outcome='alerts.done']").wait_for()
    page.locator(f"[data-alert='{alert_id}'] .ops-ok").wait_for()  # "acknowledged by …"
    served = {a["id"]: a for a in api(ops_server, "/api/alerts")["alerts"]}
    assert served[alert_id]["acked_by"] == "duty-officer"
    cells = {c for a in served.values() for c in a["cells"]}
    assert cells

    page.get_by_text("预警网格").click()
    page.wait_for_function(f"""() => {{
        const t = {GD}.data.find(t => t.uid === 'overlay-alerts-warn');
        return t && t.lat.filter(v => v === null).length === {len(cells)};
    }}""")
    watched.screenshot("alerts")
    watched.assert_clean()
