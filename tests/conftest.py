"""Shared fixtures: the demo city, real local services, the real app, headless Chromium.

A test that needs a service (PostgreSQL, Redis, Mosquitto, Chromium) fails loudly
in CI (``CI`` is set) when the service is missing, and skips with the reason on a
laptop that does not run it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a real service or tool is not available."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REDIS_SERVER = Path("/usr/bin/redis-server")


def start_private_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """A Redis of the test's own on ``port`` (the shared one is never stopped), empty
    whenever it starts: no snapshot, no append-only file. Waits until it listens."""
    require(REDIS_SERVER.exists(), "redis-server is not installed (needed for a private Redis)")
    process = subprocess.Popen([str(REDIS_SERVER), "--port", str(port), "--save", "",
                                "--appendonly", "no", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, "timed out after 10 s waiting for the private Redis"
        time.sleep(0.05)
    return process


def _private_events(config, tmp_path_factory):
    """The config with its event store in a temporary folder (tests never touch var/)."""
    import dataclasses

    from ops.events.settings import EVENTS_SECTION

    events = config.section(EVENTS_SECTION)
    if events is None:
        return config
    path = tmp_path_factory.mktemp("events") / "events.sqlite3"
    return config.with_section(EVENTS_SECTION, dataclasses.replace(events, path=path))


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory):
    """The demo city as a snapshot (every source read once): deterministic counts."""
    from app import load_config
    from config.city import SNAPSHOT_CONFIG

    return _private_events(load_config(SNAPSHOT_CONFIG), tmp_path_factory)


@pytest.fixture(scope="session")
def live_config(tmp_path_factory):
    """The live demo city (replays and simulated telemetry on an accelerated clock)."""
    from app import load_config

    return _private_events(load_config(), tmp_path_factory)


@pytest.fixture(scope="session")
def demo_data(demo_config):
    from store.city import CityData

    return CityData.load(demo_config)


@pytest.fixture(scope="session")
def demo_app(demo_config):
    from app import create_app

    return create_app(demo_config)


@pytest.fixture()
def api(demo_app):
    return demo_app.server.test_client()


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def start_server(args: list[str], port: int, env: dict[str, str] | None = None,
                 log_name: str = "server") -> subprocess.Popen:
    log_dir = REPO / "var" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{log_name}-{port}.log", "wb")  # noqa: SIM115 - closed with process
    process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})})
    wait_for_http(f"http://127.0.0.1:{port}/api/health", process=process)
    return process


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """The real app on the snapshot demo city, in a subprocess; yields its base URL."""
    port = free_port()
    process = start_server([sys.executable, "app.py", "--config", "cities/nyc/snapshot.toml",
                            "--port", str(port)], port, log_name="app")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


CHROMIUM = os.environ.get("CITYBRAIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (no browser download)."""
    require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM} (scripts/install-system.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    dsn = os.environ.get("CITYBRAIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    require(port_open("127.0.0.1", 5432), "PostgreSQL is not listening on 127.0.0.1:5432")
    return dsn


@pytest.fixture(scope="session")
def redis_url() -> str:
    require(port_open("127.0.0.1", 6379), "Redis is not listening on 127.0.0.1:6379")
    return os.environ.get("CITYBRAIN_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    require(port_open("127.0.0.1", 1883), "Mosquitto is not listening on 127.0.0.1:1883")
    return "127.0.0.1", 1883
