"""Several workers, one city: the live state shared through the real local Redis.

The unit-level tests run a leader and followers in this process, each with its own
:class:`SharedLive` and data, against real Redis: a batch goes through the stream
and comes out as the same rows; a late worker catches up from a checkpoint; a
deposed leader cannot append. The end-to-end test starts two real gunicorn workers
on a small replayed city and checks that they serve the same figures, that exactly
one of them ingests, and that ingest moves to another process when it is killed.

Each test uses its own Redis key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.city import ConfigError
from data import AdapterContext, get_adapter_class
from store.ingest import IngestEngine
from store.replication import Entry, SharedLive, decode_frame, encode_frame, shared_mode
from tests.conftest import REPO, free_port, require, start_private_redis, wait_for_http

pytestmark = pytest.mark.service

CITY = {"name": "Shared Test City", "center": {"lat": 40.75, "lon": -73.98}, "timezone": "UTC"}
URL_ENV = "CITYBRAIN_TEST_SHARED_REDIS_URL"


# -------------------------------------------------------------------- fixtures
def write_city_files(folder: Path, rows: int = 300) -> None:
    """A replayed CSV of service requests (one a minute) and a few service points."""
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2024-05-01 08:00")
    created = [start + pd.Timedelta(minutes=i) for i in range(rows)]
    closes = rng.random(rows) < 0.5
    pd.DataFrame({
        "key": [f"r{i}" for i in range(rows)],
        "created": [t.isoformat() for t in created],
        "closed": [(t + pd.Timedelta(minutes=30)).isoformat() if c else ""
                   for t, c in zip(created, closes, strict=True)],
        "lat": np.round(40.70 + rng.random(rows) * 0.1, 6),
        "lon": np.round(-74.02 + rng.random(rows) * 0.1, 6),
        "kind": rng.choice(["Noise", "Street Condition", "Rodent"], rows),
    }).to_csv(folder / "requests.csv", index=False)
    pd.DataFrame({
        "osm": [f"p{i}" for i in range(20)],
        "lat": np.round(40.70 + rng.random(20) * 0.1, 6),
        "lon": np.round(-74.02 + rng.random(20) * 0.1, 6),
        "kind": "townhall",
    }).to_csv(folder / "points.csv", index=False)


REPLAY = {"name": "requests", "layer": "government", "role": "requests", "adapter": "replay",
          "path": "requests.csv", "id": "key", "time": "created", "closed_time": "closed",
          "lat": "lat", "lon": "lon", "category": "kind", "warmup": "30m"}
POINTS = {"name": "service-points", "layer": "government", "role": "service_points",
          "adapter": "csv", "path": "points.csv", "id": "osm", "lat": "lat", "lon": "lon",
          "category": "kind"}


def city_table(prefix: str, folder: Path, speed: float) -> dict[str, Any]:
    return {
        "city": CITY,
        "cache": {"type": "RedisCache", "redis_url_env": URL_ENV, "key_prefix": prefix,
                  "directory": str(folder / "cache")},
        "live": {"speed": speed, "ingest_interval": 0.5, "window": "2h", "history": "2h",
                 "stale_after": "60s"},
        "sources": [REPLAY, POINTS],
    }


def delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture()
def prefix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Redis key prefix of this test's own (its keys are deleted afterwards)."""
    monkeypatch.setenv(URL_ENV, redis_url)
    name = f"citybrain-test-{uuid.uuid4().hex[:10]}:"
    yield name
    delete_keys(redis_url, name)


@pytest.fixture()
def city(tmp_path: Path, prefix: str):
    write_city_files(tmp_path)
    return parse_config(city_table(prefix, tmp_path, speed=3600), tmp_path)


class Worker:
    """One in-process 'worker': its own SharedLive, data and (unstarted) engine."""

    def __init__(self, config: Any, redis_url: str, lead: bool = True) -> None:
        self.shared = SharedLive(config, redis_url, lock_ttl=2.0)
        self.data = self.shared.open_city()
        self.engine = IngestEngine(self.data)
        self.shared.start(self.engine, lead=lead, background=False)

    def round(self) -> None:
        """One ingest round, as the engine's thread would run it (only the leader's counts)."""
        self.engine.step()

    def close(self) -> None:
        self.shared.stop()
        self.shared.client.close()


@pytest.fixture()
def workers(redis_url: str) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(config: Any, lead: bool = True) -> Worker:
        worker = Worker(config, redis_url, lead)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


def same_state(a: Any, b: Any) -> None:
    """Two processes' data hold the same rows, health and versions."""
    assert (a.seq, a.version) == (b.seq, b.version)
    for role in ("requests", "service_points"):
        pd.testing.assert_frame_equal(a.frame("government", role), b.frame("government", role))
    for name in a.health:
        assert a.health[name].as_dict() == b.health[name].as_dict()
    metric = a.metric("government", "requests")
    pd.testing.assert_series_equal(a.cells("government", metric, 8),
                                   b.cells("government", metric, 8))
    assert a.clock.origin == b.clock.origin and a.clock.speed == b.clock.speed


# ------------------------------------------------------------------- unit level
def test_live_shared_setting_is_validated(tmp_path: Path) -> None:
    base = {"city": CITY}
    assert shared_mode(parse_config(base, tmp_path)) is None
    assert shared_mode(parse_config({**base, "cache": {"type": "RedisCache"}}, tmp_path)) == "redis"
    assert shared_mode(parse_config({**base, "live": {"shared": "redis"}}, tmp_path)) == "redis"
    off = {**base, "cache": {"type": "RedisCache"}, "live": {"shared": "off"}}
    assert shared_mode(parse_config(off, tmp_path)) is None
    with pytest.raises(ConfigError, match="auto, off, redis"):
        parse_config({**base, "live": {"shared": "memcached"}}, tmp_path)


def test_frames_survive_the_stream_encoding(tmp_path: Path) -> None:
    write_city_files(tmp_path)
    as_csv = {k: v for k, v in REPLAY.items() if k != "warmup"} | {"adapter": "csv"}
    config = parse_config({"city": CITY, "sources": [POINTS, as_csv]},
                          tmp_path)
    context = AdapterContext()
    for source in config.sources:
        frame = get_adapter_class(source.adapter)(source, context).snapshot().frame
        decoded = decode_frame(encode_frame(frame))
        assert list(decoded.dtypes.astype(str)) == list(frame.dtypes.astype(str))
        pd.testing.assert_frame_equal(decoded.isna(), frame.isna())
        pd.testing.assert_frame_equal(decoded.where(frame.notna()), frame.where(frame.notna()))
        pd.testing.assert_frame_equal(decode_frame(encode_frame(decoded)), decoded)
        empty = decode_frame(encode_frame(frame.iloc[0:0]))
        assert empty.empty and list(empty.columns) == list(frame.columns)
    import geopandas as gpd
    from shapely.geometry import box

    areas = gpd.GeoDataFrame({"id": ["a", "b"], "name": ["A", None], "value": [1.5, np.nan],
                              "cell": np.array([1, 2], dtype=np.int64), "source": "s"},
                             geometry=[box(0, 0, 1, 1), box(1, 1, 2, 3)], crs="EPSG:4326")
    back = decode_frame(encode_frame(areas))
    assert isinstance(back, gpd.GeoDataFrame) and back.crs == areas.crs
    assert back.geometry.geom_equals(areas.geometry).all()
    assert back["value"].isna().tolist() == [False, True]


def test_a_batch_goes_through_the_stream_and_a_follower_holds_the_same_rows(
        city: Any, workers: Callable[..., Worker], redis_url: str) -> None:
    leader = workers(city)
    follower = workers(city, lead=False)
    assert leader.shared.role == "leader" and follower.shared.role == "follower"
    for _ in range(4):
        time.sleep(0.3)
        leader.round()
    assert leader.data.health["requests"].rows_loaded > 0
    follower.shared.follow(drain=True)
    same_state(leader.data, follower.data)

    # What a stream entry carries: source, flags, counts, time and the frame itself.
    import redis

    client = redis.Redis.from_url(redis_url)
    _, fields = client.xrange(leader.shared.stream_key, count=1)[0]
    client.close()
    entry = Entry.from_fields(fields)
    assert (entry.op, entry.seq, entry.source, entry.replace) == ("batch", 1, "requests", True)
    assert entry.now.tzinfo is not None and entry.moment.tzinfo is not None
    first = entry.batch().frame
    assert len(first) > 0 and set(first["source"]) == {"requests"}

    # The follower's own ingest changes nothing: only the log does.
    follower.round()
    assert follower.data.seq == leader.data.seq


def test_a_late_worker_catches_up_from_the_checkpoint(
        city: Any, workers: Callable[..., Worker]) -> None:
    leader = workers(city)
    for _ in range(3):
        time.sleep(0.2)
        leader.round()
    assert leader.shared.write_checkpoint()
    for _ in range(2):
        time.sleep(0.2)
        leader.round()
    late = workers(city, lead=False)  # checkpoint, then the entries after it
    same_state(leader.data, late.data)
    time.sleep(0.2)
    leader.round()
    late.shared.follow(drain=True)
    same_state(leader.data, late.data)


def test_a_deposed_leader_cannot_append_and_a_follower_takes_over(
        city: Any, workers: Callable[..., Worker], redis_url: str) -> None:
    first = workers(city)
    second = workers(city)
    assert first.shared.role == "leader" and second.shared.role == "follower"
    time.sleep(0.2)
    first.round()
    second.shared.follow(drain=True)

    # The first leader stalls past its lock (here: the lock is simply gone).
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(first.shared.lock_key)
    client.close()
    second.shared._last_attempt = 0.0
    second.shared.tick(block=False)
    assert second.shared.role == "leader"
    seq = first.data.seq
    time.sleep(0.2)
    first.round()  # refused: nothing applied, nothing appended
    assert first.data.seq == seq and first.data.mode == "follower"
    first.shared.tick(block=False)  # notices, stops ingesting and follows
    assert first.shared.role == "follower"

    time.sleep(0.2)
    second.round()
    first.shared.follow(drain=True)
    same_state(first.data, second.data)
    assert second.data.health["requests"].rows_loaded > 0


def test_every_process_runs_on_one_clock(city: Any, redis_url: str) -> None:
    one = SharedLive(city, redis_url)
    time.sleep(0.05)
    other = SharedLive(city, redis_url)
    try:
        assert one.session == other.session
        assert one.clock.origin == other.clock.origin and one.clock.speed == 3600
        assert abs((one.clock.now() - other.clock.now()).total_seconds()) < 3600 * 0.05
    finally:
        one.client.close()
        other.client.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)


def test_ingest_pauses_while_redis_is_down_and_resumes_after(tmp_path: Path) -> None:
    """A private Redis (the shared one is never stopped) goes away and comes back empty."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    redis_server = start_private_redis(port, tmp_path)
    write_city_files(tmp_path)
    config = parse_config(city_table("outage:", tmp_path, speed=3600), tmp_path)
    workers: list[SharedLive] = []
    try:
        for _ in range(2):
            shared = SharedLive(config, url, lock_ttl=2.0)
            shared.start(IngestEngine(shared.open_city()))
            workers.append(shared)

        def roles() -> list[str]:
            return sorted(w.role for w in workers)

        def in_step() -> bool:
            return len({(w.data.seq, w.data.version) for w in workers if w.data}) == 1

        wait_until(lambda: roles() == ["follower", "leader"] and min(
            w.data.seq for w in workers if w.data) > 2, 10, "a leader and replicated entries")
        redis_server.kill()
        redis_server.wait()
        wait_until(lambda: roles() == ["follower", "follower"]
                   and not any(w.engine and w.engine.running for w in workers), 15,
                   "the leader to stop ingesting without Redis")
        paused = max(w.data.seq for w in workers if w.data)

        redis_server = start_private_redis(port, tmp_path)  # empty: the session is put back by the workers
        wait_until(lambda: roles() == ["follower", "leader"] and in_step()
                   and min(w.data.seq for w in workers if w.data) > paused + 2, 20,
                   "ingest to resume with both workers in step")
        leader = next(w for w in workers if w.role == "leader")
        assert leader.data is not None and leader.data.health["requests"].last_error is None
    finally:
        for shared in workers:
            shared.stop()
            shared.client.close()
        redis_server.kill()
        redis_server.wait()


# -------------------------------------------------------------- two gunicorn workers
def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection, so that requests spread over the workers."""
    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_gunicorn_workers_share_one_live_city(tmp_path: Path, prefix: str, redis_url: str) -> None:
    require(subprocess.run([sys.executable, "-c", "import gunicorn"]).returncode == 0,
            "gunicorn is not installed in this environment")
    write_city_files(tmp_path)
    table = city_table(prefix, tmp_path, speed=600)
    config_path = tmp_path / "city.toml"
    config_path.write_text(_toml(table), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "5", "--no-control-socket", "app:server"],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "CITYBRAIN_CONFIG": str(config_path), URL_ENV: redis_url})
    try:
        wait_for_http(f"{base}/api/health", timeout=60, process=server)

        def health() -> dict[str, Any]:
            _, headers, body = get(f"{base}/api/health")
            doc = json.loads(body)
            assert doc["ingest"]["pid"] == int(headers["X-Citybrain-Worker"])
            return doc  # type: ignore[no-any-return]

        def sample(until: Callable[[dict[int, dict[str, Any]]], bool], timeout: float) -> dict[int, Any]:
            """Health per worker pid (latest answer of each), until ``until`` holds."""
            seen: dict[int, dict[str, Any]] = {}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                doc = health()
                seen[doc["ingest"]["pid"]] = doc
                if until(seen):
                    return seen
            raise AssertionError(f"gave up after {timeout} s; workers seen: "
                                 f"{ {p: d['ingest'] for p, d in seen.items()} }\n"
                                 + log_path.read_text(errors="replace")[-3000:])

        # Both workers answer; exactly one of them ingests.
        seen = sample(lambda s: len(s) >= 2 and sum(d["ingest"]["role"] == "leader"
                                                    for d in s.values()) == 1, timeout=30)
        workers_now = set(seen)
        leader = next(p for p, d in seen.items() if d["ingest"]["role"] == "leader")
        for doc in seen.values():
            assert doc["ingest"]["shared"] == "redis" and doc["ingest"]["leader_pid"] in (leader, None)
            assert doc["ingest"]["running"] is (doc["ingest"]["pid"] == leader)

        # Many requests spread over both workers: for one data version, one answer.
        check_same_answers(base, workers_now)

        # Kill the leader: another process ingests within seconds and the city moves on.
        os.kill(leader, signal.SIGKILL)
        seen = sample(lambda s: any(d["ingest"]["role"] == "leader" and p != leader
                                    for p, d in s.items()), timeout=30)
        new_leader = next(p for p, d in seen.items() if d["ingest"]["role"] == "leader" and p != leader)
        before = seen[new_leader]["data_version"]
        after = sample(lambda s: new_leader in s and s[new_leader]["data_version"] > before,
                       timeout=20)
        assert after[new_leader]["sources"][0]["last_error"] is None
        # gunicorn replaced the killed worker; the new one caught up and agrees too.
        replaced = sample(lambda s: len(set(s) - workers_now) >= 1 and len(s) >= 2, timeout=40)
        check_same_answers(base, set(replaced) - {leader})
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def check_same_answers(base: str, pids: set[int], timeout: float = 30.0) -> None:
    """Cells and health answered by every pid agree wherever the data version is the same.

    Requests go on until every pid has answered both kinds at one data version that
    another pid answered too (the kernel, not us, decides which worker accepts).
    """
    cells: dict[int, dict[int, bytes]] = {}  # version → pid → body
    rows: dict[int, dict[int, Any]] = {}

    def compared(answers: dict[int, dict[int, Any]]) -> set[int]:
        return {pid for by_pid in answers.values() if len(by_pid) > 1 for pid in by_pid}

    def has_data() -> bool:  # right after start the replay may not have released rows yet
        return any(json.loads(body) for by_pid in cells.values() for body in by_pid.values())

    deadline = time.monotonic() + timeout
    i = 0
    while not (pids <= compared(cells) and pids <= compared(rows) and has_data()):
        assert time.monotonic() < deadline, (
            f"in {timeout} s, not every worker of {pids} answered at a version another did: "
            f"cells {[(v, sorted(a)) for v, a in cells.items()]}, "
            f"health {[(v, sorted(a)) for v, a in rows.items()]}")
        i += 1
        if i % 2:
            _, headers, body = get(f"{base}/api/layers/government/cells?res=8")
            version = int(headers["X-Citybrain-Data-Version"])
            cells.setdefault(version, {})[int(headers["X-Citybrain-Worker"])] = body
        else:
            _, headers, body = get(f"{base}/api/health")
            doc = json.loads(body)
            rows.setdefault(doc["data_version"], {})[doc["ingest"]["pid"]] = [
                (s["name"], s["rows_loaded"], s["rejected_by_reason"]) for s in doc["sources"]]
    for by_pid in cells.values():
        assert len(set(by_pid.values())) == 1, "two workers served different cells for one version"
    for by_pid in rows.values():
        assert len({json.dumps(r) for r in by_pid.values()}) == 1, \
            "two workers reported different rows for one version"
    assert has_data()


def _toml(table: dict[str, Any]) -> str:
    """The small city table as TOML (tables, then [[sources]])."""
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    lines: list[str] = []
    for name, body in table.items():
        if name == "sources":
            continue
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in body.items()]
    for source in table["sources"]:
        lines.append("[[sources]]")
        lines += [f"{k} = {value(v)}" for k, v in source.items()]
    return "\n".join(lines) + "\n"
