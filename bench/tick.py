"""What a live tick costs the server: payload bytes, and time per tick callback.

On a tick whose grid is unchanged, the ``draw`` callback (``callbacks/map.py``) sends
a ``Patch`` instead of the whole figure: one assignment per hexagon whose value
changed since the values the page holds (remembered by content in the cache), or
the whole value list when that is shorter. This script measures::

    .venv/bin/python bench/tick.py                 # 30 ticks per view
    .venv/bin/python bench/tick.py --ticks 100

* **bytes on live ticks** — the live demo city (311 requests replayed at its 120×,
  one tick = the 3 s refresh = 6 city minutes), government layer, views of ~1k and
  ~10k cells: every tick's Patch against the full figure for the same view, both
  serialised the way Dash serialises a callback output
  (``plotly.io.json.to_json_plotly``), raw and gzipped (the app sets
  ``compress=True``); target ≤ 3 % (judged on the p95 tick);
* **bytes when every value changes** — the upper bound (the whole value list
  resent), on the snapshot people layer at 1k / 10k / 50k cells;
* **server time per tick** — :func:`render.figures.plan_hexes`, ``grid_key`` (twice,
  as ``draw`` does), the diff against the remembered values, ``value_patch`` and
  remembering the new values: the work of a tick, p50/p95 over ``--ticks`` ticks;
  then the same plus serialising the patch. Each tick bumps the data version, as new
  live data does, so the per-resolution values are recombined instead of served from
  the memo; target p95 ≤ 50 ms at 10k cells.

Views: res 8 is the whole city (the opening view); res 9 and 10 keep a viewport, whose
bounding box is found by bisection around midtown Manhattan to hold about the
wanted number of cells; 50k is the whole city at res 10, with ``max_hexes`` raised
through ``dataclasses.replace`` (the default cap is 10k).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile, print_table, verdict  # noqa: E402

BYTES_TARGET = 0.03
TIME_TARGET_MS = 50.0
#: Midtown Manhattan (lat, lon): the viewports are boxes around it.
CENTRE = (40.754, -73.984)
ZOOM_FOR_RES = {8: 10.0, 9: 12.0, 10: 13.0}
#: The live layer whose ticks are measured: 311 requests, replayed.
LIVE_LAYER = "government"


@dataclass
class ViewCase:
    label: str
    res: int
    wanted: int | None  # cells to aim the bbox at; None = whole city
    whole_city_cap: int | None = None  # max_hexes override


def serialise(value: Any) -> bytes:
    """A callback output as Dash sends it (``dash._utils.to_json`` → plotly's encoder)."""
    from plotly.io.json import to_json_plotly

    return to_json_plotly(value).encode("utf-8")


def gz(raw: bytes) -> int:
    return len(gzip.compress(raw, compresslevel=6))  # Flask-Compress's default level


def make_view(res: int, bbox: tuple[float, float, float, float] | None,
              layer: str = "people") -> Any:
    from render.figures import MapView

    zoom = ZOOM_FOR_RES[res]
    return MapView(hex_layer=layer, zoom=zoom, center=CENTRE, bbox=bbox, revision="bench")


def bbox_for(data: Any, res: int, wanted: int,
             layer: str = "people") -> tuple[tuple[float, float, float, float], int]:
    """A box around ``CENTRE`` whose view holds about ``wanted`` cells (and fits max_hexes)."""
    from render.figures import plan_hexes

    lo, hi = 0.002, 0.5
    best: tuple[tuple[float, float, float, float], int] | None = None
    for _ in range(22):
        half = (lo + hi) / 2
        bbox = (CENTRE[1] - half * 1.32, CENTRE[0] - half, CENTRE[1] + half * 1.32,
                CENTRE[0] + half)
        plan = plan_hexes(data, make_view(res, bbox, layer))
        if plan.res != res:  # over max_hexes: the plan stepped down a resolution
            hi = half
            continue
        n = len(plan.grid)
        if best is None or abs(n - wanted) < abs(best[1] - wanted):
            best = (bbox, n)
        if abs(n - wanted) <= wanted * 0.02:
            break
        lo, hi = (half, hi) if n < wanted else (lo, half)
    assert best is not None
    return best


def new_data_arrived(data: Any) -> None:
    """What a live update does to the memo: a new version, recombined values."""
    with data._lock:
        data.version += 1
        data._aggregates.clear()


def tick(data: Any, view: Any, hex_index: int, grid_key: str,
         drawn_key: str) -> tuple[Any, float, str]:
    """The tick branch of ``draw``: plan, compare grids, diff and patch the values."""
    from render.figures import plan_hexes, value_patch, z_values
    from store.cache import drawn_values, remember_drawn

    started = time.perf_counter()
    plan = plan_hexes(data, view)
    same_grid = plan.mode == "hex" and plan.grid_key() == grid_key
    patch = value_patch(plan, hex_index, view.hex_layer, stale=False,
                        drawn=drawn_values(drawn_key), restyle=False)
    plan.grid_key()  # draw stores it in the rendered state
    key = remember_drawn(z_values(plan.z))
    elapsed = time.perf_counter() - started
    if not same_grid:
        raise RuntimeError("the grid changed between ticks: not a value-only tick")
    return patch, elapsed, key


def resend_all(plan: Any, hex_index: int, layer: str) -> Any:
    """The Patch when every value changed: the whole value list (the upper bound)."""
    from render.figures import value_patch

    return value_patch(plan, hex_index, layer, stale=False, drawn=None, restyle=False)


def measure(data: Any, case: ViewCase, ticks: int) -> dict[str, Any]:
    from render.figures import map_figure, z_values
    from store.cache import remember_drawn

    if case.whole_city_cap is not None:
        config = data.config
        data = copy.copy(data)  # shares the loaded frames and caches
        data.config = replace(config, map=replace(config.map, max_hexes=case.whole_city_cap))
    bbox = None
    if case.wanted is not None:
        bbox, _ = bbox_for(data, case.res, case.wanted)
    view = make_view(case.res, bbox)
    full_times = []
    for _ in range(3):
        new_data_arrived(data)
        started = time.perf_counter()
        figure, plan = map_figure(data, view)
        full_times.append(time.perf_counter() - started)
    if plan.res != case.res:
        raise RuntimeError(f"{case.label}: drew res {plan.res}, not {case.res} (capped?)")
    hex_index = next(i for i, t in enumerate(figure["data"]) if t.get("uid") == "hexes")
    grid = plan.grid_key()
    drawn = remember_drawn(z_values(plan.z))
    full_raw = serialise(figure)
    every_raw = serialise(resend_all(plan, hex_index, "people"))
    times, with_json = [], []
    for _ in range(ticks):
        new_data_arrived(data)
        patch, elapsed, drawn = tick(data, view, hex_index, grid, drawn)
        started = time.perf_counter()
        serialise(patch)
        times.append(elapsed * 1000)
        with_json.append((elapsed + time.perf_counter() - started) * 1000)
    return {"case": case, "cells": len(plan.grid), "with_data": len(plan.values),
            "full_raw": len(full_raw), "full_gz": gz(full_raw), "every_raw": len(every_raw),
            "every_gz": gz(every_raw), "times": times, "with_json": with_json,
            "full_ms": min(full_times) * 1000}


def live_ticks(label: str, res: int, wanted: int, ticks: int, refresh: float) -> dict[str, Any]:
    """Payload of real ticks: the live demo replaying, one refresh interval per tick."""
    from app import load_config
    from config.city import DEMO_CONFIG
    from render.figures import changed_cells, map_figure, plan_hexes, value_patch, z_values
    from store.cache import drawn_values, remember_drawn
    from store.city import CityData

    data = CityData.load(load_config(DEMO_CONFIG))
    sources = data.streaming_sources()
    bbox, _ = bbox_for(data, res, wanted, LIVE_LAYER)
    view = make_view(res, bbox, LIVE_LAYER)
    figure, plan = map_figure(data, view)
    hex_index = next(i for i, t in enumerate(figure["data"]) if t.get("uid") == "hexes")
    drawn = remember_drawn(z_values(plan.z))
    rows: list[dict[str, float]] = []
    while len(rows) < ticks:
        # One refresh interval of wall time passes on the city clock (at its speed).
        data.clock._wall_start -= refresh
        for source in sources:
            data.refresh_source(source, incremental=True)
        data.expire()
        new = plan_hexes(data, view)
        if new.grid_key() != plan.grid_key():  # a new cell entered the view: a full redraw
            figure, plan = map_figure(data, view)
            drawn = remember_drawn(z_values(plan.z))
            continue
        before = drawn_values(drawn)
        assert before is not None
        patch = value_patch(new, hex_index, LIVE_LAYER, stale=False, drawn=before, restyle=False)
        full_raw, patch_raw = serialise(map_figure(data, view)[0]), serialise(patch)
        after = z_values(new.z)
        changed = len(changed_cells(before, after))
        rows.append({"changed": changed, "patch_raw": len(patch_raw), "patch_gz": gz(patch_raw),
                     "full_raw": len(full_raw), "full_gz": gz(full_raw)})
        plan, drawn = new, remember_drawn(after)
    return {"label": label, "cells": len(plan.grid), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=30, help="ticks timed per view")
    args = parser.parse_args(argv)

    import dash  # noqa: F401  -- the server has it loaded; keep its import out of tick 1
    from flask import Flask

    from app import load_config
    from config.city import DEMO_CONFIG, SNAPSHOT_CONFIG
    from store.cache import CACHE
    from store.city import CityData

    # Drawn values are remembered in the app's cache, as in the server (SimpleCache).
    server = Flask(__name__)
    CACHE.init_app(server, config={"CACHE_TYPE": "SimpleCache"})
    server.app_context().push()

    refresh = load_config(DEMO_CONFIG).live.refresh
    live = [live_ticks("1k  res 9, viewport", 9, 1_000, args.ticks, refresh),
            live_ticks("10k res 10, viewport", 10, 9_900, args.ticks, refresh)]

    started = time.perf_counter()
    data = CityData.load(load_config(SNAPSHOT_CONFIG))
    print(f"snapshot NYC loaded in {time.perf_counter() - started:.1f} s; "
          f"people layer, metric {data.metric('people', None).name!r}\n")
    cases = [
        ViewCase("1k  res 8, whole city", 8, None),
        ViewCase("1k  res 9, viewport", 9, 1_000),
        ViewCase("1k  res 10, viewport", 10, 1_000),
        ViewCase("10k res 9, whole city", 9, None, whole_city_cap=20_000),
        ViewCase("10k res 10, viewport", 10, 9_900),
        ViewCase("50k res 10, whole city", 10, None, whole_city_cap=200_000),
    ]
    results = [measure(data, case, args.ticks) for case in cases]

    def pct(rows: list[dict[str, float]], part: str, whole: str, q: float) -> float:
        return percentile([100 * r[part] / r[whole] for r in rows], q)

    print_table(
        f"Tick payload on live ticks: the demo city replaying at its speed, {LIVE_LAYER} layer, "
        f"one tick per {refresh:g} s refresh, {args.ticks} ticks per view (patch / full figure)",
        ["view", "cells", "changed p50", "changed max", "patch raw p50", "full raw", "raw % p50",
         "raw % p95", "patch gzip p50", "full gzip", "gzip % p50", "gzip % p95"],
        [[r["label"], f"{r['cells']:,}",
          f"{percentile([x['changed'] for x in r['rows']], 50):.0f}",
          f"{max(x['changed'] for x in r['rows']):,}",
          f"{percentile([x['patch_raw'] for x in r['rows']], 50):,.0f}",
          f"{percentile([x['full_raw'] for x in r['rows']], 50):,.0f}",
          f"{pct(r['rows'], 'patch_raw', 'full_raw', 50):.2f}",
          f"{pct(r['rows'], 'patch_raw', 'full_raw', 95):.2f}",
          f"{percentile([x['patch_gz'] for x in r['rows']], 50):,.0f}",
          f"{percentile([x['full_gz'] for x in r['rows']], 50):,.0f}",
          f"{pct(r['rows'], 'patch_gz', 'full_gz', 50):.2f}",
          f"{pct(r['rows'], 'patch_gz', 'full_gz', 95):.2f}"] for r in live])
    print_table(
        "Tick payload when every value changes (the whole value list resent; upper bound), "
        "snapshot people layer (bytes)",
        ["view", "cells", "full raw", "patch raw", "raw %", "full gzip", "patch gzip", "gzip %"],
        [[r["case"].label, f"{r['cells']:,}", f"{r['full_raw']:,}", f"{r['every_raw']:,}",
          f"{100 * r['every_raw'] / r['full_raw']:.2f}", f"{r['full_gz']:,}",
          f"{r['every_gz']:,}", f"{100 * r['every_gz'] / r['full_gz']:.2f}"] for r in results])
    print_table(
        f"Server time per tick callback (ms, {args.ticks} ticks per view; "
        "plan_hexes + grid_key×2 + diff + value_patch + remember values)",
        ["view", "cells", "p50", "p95", "max", "p50 +json", "p95 +json", "full figure"],
        [[r["case"].label, f"{r['cells']:,}", f"{percentile(r['times'], 50):.1f}",
          f"{percentile(r['times'], 95):.1f}", f"{max(r['times']):.1f}",
          f"{percentile(r['with_json'], 50):.1f}", f"{percentile(r['with_json'], 95):.1f}",
          f"{r['full_ms']:.0f}"] for r in results])
    print("'+json' adds serialising the Patch; 'full figure' is map_figure for the same view "
          "(best of 3, warm caches), for scale.")
    worst_raw = max(pct(r["rows"], "patch_raw", "full_raw", 95) for r in live)
    worst_gzip = max(pct(r["rows"], "patch_gz", "full_gz", 95) for r in live)
    ten_k = next(r for r in results if r["case"].label == "10k res 10, viewport")
    print(verdict("live tick bytes, p95 tick, worst of the 1k/10k views (raw, patch/full)",
                  worst_raw, 100 * BYTES_TARGET, "%", higher_is_better=False))
    print(verdict("live tick bytes on the wire, p95 tick, worst of the 1k/10k views (gzip)",
                  worst_gzip, 100 * BYTES_TARGET, "%", higher_is_better=False))
    print(verdict("tick server time p95 at 10k cells (res 10 viewport)",
                  percentile(ten_k["times"], 95), TIME_TARGET_MS, "ms", higher_is_better=False))


if __name__ == "__main__":
    main()
