"""Each of these modules imports on its own, as the first import of a fresh interpreter.

A test session imports modules in whatever order its files ask; a circle that only
bites when one particular module comes first (``ops.auth`` before ``ops.events`` did)
stays hidden there. A fresh interpreter per module shows it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FIRST_IMPORTS = [
    "ops.auth", "api.events", "ops.events", "ops.events.store", "store.city",
    "store.replication", "store.history",
]


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_module_imports_first(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
