"""Start-up: how long ``create_app`` takes for a city, cold (empty cache) and warm.

Each run is a fresh interpreter (imports included, as an operator's restart is) that
times ``create_app(load_config(path), start_ingest=False)`` with ``[cache] directory``
pointed at a temporary folder: the first run finds it empty (cold: every areal
apportionment computed), the next ones find what the first wrote (warm). Wall seconds per
step, and the process's CPU seconds (less disturbed by other work on a shared machine)::

    .venv/bin/python bench/startup.py                       # the demo city, 1 cold + 2 warm
    .venv/bin/python bench/startup.py --config cities/nyc/snapshot.toml --warm 3

This measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_CHILD = """
import dataclasses, json, sys, time
t0 = time.perf_counter()
from app import create_app, load_config
t1 = time.perf_counter()
config = load_config(sys.argv[1] or None)
config = dataclasses.replace(config, cache=dataclasses.replace(config.cache, directory=sys.argv[2]))
t2 = time.perf_counter()
app = create_app(config, start_ingest=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "config": t2 - t1, "create_app": t3 - t2, "total": t3 - t0,
                  "cpu": time.process_time()}))
"""


def run_once(config: str, cache_dir: str) -> dict[str, float]:
    """One fresh interpreter's timings (seconds)."""
    done = subprocess.run([sys.executable, "-c", _CHILD, config, cache_dir], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="city config (default: the demo city)")
    parser.add_argument("--warm", type=int, default=2, help="warm runs after the cold one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citybrain-bench-cache-") as cache_dir:
        runs = [("cold", run_once(args.config, cache_dir))]
        runs += [(f"warm {i + 1}", run_once(args.config, cache_dir)) for i in range(args.warm)]
    print(f"start-up of {args.config or 'the demo city'} (seconds)")
    print(f"{'run':<8} {'import':>7} {'config':>7} {'create_app':>11} {'total':>7} {'cpu':>7}")
    for name, t in runs:
        print(f"{name:<8} {t['import']:>7.2f} {t['config']:>7.2f} {t['create_app']:>11.2f} "
              f"{t['total']:>7.2f} {t['cpu']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
