#!/usr/bin/env bash
# Set up citybrain on a fresh machine: a virtualenv with the project and its extras.
#   scripts/setup.sh            # app only
#   scripts/setup.sh test       # app + test tools + system packages the tests need
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "test" ]; then
    .venv/bin/python -m pip install --quiet -e ".[test]"
    bash scripts/install-system.sh
else
    .venv/bin/python -m pip install --quiet -e ".[postgis,mqtt,redis,serve]"
fi
