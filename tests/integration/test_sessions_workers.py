"""Sessions across two real gunicorn workers: the key is required, sign-ins hold on both.

Without ``CITYBRAIN_SECRET_KEY`` two workers refuse to start with one line naming it
(for a city sharing Redis, and for a plain city under ``gunicorn -w 2``). With the key
and Redis, a sign-in made on one worker is valid on both, wrong passwords counted on
either lock the name on both, and a logout on one refuses the old cookie on both.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import REPO, free_port, require, wait_for_http
from tests.integration.test_shared_live import URL_ENV, _toml, city_table, delete_keys, write_city_files

pytestmark = pytest.mark.service

PASSWORD = "correct horse battery"
HASH_ENV = "CITYBRAIN_TEST_DUTY_HASH"


@pytest.fixture()
def key_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own (its keys are deleted afterwards)."""
    name = f"citybrain-test-{uuid.uuid4().hex[:10]}:"
    yield name
    delete_keys(redis_url, name)


def city_file(folder: Path, prefix: str, shared: bool) -> Path:
    """The shared-live test city plus an event pipeline and one operator."""
    write_city_files(folder)
    table = city_table(prefix, folder, speed=600)
    if not shared:
        table.pop("cache")
    table["signin"] = {"max_failures": 3, "lockout": "60s", "attempts": "1000/minute"}
    text = _toml(table)
    text += (f'[events]\nstore = "sqlite"\npath = {json.dumps(str(folder / "events.sqlite3"))}\n'
             f'[[users]]\nname = "duty"\nrole = "operator"\npassword_hash_env = "{HASH_ENV}"\n')
    path = folder / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def gunicorn(config: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    require(subprocess.run([sys.executable, "-c", "import gunicorn"]).returncode == 0,
            "gunicorn is not installed in this environment")
    base = {k: v for k, v in os.environ.items() if k != "CITYBRAIN_SECRET_KEY"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "5", "--no-control-socket", "app:server"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**base, "CITYBRAIN_CONFIG": str(config), **env})


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.mark.parametrize(("shared", "why"), [
    (True, "workers share the live state through Redis"),
    (False, "gunicorn runs 2 workers"),
])
def test_two_workers_without_the_key_refuse_to_start(tmp_path: Path, key_prefix: str,
                                                     redis_url: str, shared: bool, why: str) -> None:
    config = city_file(tmp_path, key_prefix, shared)
    log = tmp_path / "gunicorn.log"
    server = gunicorn(config, free_port(), log, **{URL_ENV: redis_url, HASH_ENV: "x"})
    try:
        code = server.wait(timeout=90)
    finally:
        if server.poll() is None:
            stop(server)
    text = log.read_text(errors="replace")
    # The master stopped: 4 is gunicorn's "App failed to load"; when both workers fail in
    # the same instant gunicorn's own halt raises again while reaping and it exits with 1.
    assert code in (1, 4), text[-3000:]
    assert "App failed to load" in text, text[-3000:]
    line = f"citybrain: CITYBRAIN_SECRET_KEY is not set but {why}: set it to the same long " \
           "random value for every worker (see docs/deployment.md)"
    assert line in text.splitlines(), text[-3000:]
    assert "ConfigError" not in text  # one line, not a traceback of ours


class Browser:
    """One cookie jar; each request on its own connection, so requests spread over workers."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, int, Any]:
        """(status, worker pid, JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                         headers={"Connection": "close",
                                                  "Content-Type": "application/json"})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, int(response.headers.get("X-Citybrain-Worker", 0)), \
                    json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, int(error.headers.get("X-Citybrain-Worker", 0)), \
                json.loads(error.read())

    def copy(self) -> Browser:
        other = Browser(self.base)
        for cookie in self.jar:
            other.jar.set_cookie(cookie)
        return other


def from_both_workers(call: Callable[[], tuple[int, int, Any]], tries: int = 30,
                      timeout: float = 30.0) -> list[tuple[int, int, Any]]:
    """At least ``tries`` answers of ``call``, going on until both workers answered.

    The kernel, not us, decides which worker accepts; an idle machine may hand every
    sequential connection to one. Calls go in concurrent batches of four, so while one
    sync worker is busy the other accepts.
    """
    answers: list[tuple[int, int, Any]] = []
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(4) as pool:
        while len(answers) < tries or len({pid for _, pid, _ in answers}) < 2:
            if time.monotonic() > deadline:
                break  # the caller's assertion says what was seen
            answers.extend(pool.map(lambda _: call(), range(4)))
    return answers


def answers_by_worker(browser: Browser, path: str, tries: int = 30) -> dict[int, set[int]]:
    """Status codes seen from each worker pid over at least ``tries`` GETs of ``path``."""
    seen: dict[int, set[int]] = {}
    for status, pid, _body in from_both_workers(lambda: browser.call("GET", path), tries):
        seen.setdefault(pid, set()).add(status)
    return seen


@pytest.fixture()
def served(tmp_path: Path, key_prefix: str, redis_url: str) -> Iterator[str]:
    config = city_file(tmp_path, key_prefix, shared=True)
    port = free_port()
    server = gunicorn(config, port, tmp_path / "gunicorn.log",
                      **{URL_ENV: redis_url, HASH_ENV: generate_password_hash(PASSWORD),
                         "CITYBRAIN_SECRET_KEY": "test-" + "k" * 40})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=90, process=server)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def test_with_the_key_a_session_holds_on_both_workers_until_logout(served: str) -> None:
    browser = Browser(served)
    status, _, body = browser.call("POST", "/api/events/login",
                                   {"name": "duty", "password": PASSWORD})
    assert (status, body) == (200, {"name": "duty", "role": "operator"})
    captured = browser.copy()
    seen = answers_by_worker(browser, "/api/events/me")
    assert len(seen) == 2 and all(statuses == {200} for statuses in seen.values()), seen

    assert browser.call("POST", "/api/events/logout")[0] == 200
    after = answers_by_worker(captured, "/api/events/me")
    assert len(after) == 2 and all(statuses == {401} for statuses in after.values()), after


def test_wrong_passwords_on_either_worker_lock_the_name_on_both(served: str) -> None:
    answers = [Browser(served).call("POST", "/api/events/login",
                                    {"name": "duty", "password": f"guess {i}"}) for i in range(12)]
    assert [a[0] for a in answers] == [401] * 3 + [429] * 9
    # Wrong guesses go on until both workers answered: each one locked, one count.
    answers += from_both_workers(lambda: Browser(served).call(
        "POST", "/api/events/login", {"name": "duty", "password": "guess again"}), tries=0)
    assert len({a[1] for a in answers}) == 2  # both workers answered, one count
    assert all(a[0] == 429 and a[2]["reason"] == "locked" for a in answers[3:])
    right = from_both_workers(lambda: Browser(served).call(
        "POST", "/api/events/login", {"name": "duty", "password": PASSWORD}), tries=0)
    assert all(status == 429 for status, _, _ in right)
    assert len({pid for _, pid, _ in right}) == 2
