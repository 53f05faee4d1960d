#!/usr/bin/env bash
# Every benchmark once, with short settings (about 10 minutes on the 2-core machine).
# Longer runs: call the scripts directly (see bench/README.md).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
status=0

run() {
    echo "==================== $* ===================="
    "$PY" "$@" || { echo "!! $1 exited with $?"; status=1; }
    echo
}

run bench/ingest.py --repeats 5
run bench/tick.py --ticks 20
run bench/mqtt_ingest.py --rates 10000 --seconds 10
run bench/browser_tick.py --ticks 10 --pages 3 --seconds 20 --first-map-runs 2
run bench/memory.py --minutes 1 --warmup 30 --interval 10
if [ -f bench/first_map.py ]; then
    run bench/first_map.py --runs 2 --repeat 10
fi
exit $status
