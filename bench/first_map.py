"""First map: how long a person waits for the hexagons, and what the map callback costs.

Part 1 — the page, in a real browser. The demo app runs in a subprocess on a free
port (ready when ``/api/health`` answers). Debian's Chromium, headless with the test
suite's flags (``tests/conftest.py``: ``--disable-gpu``, so WebGL is software
rendered, as on a CI machine), opens the page ``--runs`` times, each in a fresh
browser context: first *cold* (empty HTTP cache), then *warm* (the same context
navigates again, so the JavaScript bundles come from the cache).

"First map" is the time from navigation start (``performance.timeOrigin``) to the
first animation frame in which all of these hold:

* the Plotly graph in ``#map`` holds the ``hexes`` trace with at least one location
  (the map callback's figure has arrived and been handed to Plotly),
* the MapLibre map is ``loaded()``: style loaded, every source's tiles loaded and no
  camera transition running — the state in which MapLibre fires ``idle``,
* MapLibre has the hexagon source and ``querySourceFeatures('source-hexes')`` returns
  features, i.e. the hexagons were tiled into the map and not just sent to Plotly.

A script installed before any page script (``add_init_script``) checks this on every
``requestAnimationFrame`` and keeps the first ``performance.now()`` that passes, so the
figure is the frame just before the hexagons are painted (±1 frame, ~16 ms). Polling
rather than waiting for one ``idle`` event is deliberate: the MapLibre map object does
not exist until Plotly creates it, and Plotly may create it after a first ``idle``
with no hexagons in it.

Also per load: DOMContentLoaded (navigation timing), the bytes over the wire up to
the first map (sum of CDP ``Network.loadingFinished.encodedDataLength``: compressed
sizes, cached responses count 0), the number of requests and whether any left
127.0.0.1.

Part 2 — the map callback's server work, in this process: :func:`render.figures.map_figure`
plus the JSON encoding Dash applies to its result (``plotly.io.json.to_json_plotly``),
for the people and government layers at zooms that choose H3 resolutions 7 and 8
(whole city) and 9 and 10 (a laptop-sized viewport over Midtown Manhattan, snapped
the way the app snaps it), a ~10k-cell case (res 10, viewport grown until it holds
about 10,000 cells) and the whole city at res 10 with ``max_hexes`` lifted. The first
call of each case is reported apart (cold: aggregation and geometry caches empty for
that case); then ``--repeat`` warm calls give p50 and p95::

    .venv/bin/python bench/first_map.py                 # 5 runs, 20 repeats
    .venv/bin/python bench/first_map.py --runs 3 --repeat 10 --config cities/nyc/snapshot.toml

Targets: first map ≤ 2.5 s (cold), map callback ≤ 50 ms at 10k cells. This measures;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import math
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import free_port, percentile, print_table, running_app, verdict  # noqa: E402

FIRST_MAP_TARGET_MS = 2500.0
CALLBACK_TARGET_MS = 50.0
TEN_K = 10_000
WINDOW_PX = (1600, 900)
#: The map's share of that window (the side panels take the rest), for viewport bboxes.
MAP_PX = (1040, 780)
MIDTOWN = (40.758, -73.985)  # lat, lon
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

#: Runs in every document before the app's scripts; see the module docstring.
FIRST_MAP_PROBE = """
(() => {
  window.__firstMap = null;
  window.__firstFigure = null;
  const drawn = () => {
    const gd = document.querySelector('#map .js-plotly-plot');
    if (!gd || !gd.data || !gd._fullLayout || !gd._fullLayout.map) return null;
    const trace = gd.data.find(t => t.uid === 'hexes');
    if (!trace || !trace.locations || trace.locations.length === 0) return null;
    if (window.__firstFigure === null) window.__firstFigure = performance.now();
    const map = gd._fullLayout.map._subplot && gd._fullLayout.map._subplot.map;
    if (!map || !map.loaded() || !map.getSource('source-hexes')) return null;
    if (map.querySourceFeatures('source-hexes').length === 0) return null;
    return trace.locations.length;
  };
  const poll = () => {
    let hexes = null;
    try { hexes = drawn(); } catch (e) { hexes = null; }
    if (hexes) { window.__firstMap = {ms: performance.now(), hexes: hexes}; return; }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})();
"""


# ----------------------------------------------------------------------------- part 1


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


def measure_load(context: Any, page: Any, url: str, timeout_ms: float) -> dict[str, Any]:
    """Navigate ``page`` to ``url`` and measure up to the first drawn map."""
    requests: list[str] = []
    transferred = [0]
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.loadingFinished",
           lambda event: transferred.__setitem__(0, transferred[0] + event["encodedDataLength"]))

    def on_request(request: Any) -> None:
        requests.append(request.url)

    page.on("request", on_request)
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => window.__firstMap !== null", timeout=timeout_ms)
        n_requests, n_bytes = len(requests), transferred[0]
        first = page.evaluate("() => window.__firstMap")
        figure_ms = page.evaluate("() => window.__firstFigure")
        dcl = page.evaluate(
            "() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    finally:
        page.remove_listener("request", on_request)
        cdp.detach()
    return {"first_map_ms": float(first["ms"]), "figure_ms": float(figure_ms),
            "hexes": int(first["hexes"]),
            "dcl_ms": float(dcl), "requests": n_requests, "bytes": n_bytes,
            "offsite": [u for u in requests[:n_requests] if not is_local(u)]}


def bench_page(url: str, runs: int, timeout_ms: float) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for run in range(1, runs + 1):
                context = browser.new_context(viewport={"width": WINDOW_PX[0], "height": WINDOW_PX[1]})
                context.add_init_script(FIRST_MAP_PROBE)
                try:
                    page = context.new_page()
                    for kind in ("cold", "warm"):
                        result = measure_load(context, page, url, timeout_ms)
                        results.append({"run": run, "kind": kind, **result})
                finally:
                    context.close()
        finally:
            browser.close()
    return results


def report_page(results: list[dict[str, Any]]) -> dict[str, float]:
    """Print part 1 (one row per load, then p50 and max per kind); p50 first map per kind."""

    def ms(value: float) -> str:
        return f"{value:.0f}"

    rows: list[list[Any]] = [
        [f"{r['run']} {r['kind']}", ms(r["dcl_ms"]), ms(r["figure_ms"]), ms(r["first_map_ms"]),
         f"{r['hexes']:,}", r["requests"], f"{r['bytes'] / 1024:,.0f}",
         "yes" if r["offsite"] else "no"] for r in results]
    summary: dict[str, float] = {}
    for kind in ("cold", "warm"):
        of_kind = [r for r in results if r["kind"] == kind]

        def p50(key: str, rows_of_kind: list[dict[str, Any]] = of_kind) -> float:
            return percentile([float(r[key]) for r in rows_of_kind], 50)

        summary[kind] = p50("first_map_ms")
        rows.append([f"p50 {kind}", ms(p50("dcl_ms")), ms(p50("figure_ms")),
                     ms(summary[kind]), "", ms(p50("requests")),
                     f"{p50('bytes') / 1024:,.0f}", ""])
        rows.append([f"max {kind}", ms(max(r["dcl_ms"] for r in of_kind)),
                     ms(max(r["figure_ms"] for r in of_kind)),
                     ms(max(r["first_map_ms"] for r in of_kind)), "", "", "", ""])
    print_table("Part 1 — page load in headless Chromium (ms from navigation start)",
                ["load", "DOMContentLoaded", "figure in Plotly", "first map", "hexes",
                 "requests", "KiB on wire", "offsite"], rows)
    offsite = sorted({u for r in results for u in r["offsite"]})
    if offsite:
        print("requests that left 127.0.0.1:", *offsite, sep="\n  ")
    return summary


# ----------------------------------------------------------------------------- part 2


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    layer: str
    zoom: float
    bbox: tuple[float, float, float, float] | None
    lifted: bool = False  # run on the data whose max_hexes is lifted


def viewport_bbox(center: tuple[float, float], zoom: float,
                  size_px: tuple[int, int] = MAP_PX) -> tuple[float, float, float, float]:
    """(west, south, east, north) a MapLibre map of ``size_px`` shows at ``zoom``."""
    world = 512 * 2 ** zoom  # MapLibre's world is 512 px wide at zoom 0

    def y_of(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    def lat_of(y: float) -> float:
        return math.degrees(2 * math.atan(math.exp(y)) - math.pi / 2)

    lat, lon = center
    half_lon = size_px[0] / world * 180
    half_y = size_px[1] / world * math.pi
    return (lon - half_lon, lat_of(y_of(lat) - half_y), lon + half_lon, lat_of(y_of(lat) + half_y))


def zoom_for_res(res: int, steps: tuple[tuple[float, int], ...]) -> float:
    """A zoom inside the step that chooses ``res`` (half a level above its start)."""
    starts = [zoom for zoom, r in steps if r == res]
    if not starts:
        raise SystemExit(f"no zoom chooses resolution {res} (res_by_zoom={steps})")
    return starts[0] + 0.5


def grown_bbox(data: Any, layer: str, zoom: float, target: int) -> tuple[float, float, float, float]:
    """A bbox around Midtown grown until the plan at ``zoom`` draws about ``target`` cells."""
    from render.figures import MapView, plan_hexes

    def cells(scale: float) -> int:
        bbox = viewport_bbox(MIDTOWN, zoom, (int(MAP_PX[0] * scale), int(MAP_PX[1] * scale)))
        return len(plan_hexes(data, MapView(hex_layer=layer, zoom=zoom, center=MIDTOWN,
                                            bbox=bbox)).grid)

    lo, hi = 1.0, 16.0
    for _ in range(20):
        mid = (lo + hi) / 2
        if cells(mid) < target:
            lo = mid
        else:
            hi = mid
    return viewport_bbox(MIDTOWN, zoom, (int(MAP_PX[0] * lo), int(MAP_PX[1] * lo)))


def callback_cases(data: Any, lifted: Any) -> list[Case]:
    """The cases of part 2; ``lifted`` is the data whose ``max_hexes`` does not cap."""
    from callbacks.map import snap_bbox
    from render.zoom import zoom_scale

    steps = data.config.map.res_by_zoom
    cases = []
    for layer in ("people", "government"):
        for res in (7, 8, 9, 10):
            zoom = zoom_for_res(res, steps)
            whole_city = zoom_scale(zoom, data.config.map).whole_city
            bbox = None if whole_city else tuple(snap_bbox(list(viewport_bbox(MIDTOWN, zoom))))
            where = "city" if whole_city else "Midtown view"
            cases.append(Case(f"{layer} res {res} ({where})", layer, zoom, bbox))  # type: ignore[arg-type]
    zoom10 = zoom_for_res(10, steps)
    cases.append(Case("people res 10 (~10k cells)", "people", zoom10,
                      grown_bbox(lifted, "people", zoom10, TEN_K), lifted=True))
    # Wider than any city: every cell of the footprint.
    cases.append(Case("people res 10 (whole city)", "people", zoom10,
                      (-180.0, -85.0, 180.0, 85.0), lifted=True))
    return cases


def time_case(data: Any, case: Case, outline: str | None, repeat: int) -> dict[str, Any]:
    from plotly.io.json import to_json_plotly

    from render.figures import MapView, map_figure

    view = MapView(hex_layer=case.layer, zoom=case.zoom, center=MIDTOWN, bbox=case.bbox,
                   outline=outline, language=data.config.city.language,
                   theme=data.config.city.theme)
    build_ms: list[float] = []
    total_ms: list[float] = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        figure, plan = map_figure(data, view)
        built = time.perf_counter()
        payload = to_json_plotly(figure)
        done = time.perf_counter()
        build_ms.append((built - started) * 1000)
        total_ms.append((done - started) * 1000)
    return {"case": case, "res": plan.res, "cells": len(plan.grid), "with_data": len(plan.values),
            "capped": plan.capped, "bytes": len(payload.encode()),
            "gzip": len(gzip.compress(payload.encode(), 6)),
            "cold_ms": total_ms[0], "build_p50": percentile(build_ms[1:], 50),
            "p50": percentile(total_ms[1:], 50), "p95": percentile(total_ms[1:], 95)}


def bench_callback(config_path: str | None, repeat: int) -> list[dict[str, Any]]:
    from app import load_config
    from store.city import CityData

    config = load_config(config_path)
    data = CityData.load(config)
    lifted_config = dataclasses.replace(
        config, map=dataclasses.replace(config.map, max_hexes=1_000_000))
    lifted = CityData.load(lifted_config)
    outline = (f"boundary:{data.boundaries[-1].spec.level}" if len(data.boundaries) > 1
               else None)  # what the page draws by default
    return [time_case(lifted if case.lifted else data, case, outline, repeat)
            for case in callback_cases(data, lifted)]


def report_callback(results: list[dict[str, Any]], repeat: int) -> float:
    rows = [[r["case"].name, r["res"], f"{r['cells']:,}", f"{r['with_data']:,}",
             f"{r['bytes'] / 1024:,.0f}", f"{r['gzip'] / 1024:,.0f}", f"{r['cold_ms']:.1f}",
             f"{r['build_p50']:.1f}", f"{r['p50']:.1f}", f"{r['p95']:.1f}"] for r in results]
    print_table(f"Part 2 — map callback in-process: map_figure + JSON (ms; warm = {repeat} runs)",
                ["case", "res", "cells drawn", "with data", "JSON KiB", "gzip KiB", "cold",
                 "build p50", "p50", "p95"], rows)
    from plotly.io.json import config as json_config

    try:
        import orjson  # noqa: F401
        engine = "orjson"
    except ImportError:
        engine = "json (orjson is not installed)"
    print(f"JSON engine: plotly.io.json default_engine={json_config.default_engine!r} → {engine}\n")
    ten_k = next(r for r in results if "~10k" in r["case"].name)
    return float(ten_k["p50"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="browser runs (cold + warm each)")
    parser.add_argument("--repeat", type=int, default=20, help="warm map-callback runs per case")
    parser.add_argument("--config", help="city config (default: the demo city)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a map")
    parser.add_argument("--skip-browser", action="store_true", help="only part 2")
    args = parser.parse_args(argv)

    first_map: dict[str, float] = {}
    if not args.skip_browser:
        port = free_port()
        app_argv = ["app.py", "--port", str(port)] + (["--config", args.config]
                                                      if args.config else [])
        log = REPO / "var" / "bench-first-map-app.log"
        log.parent.mkdir(exist_ok=True)
        with running_app(app_argv, port, log_path=log, ready_path="/api/health"):
            results = bench_page(f"http://127.0.0.1:{port}/", args.runs, args.timeout * 1000)
        first_map = report_page(results)
    callback_ms = report_callback(bench_callback(args.config, args.repeat), args.repeat)

    if first_map:
        print(verdict("first map (cold, p50)", first_map["cold"], FIRST_MAP_TARGET_MS, "ms",
                      higher_is_better=False))
    print(verdict("map callback at ~10k cells (p50, incl. JSON)", callback_ms,
                  CALLBACK_TARGET_MS, "ms", higher_is_better=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
