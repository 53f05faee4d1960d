"""Load: N polling pages against two gunicorn workers on loopback, stepped until it saturates.

A page is simulated as the browser drives it (no browser): it reads ``/_dash-layout``
and ``/_dash-dependencies`` once, then every ``[live] refresh`` seconds posts each
callback whose input is the refresh interval (``interval-tick.n_intervals``) to
``/_dash-update-component`` with the values the page holds (the layout's, then what its
callbacks answered: so a tick on an unchanged view is the value patch a real page gets;
callbacks chained off those outputs are not followed), and every 5 s polls
``GET /api/health`` (``assets/connection.js``). Each page is one thread with its own
HTTP session; requests of one tick go one after another (a browser sends them over up
to 6 connections, so this is the gentler client).

For each step (default 10 → 50 → 100 → 200 pages, ``--seconds`` each) it prints the
requests, the rate, p50/p95/p99 latency, errors (a 5xx, a timeout or a refused
connection) and the share of ticks that took longer than the refresh interval (the
page falls behind), over each page's ticks after its first (which draws the map from
nothing; a page still waiting for its first answer when the step ends saturates it);
the rate is over the step's wall time, the stragglers' included. A step **saturates**
when late ticks pass 5 % or errors 1 %: the table says at which step. The client
shares the machine with the server, so on a 2-core machine its own CPU is part of what
is measured.

    .venv/bin/python bench/load.py [--config cities/nyc/city.toml] [--pages 10,50,100,200]
                                   [--seconds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, free_port, percentile, print_table, wait_http  # noqa: E402

TICK = "interval-tick"
HEALTH_EVERY = 5.0


@dataclass
class Results:
    """What the pages measured in one step (appended by many threads under one lock)."""

    latencies: list[float] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    #: Pages that got past their first tick within the step.
    steady: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, error: str | None = None, status: int = 0) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if error is not None:
                self.errors[error] = self.errors.get(error, 0) + 1


def layout_values(layout: Any) -> dict[str, Any]:
    """``"<id>.<prop>" → value`` for every component of a ``/_dash-layout`` tree."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict) and "props" in node:
            props = node["props"]
            if isinstance(props.get("id"), str):
                for key, value in props.items():
                    if key != "children":
                        found[f"{props['id']}.{key}"] = value
            walk(props.get("children"))

    walk(layout)
    return found


def tick_payloads(dependencies: list[dict[str, Any]], values: dict[str, Any],
                  n: int) -> list[dict[str, Any]]:
    """The callback requests a page sends on its ``n``-th refresh tick."""
    payloads = []
    for dep in dependencies:
        inputs = dep["inputs"]
        if not any(i["id"] == TICK for i in inputs) or dep.get("clientside_function"):
            continue

        def value(d: dict[str, Any]) -> Any:
            if d["id"].startswith("{"):
                return []
            if d["id"] == TICK and d["property"] == "n_intervals":
                return {"id": d["id"], "property": d["property"], "value": n}
            return {"id": d["id"], "property": d["property"],
                    "value": values.get(f"{d['id']}.{d['property']}")}

        outputs = []
        for text in dep["output"].removeprefix("..").removesuffix("..").split("..."):
            ident, _, prop = text.rpartition(".")
            outputs.append([] if ident.startswith("{") else {"id": ident, "property": prop})
        payloads.append({
            "output": dep["output"],
            "outputs": outputs if dep["output"].startswith("..") else outputs[0],
            "inputs": [value(d) for d in inputs], "state": [value(d) for d in dep["state"]],
            "changedPropIds": [f"{TICK}.n_intervals"]})
    return payloads


def remember(values: dict[str, Any], answer: Any) -> None:
    """Keep what a callback answered as the page's state (its next tick sends it back, so
    an unchanged view gets the small value patch a real page gets); patches are skipped."""
    for ident, props in (answer.get("response") or {}).items() if isinstance(answer, dict) else ():
        if ident.startswith("{") or not isinstance(props, dict):
            continue
        for prop, value in props.items():
            if not (isinstance(value, dict) and "__dash_patch_update" in value):
                values[f"{ident}.{prop}"] = value


def page(base: str, refresh: float, stop: float, results: Results,
         dependencies: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """One polling page until ``stop`` (a monotonic time)."""
    session = requests.Session()
    values = dict(values)  # this page's own state: what its callbacks answered last
    n, next_health = 0, time.monotonic()
    while time.monotonic() < stop:
        started = time.monotonic()
        n += 1
        calls: list[tuple[str, str, Any]] = [
            ("POST", "/_dash-update-component", p) for p in tick_payloads(dependencies, values, n)]
        if started >= next_health:
            calls.append(("GET", "/api/health", None))
            next_health = started + HEALTH_EVERY
        for method, path, body in calls:
            t0 = time.monotonic()
            error, status = None, 0
            try:
                answer = session.request(method, base + path, json=body, timeout=30)
                status = answer.status_code
                if status == 200 and path == "/_dash-update-component":
                    remember(values, answer.json())
                if answer.status_code >= 500:
                    error = f"{answer.status_code} {path}"
            except requests.RequestException as exc:
                error = type(exc).__name__
            if n > 1:  # a page's first tick draws its map from nothing: steady state only
                results.add(time.monotonic() - t0, error, status)
        took = time.monotonic() - started
        if n > 1:
            with results.lock:
                results.ticks.append(took)
                results.steady += n == 2
        time.sleep(max(0.0, refresh - took))


def step(base: str, pages: int, seconds: float, refresh: float,
         dependencies: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    results = Results()
    began = time.monotonic()
    stop = began + seconds
    threads = [threading.Thread(target=page, daemon=True,
                                args=(base, refresh, stop, results, dependencies, values))
               for _ in range(pages)]
    for i, thread in enumerate(threads):  # pages open over the first refresh interval
        thread.start()
        time.sleep(refresh / pages if i < pages - 1 else 0)
    for thread in threads:
        thread.join(seconds + 60)
    requests_done = len(results.latencies)
    seconds = time.monotonic() - began
    errors = sum(results.errors.values())
    late = sum(1 for t in results.ticks if t > refresh)
    return {
        "pages": pages, "ticks": len(results.ticks), "requests": requests_done,
        "rate": requests_done / seconds,
        "p50": percentile(results.latencies, 50) * 1000,
        "p95": percentile(results.latencies, 95) * 1000,
        "p99": percentile(results.latencies, 99) * 1000,
        "errors": errors, "error_kinds": dict(results.errors),
        "statuses": dict(sorted(results.statuses.items())),
        "late": late / max(1, len(results.ticks)),
        "steady_pages": results.steady,
        # A page still waiting for its first tick when the step ends is a page left behind.
        "saturated": late / max(1, len(results.ticks)) > 0.05
        or errors / max(1, requests_done) > 0.01 or results.steady < pages,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "cities" / "nyc" / "city.toml"))
    parser.add_argument("--pages", default="10,50,100,200")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    log_path = REPO / "var" / "bench-load-gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    env = {**os.environ, "CITYBRAIN_CONFIG": str(Path(args.config).resolve()),
           "CITYBRAIN_SECRET_KEY": os.environ.get("CITYBRAIN_SECRET_KEY", "bench-load-" + "x" * 24)}
    import subprocess

    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
             "--timeout", "120", "--graceful-timeout", "5", "--no-control-socket", "app:server"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            wait_http(f"{base}/api/health", 600, server)
            print(f"gunicorn -w {args.workers} serving {args.config} after "
                  f"{time.monotonic() - started:.0f} s; log: {log_path}", flush=True)
            layout = requests.get(f"{base}/_dash-layout", timeout=60).json()
            dependencies = requests.get(f"{base}/_dash-dependencies", timeout=60).json()
            values = layout_values(layout)
            refresh = float(values.get(f"{TICK}.interval", 3000)) / 1000
            per_tick = len(tick_payloads(dependencies, values, 1))
            print(f"a page's tick: {per_tick} callbacks every {refresh:g} s, "
                  f"GET /api/health every {HEALTH_EVERY:g} s", flush=True)
            for _ in range(2):  # warm both workers' caches
                for payload in tick_payloads(dependencies, values, 1):
                    requests.post(f"{base}/_dash-update-component", json=payload, timeout=120)
            rows, first_saturated = [], None
            for pages in (int(p) for p in args.pages.split(",")):
                result = step(base, pages, args.seconds, refresh, dependencies, values)
                if result["saturated"] and first_saturated is None:
                    first_saturated = pages
                rows.append([pages, result["steady_pages"], result["requests"], f"{result['rate']:.1f}",
                             f"{result['p50']:.0f}", f"{result['p95']:.0f}",
                             f"{result['p99']:.0f}", result["errors"],
                             f"{100 * result['late']:.1f} %",
                             "yes" if result["saturated"] else "no"])
                print(json.dumps({k: v for k, v in result.items()}), flush=True)
            print_table(f"Load: polling pages against gunicorn -w {args.workers} "
                        f"({args.seconds:g} s per step)",
                        ["pages", "past 1st tick", "requests", "req/s", "p50 ms", "p95 ms",
                         "p99 ms", "errors", "ticks late", "saturated"], rows)
            print("saturates at: " + (f"{first_saturated} pages" if first_saturated
                                      else "not within the steps run"))
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
