"""The live city in a real browser: value-only ticks, a kept camera, a server restart."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, start_server, stop_server

pytestmark = pytest.mark.e2e

HEXES = ("() => { const gd = document.querySelector('#map .js-plotly-plot');"
         " return gd && gd.data ? gd.data.find(t => t.uid === 'hexes') : null; }")
CAMERA = ("() => { const m = document.querySelector('#map .js-plotly-plot')._fullLayout.map"
          "._subplot.map; const c = m.getCenter(); return [c.lng, c.lat, m.getZoom()]; }")


@pytest.fixture()
def live_config_file(tmp_path: Path) -> Iterator[Path]:
    """The live demo with its event store in tmp (``extends`` needs the same folder)."""
    path = REPO / "cities" / "nyc" / f"test-live-{uuid.uuid4().hex[:8]}.toml"
    path.write_text('extends = "city.toml"\n\n[live]\nrefresh = "2s"\n\n[events]\n'
                    f'path = "{tmp_path / "events.sqlite3"}"\n', encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def assert_page_holds_what_the_server_sent(page, timeout: float = 15.0) -> None:
    """The hexagon values in the page hash to the digest the server put on the status chip."""
    from render.figures import z_values
    from store.cache import drawn_key

    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        z, digest = page.evaluate(f"() => [({HEXES})().z, "
                                  "document.querySelector('#map-count').dataset.values]")
        seen = (drawn_key(z_values(z)), digest)
        if seen[0] == seen[1]:
            return
        page.wait_for_timeout(200)  # between a response and its redraw
    raise AssertionError(f"the page's values are not the ones sent: {seen}")


def _start(config: Path, port: int):
    return start_server([sys.executable, "app.py", "--config", str(config), "--port", str(port)],
                        port, log_name="live")


def test_ticks_patch_values_keep_the_camera_and_survive_a_restart(browser, live_config_file):
    port = free_port()
    server = _start(live_config_file, port)
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    outside: list[str] = []
    errors: list[str] = []
    figures: list[tuple[float, int, bool]] = []  # (time, bytes, is_patch)
    cell_assignments: list[int] = []  # per Patch: values sent one cell at a time

    def on_response(response) -> None:
        if "_dash-update-component" not in response.url:
            return
        body = response.request.post_data or ""
        if "map.figure" not in body:
            return
        try:
            payload = response.body()
        except Exception:  # the server went away mid-response
            return
        figure = json.loads(payload or b"{}").get("response", {}).get("map", {}).get("figure")
        if figure is not None:
            is_patch = "__dash_patch_update" in json.dumps(figure)[:200]
            figures.append((time.monotonic(), len(payload), is_patch))
            if is_patch:
                cell_assignments.append(sum(
                    1 for op in figure["operations"]
                    if len(op["location"]) == 4 and op["location"][2] == "z"))

    page.on("response", on_response)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
        ("http://127.0.0.1", "http://localhost", "data:", "blob:")) else None)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function(f"() => {{ const h = ({HEXES})(); return h && h.z.length > 0; }}",
                               timeout=60_000)
        # Pan a little; ticks must not move the camera back.
        box = page.locator("#map").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 120, y + 60, steps=8)
        page.mouse.up()
        page.wait_for_timeout(1500)
        camera = page.evaluate(CAMERA)
        deadline = time.monotonic() + 40
        while sum(1 for f in figures if f[2]) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        patches = [f for f in figures if f[2]]
        full = [f for f in figures if not f[2]]
        assert len(patches) >= 2, f"no value-only ticks arrived: {figures}"
        assert max(p[1] for p in patches) < 0.05 * max(f[1] for f in full)
        assert page.evaluate(CAMERA) == pytest.approx(camera, abs=1e-6)

        # A layer that changes every tick (311 requests, replayed): ticks carry only the
        # changed cells, and what the page then shows is exactly what the server
        # remembers sending (the chip's digest of the values, see remember_drawn).
        page.locator("#radio-hex-layer label").filter(has_text="政").click()
        deadline = time.monotonic() + 40
        while sum(1 for n in cell_assignments if n > 0) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert sum(1 for n in cell_assignments if n > 0) >= 2, cell_assignments
        assert_page_holds_what_the_server_sent(page)

        # The server dies: the wall says so (never an error screen, never silently stale).
        stop_server(server)
        page.wait_for_selector("body.cb-disconnected #cb-connection-banner", timeout=30_000)
        assert "lost" in page.inner_text("#cb-connection-banner") or \
            "中断" in page.inner_text("#cb-connection-banner")
        # It comes back on the same port: the page carries on without a reload.
        server = _start(live_config_file, port)
        page.wait_for_function("() => !document.body.classList.contains('cb-disconnected')",
                               timeout=30_000)
        before = len(figures)
        deadline = time.monotonic() + 40
        while len(figures) == before and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert len(figures) > before, "the map did not update after the restart"
        assert page.locator(".dash-fe-error__title, .dash-debug-menu").count() == 0
        assert not [e for e in errors if "Map error" in e]
        assert not outside, outside
        page.screenshot(path=str(REPO / "var" / "screenshots" / "e2e-live-restart.png"))
    finally:
        page.close()
        stop_server(server)
