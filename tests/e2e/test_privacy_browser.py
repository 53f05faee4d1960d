"""End-to-end: data text reaches the wall as text, never as markup (headless Chromium).

A synthetic city (Testburg, :mod:`tests.synthetic_city`) gets two street assets whose
type is markup: a ``<span style="font-size:120px;color:red">`` and an ``<a href>``.
The real app serves it; with the things overlay on, the mouse hovers each asset, and
the hover label in the DOM must hold the text literally: no element with that style,
no link, and the characters ``<span`` visible as they are.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import free_port, start_server, stop_server
from tests.e2e.mapping import GD, screen_point
from tests.e2e.test_browser import JS_MAP_DRAWN, WatchedPage
from tests.synthetic_city import ASSET_COLUMNS, TESTBURG, write_city

pytestmark = pytest.mark.e2e

SPAN = '<span style="font-size:120px;color:red">EVACUATE NOW</span>'
LINK = '<a href="https://example.org/phish">Click here</a>'
#: Where the injected assets stand: apart from the others (south-west corner of Testburg).
SPOTS = {SPAN: (42.33 - 0.03, -71.07 - 0.04), LINK: (42.33 - 0.03, -71.07 - 0.035)}


@pytest.fixture(scope="module")
def markup_city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    city = write_city(tmp_path_factory.mktemp("markup-city"), TESTBURG)
    with (city.directory / "street_assets.csv").open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        for n, (text, (lat, lon)) in enumerate(SPOTS.items()):
            row = {"asset_id": f"SA-INJ-{n}", "asset_type": text, "owner": "Public Works",
                   "condition": "good", "lat_dd": f"{lat:.7f}", "lon_dd": f"{lon:.7f}"}
            writer.writerow([row[c] for c in ASSET_COLUMNS])
    port = free_port()
    process = start_server([sys.executable, "app.py", "--config", str(city.config_path),
                            "--port", str(port)], port, log_name="markup-app")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


JS_HOVER = """() => {
    const layer = document.querySelector('.hoverlayer');
    if (!layer || !layer.textContent) return null;
    return {text: layer.textContent,
            styled: [...layer.querySelectorAll('[style]')].map(e => e.getAttribute('style'))
                .filter(s => s.includes('120px')).length,
            links: layer.querySelectorAll('a').length};
}"""


def test_injected_markup_in_a_device_name_is_shown_as_text(browser: Any, markup_city: str) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    watched = WatchedPage(page, markup_city)
    try:
        watched.open()
        page.locator("#checklist-overlays input[value='things']").check()
        page.wait_for_function(f"() => {GD}.data.some(t => t.uid === 'overlay-things')")
        page.wait_for_function(JS_MAP_DRAWN)
        for text, (lat, lon) in SPOTS.items():
            page.mouse.move(10, 10)
            x, y = screen_point(page, lon, lat)
            page.mouse.move(x, y)
            page.wait_for_function(
                f"(t) => ({GD}._hoverdata || []).some(p => (p.customdata || [])[2] !== undefined"
                " && (p.customdata || [])[0].startsWith('SA-INJ'))", arg=text)
            hover = page.wait_for_function(JS_HOVER).json_value()
            deadline = time.monotonic() + 10  # the previous spot's label may still show
            while text not in hover["text"] and time.monotonic() < deadline:
                page.wait_for_timeout(100)
                hover = page.wait_for_function(JS_HOVER).json_value()
            assert text in hover["text"], hover  # the characters themselves, as text
            assert hover["styled"] == 0
            assert hover["links"] == 0
            assert page.locator("a[href='https://example.org/phish']").count() == 0
        watched.assert_clean()
    finally:
        context.close()
