"""Nothing acknowledged is lost: QoS 1 messages across a killed leader or a Redis restart.

Two real gunicorn workers share one live city through Redis; an MQTT source reads a
real Mosquitto. Messages are published with QoS 1 (each acknowledged by the broker
before the next); right after a burst the ingest leader is killed with SIGKILL, or
Redis is killed and comes back empty 5 s later; more are published meanwhile, and
every broker-acknowledged message must be in the city exactly once (rows are kept per
id: one row per message id, none missing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port, port_open, require, start_private_redis, wait_for_http
from tests.integration.test_mqtt import Publisher, device, device_table
from tests.integration.test_shared_live import URL_ENV, _toml, get

pytestmark = pytest.mark.service

CITY = {"name": "Failover City", "center": {"lat": 40.75, "lon": -73.98}, "timezone": "UTC"}


def health_by_worker(base: str, until: Callable[[dict[int, dict[str, Any]]], bool],
                     timeout: float, log: Path) -> dict[int, dict[str, Any]]:
    """The latest /api/health of each worker pid, polled until ``until`` holds."""
    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, headers, body = get(f"{base}/api/health")
        except OSError:
            time.sleep(0.2)
            continue
        seen[int(headers["X-Citybrain-Worker"])] = json.loads(body)
        if until(seen):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"gave up after {timeout} s: "
                         f"{ {p: (d['ingest'], rows(d)) for p, d in seen.items()} }\n"
                         + log.read_text(errors="replace")[-3000:])


def rows(doc: dict[str, Any]) -> int:
    return int(next(s["rows_loaded"] for s in doc["sources"] if s["name"] == "devices"))


@pytest.mark.parametrize("fault", ["kill-leader", "restart-redis"])
def test_a_fault_mid_stream_loses_no_acknowledged_message(
        tmp_path: Path, fault: str, ack: str = "durable") -> None:
    require(subprocess.run([sys.executable, "-c", "import gunicorn"]).returncode == 0,
            "gunicorn is not installed in this environment")
    require(port_open("127.0.0.1", 1883), "Mosquitto is not listening on 127.0.0.1:1883")
    from data.mqtt import forget_session

    # A private Redis (the shared one is never stopped), empty when it comes back.
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"

    redis_server = start_private_redis(redis_port, tmp_path)

    prefix = f"citybrain-test-{uuid.uuid4().hex[:10]}:"
    topic = f"citybrain-test/{uuid.uuid4().hex}"
    source = device_table([f"{topic}/+"], topic_field="id", ack=ack)
    table = {"city": CITY,
             "cache": {"type": "RedisCache", "redis_url_env": URL_ENV, "key_prefix": prefix,
                       "directory": str(tmp_path / "cache")},
             "live": {"ingest_interval": 0.5, "window": "2h", "history": "2h",
                      "stale_after": "60s"},
             "sources": [source]}
    config = tmp_path / "city.toml"
    config.write_text(_toml(table), encoding="utf-8")
    port, log = free_port(), tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "5", "--no-control-socket", "app:server"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "CITYBRAIN_CONFIG": str(config), URL_ENV: redis_url})
    publisher = Publisher("127.0.0.1", 1883)
    sent: list[str] = []

    def burst(n: int) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for _ in range(n):
            ident = f"m{len(sent):04d}"
            publisher.send(f"{topic}/{ident}", device(None, ts=now))  # waits for the PUBACK
            sent.append(ident)

    try:
        wait_for_http(f"{base}/api/health", timeout=90, process=server)
        seen = health_by_worker(base, lambda s: any(d["ingest"]["role"] == "leader"
                                                    for d in s.values()), 60, log)
        burst(200)
        health_by_worker(base, lambda s: any(rows(d) > 0 for d in s.values()), 30, log)
        seen = health_by_worker(base, lambda s: any(d["ingest"]["role"] == "leader"
                                                    for d in s.values()), 30, log)
        leader = next(p for p, d in seen.items() if d["ingest"]["role"] == "leader")
        burst(150)  # the leader is reading these when it dies
        killed_at = time.monotonic()
        if fault == "kill-leader":
            os.kill(leader, signal.SIGKILL)
            burst(150)  # while the lead changes hands
        else:
            redis_server.kill()
            redis_server.wait()
            burst(150)  # while nobody may ingest
            time.sleep(5)
            redis_server = start_private_redis(redis_port, tmp_path)
        total = len(sent)
        final = health_by_worker(
            base, lambda s: any((p != leader or fault != "kill-leader")
                                and d["ingest"]["role"] == "leader"
                                and rows(d) >= total for p, d in s.items()), 90, log)
        new_leader = next(p for p, d in final.items() if rows(d) >= total
                          and (p != leader or fault != "kill-leader")
                          and d["ingest"]["role"] == "leader")
        print(f"\nmqtt {fault} (ack={ack}): {total} acknowledged by the broker, "
              f"{rows(final[new_leader])} in the city, {total - rows(final[new_leader])} lost; "
              f"all in {time.monotonic() - killed_at:.1f} s after the fault")
        assert rows(final[new_leader]) == total  # every acknowledged message, once
        rejected = next(s for s in final[new_leader]["sources"] if s["name"] == "devices")
        assert not rejected.get("rejected"), rejected
    finally:
        publisher.close()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        redis_server.kill()
        redis_server.wait()
        forget_session("127.0.0.1", 1883, source["client_id"])
