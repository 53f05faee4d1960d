"""Memory of the live demo app under a steady stream: RSS sampled over minutes.

The app (``python app.py``) runs the live demo city from a temporary config that
extends ``cities/nyc/city.toml`` (written to ``cities/nyc/bench-memory-<pid>.toml``,
because ``extends`` only reaches files in the same folder, and deleted afterwards),
optionally on a faster city clock so that the live windows fill and then turn over
within the run. A headless Chromium page stays open on it (``--pages``), so the
tick callbacks run as they do on a wall. Every ``--interval`` seconds the app's
RSS and CPU are read from ``/proc`` and its live row counts from ``/api/health``::

    .venv/bin/python bench/memory.py                        # 10 minutes
    .venv/bin/python bench/memory.py --minutes 1            # a quick check
    .venv/bin/python bench/memory.py --minutes 3 --mqtt --mqtt-rate 5000

With ``--mqtt`` the config also gets an MQTT source on the local broker, and a
separate process publishes to it at ``--mqtt-rate`` messages/s for the whole run.
Devices stamp wall-clock times, so the clock then runs at speed 1, and the source's
window (``--mqtt-window``, 20 s) and the history (``--mqtt-history``, 40 s) are short
enough for the stream to turn over within the run.

Growth is measured from the first sample, taken ``--warmup`` seconds after the page
opened (start-up, the first page load and the first filling of the live windows are
not a leak), to the last; target < 10 %.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    REPO,
    cpu_seconds,
    free_port,
    print_table,
    rss_mib,
    running_app,
    verdict,
)

TARGET_GROWTH = 10.0
CITY_DIR = REPO / "cities" / "nyc"


def write_config(path: Path, speed: float | None, mqtt: dict[str, Any] | None) -> None:
    lines = ["# Temporary benchmark config (bench/memory.py); safe to delete.",
             'extends = "city.toml"', ""]
    live = [] if speed is None else [f"speed = {speed:g}"]
    if mqtt is not None:
        live.append(f'history = "{mqtt["history"]}"')
    if live:
        lines += ["[live]", *live, ""]
    if mqtt is not None:
        lines += [
            "[[sources]]",
            'name = "bench-mqtt"',
            'title_en = "Benchmark devices (MQTT)"',
            'layer = "things"',
            'role = "devices"',
            'adapter = "mqtt"',
            f'host = "{mqtt["host"]}"',
            f'port = {mqtt["port"]}',
            f'topics = ["{mqtt["topic"]}"]',
            f'client_id = "{mqtt["client_id"]}"',
            'id = "id"', 'time = "ts"', 'lat = "position.lat"', 'lon = "position.lon"',
            'category = "kind"', 'reading = "sensor.value"',
            # Device times are wall times, so the clock runs at speed 1 here; a short
            # window and history turn the stream over within the run.
            f'window = "{mqtt["window"]}"',
            f'max_rows = {mqtt["max_rows"]}',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def live_rows(port: int) -> tuple[int, int]:
    """(rows in streaming sources' windows, data version) from /api/health."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as r:
            doc = json.load(r)
    except (OSError, ValueError):
        return -1, -1
    streaming = set(doc["ingest"]["streaming_sources"])
    return (sum(int(s["rows_loaded"]) for s in doc["sources"] if s["name"] in streaming),
            int(doc["data_version"]))


def open_pages(count: int, url: str) -> Any:
    """Headless Chromium with ``count`` pages on the app; returns a closer."""
    if count <= 0:
        return lambda: None
    from playwright.sync_api import sync_playwright

    from bench.browser_tick import CHROMIUM, CHROMIUM_ARGS, JS_MAP_DRAWN, VIEWPORT

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    for _ in range(count):
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(url)
        page.wait_for_function(JS_MAP_DRAWN, timeout=120_000)

    def close() -> None:
        browser.close()
        playwright.stop()

    return close


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="sampling time")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds after the page opened before the first sample")
    parser.add_argument("--speed", type=float, default=None,
                        help="city clock speed; default 3600 (the demo's is 120; at 3600 the "
                             "311 window of 2 city days fills in 48 s, the 1-day history in "
                             "24 s), or 1 with --mqtt (devices send wall-clock times); 0 keeps "
                             "the demo's")
    parser.add_argument("--pages", type=int, default=1, help="browser pages kept open")
    parser.add_argument("--mqtt", action="store_true", help="also stream into an MQTT source")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--mqtt-rate", type=int, default=5000, help="messages per second")
    parser.add_argument("--mqtt-window", default="20s", help="the MQTT source's live window")
    parser.add_argument("--mqtt-history", default="40s",
                        help="[live] history with --mqtt (how long every version is kept)")
    parser.add_argument("--mqtt-max-rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.speed is None:
        args.speed = 1.0 if args.mqtt else 3600.0

    run = uuid.uuid4().hex[:12]
    config_path = CITY_DIR / f"bench-memory-{os.getpid()}.toml"
    mqtt = None
    if args.mqtt:
        mqtt = {"host": args.mqtt_host, "port": args.mqtt_port,
                "topic": f"citybrain-bench/memory-{run}",
                "client_id": f"citybrain-bench-memory-{run}", "max_rows": args.mqtt_max_rows,
                "window": args.mqtt_window, "history": args.mqtt_history}
    write_config(config_path, args.speed or None, mqtt)
    port = free_port()
    samples: list[tuple[float, float, float, int, int]] = []
    publisher = None
    log_path = REPO / "var" / "bench-memory-app.log"
    log_path.parent.mkdir(exist_ok=True)
    try:
        with running_app(["app.py", "--config", str(config_path), "--port", str(port)], port,
                         log_path) as app:
            started = time.monotonic()
            load_mib = rss_mib(app.pid)
            close_pages = open_pages(args.pages, f"http://127.0.0.1:{port}/")
            try:
                if mqtt is not None:
                    from bench.mqtt_ingest import publish

                    context = mp.get_context("spawn")
                    go, results = context.Event(), context.Queue()
                    seconds = args.warmup + args.minutes * 60 + args.interval
                    publisher = context.Process(target=publish, args=(
                        mqtt["host"], mqtt["port"], mqtt["topic"], args.mqtt_rate, seconds, 1,
                        go, results), daemon=True)
                    publisher.start()
                    go.set()
                time.sleep(args.warmup)
                deadline = time.monotonic() + args.minutes * 60
                cpu_before, wall_before = cpu_seconds(app.pid), time.monotonic()
                while True:
                    now = time.monotonic()
                    cpu_now = cpu_seconds(app.pid)
                    cpu_pct = 100 * (cpu_now - cpu_before) / max(1e-9, now - wall_before)
                    cpu_before, wall_before = cpu_now, now
                    rows, version = live_rows(port)
                    samples.append((now - started, rss_mib(app.pid), cpu_pct, rows, version))
                    print(f"  t={samples[-1][0]:6.0f} s  RSS {samples[-1][1]:7.1f} MiB  "
                          f"live rows {rows:,}", flush=True)
                    if now >= deadline:
                        break
                    time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
            finally:
                close_pages()
    finally:
        config_path.unlink(missing_ok=True)
        if publisher is not None:
            publisher.terminate()
            publisher.join(5)
        if mqtt is not None:
            from data.mqtt import forget_session

            try:
                forget_session(mqtt["host"], mqtt["port"], mqtt["client_id"])
            except Exception as exc:  # the broker may be gone; the session then expires
                print(f"could not drop the MQTT session: {exc}")

    print()
    print_table(
        f"App RSS under the live stream (clock ×{args.speed or 120:g}, {args.pages} page(s)"
        + (f", MQTT {args.mqtt_rate}/s" if args.mqtt else "") + ")",
        ["t s", "RSS MiB", "CPU % (since last)", "live rows", "data version"],
        [[f"{t:.0f}", f"{rss:.1f}", f"{cpu:.0f}" if i else "-", f"{rows:,}", version]
         for i, (t, rss, cpu, rows, version) in enumerate(samples)])
    start, end = samples[0][1], samples[-1][1]
    peak = max(s[1] for s in samples)
    growth = 100 * (end - start) / start
    # One sample swings by ~10 MiB (allocator, a page's callbacks): the fitted slope
    # says more about a leak than end − start does.
    slope = float(np.polyfit([s[0] / 60 for s in samples], [s[1] for s in samples], 1)[0]) \
        if len(samples) > 2 else float("nan")
    print_table("Summary (MiB)", ["after load", "start", "max", "end", "growth %",
                                  "max vs start %", "fitted slope MiB/min"],
                [[f"{load_mib:.1f}", f"{start:.1f}", f"{peak:.1f}", f"{end:.1f}", f"{growth:+.1f}",
                  f"{100 * (peak - start) / start:+.1f}", f"{slope:+.2f}"]])
    print(verdict(f"RSS growth over {args.minutes:g} min (from the first sample, "
                  f"{args.warmup:g} s after the page opened)",
                  growth, TARGET_GROWTH, "%", higher_is_better=False))


if __name__ == "__main__":
    main()
