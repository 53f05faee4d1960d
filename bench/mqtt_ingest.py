"""Sustained MQTT ingest: a publisher process → the local broker → :class:`data.mqtt.MqttAdapter`.

For each target rate a separate process publishes device messages (QoS 1 by default,
the adapter's default) on loopback for ``--seconds``; this process reads the adapter
the way the app does (``updates()`` every ``--poll`` seconds, each batch normalised
to H3). It reports, per rate, the messages the broker acknowledged, the rows that
came out of the adapter, how many were lost, and the rates achieved::

    .venv/bin/python bench/mqtt_ingest.py                         # 2k … 20k msg/s, 10 s each
    .venv/bin/python bench/mqtt_ingest.py --rates 10000 --seconds 10 --brokers private
    .venv/bin/python bench/mqtt_ingest.py --rates 5000 --seconds 3 --port 1884 --brokers system

A rate is sustained when nothing is lost or rejected, the publisher reached it, and
the adapter had read every message within two reads of the publisher finishing.
When the adapter falls behind, the broker queues messages for it (Mosquitto:
``max_queued_messages``, 1000 by default) and drops beyond that, which shows up as
``lost``. Each rate runs against the machine's broker as it is configured
(``system``) and against a private Mosquitto started on a free loopback port with a
deeper queue (``private``, ``--private-queue``), so a loss can be told apart as the
adapter's or the broker's setting. The final lines compare the highest sustained
rate with the target, ≥ 10k msg/s. This measures throughput; it is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET = 10_000
MOSQUITTO = "/usr/sbin/mosquitto"
CITY = {"name": "Bench City", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}


def publish(host: str, port: int, topic: str, rate: int, seconds: float, qos: int,
            go: Any, results: Any) -> None:
    """Publisher process: connect, wait for ``go``, publish at ``rate`` for ``seconds``."""
    import paho.mqtt.client as mqtt

    acked = 0

    def on_publish(client: Any, userdata: Any, mid: int, reason_code: Any,
                   properties: Any) -> None:
        nonlocal acked
        acked += 1

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"citybrain-bench-pub-{uuid.uuid4().hex}",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(0)  # unlimited: pace by rate, not by round trips
    client.on_publish = on_publish
    client.connect(host, port, keepalive=30)
    client.loop_start()
    go.wait()
    total = int(rate * seconds)
    sent = 0
    start = time.monotonic()
    while sent < total:
        due = min(total, int(rate * (time.monotonic() - start)) + 1)
        if sent >= due:
            time.sleep(0.0005)
            continue
        while sent < due:
            lat = 40.55 + (sent % 997) * 0.0003
            lon = -74.10 + (sent % 991) * 0.0003
            payload = (f'{{"id":"m{sent}","ts":{time.time():.3f},"kind":"bench",'
                       f'"position":{{"lat":{lat:.6f},"lon":{lon:.6f}}},'
                       f'"sensor":{{"value":{sent % 100}}}}}')
            client.publish(topic, payload, qos=qos)
            sent += 1
    publish_seconds = time.monotonic() - start
    deadline = time.monotonic() + 30
    while qos > 0 and acked < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    results.put({"sent": sent, "acked": acked if qos > 0 else sent,
                 "publish_seconds": publish_seconds})


def run_rate(host: str, port: int, rate: int, seconds: float, qos: int,
             poll: float) -> dict[str, Any]:
    from app import parse_config
    from data import AdapterContext
    from data.mqtt import MqttAdapter, forget_session

    run = uuid.uuid4().hex
    topic = f"citybrain-bench/{run}"
    client_id = f"citybrain-bench-{run}"
    table = {"name": "bench", "layer": "things", "role": "devices", "adapter": "mqtt",
             "host": host, "port": port, "topics": [topic], "client_id": client_id, "qos": qos,
             "buffer": max(200_000, rate * 5), "id": "id", "time": "ts", "lat": "position.lat",
             "lon": "position.lon", "category": "kind", "reading": "sensor.value"}
    source = parse_config({"city": CITY, "sources": [table]}, Path.cwd()).sources[0]

    context = mp.get_context("spawn")  # no fork of this process's threads
    go, results = context.Event(), context.Queue()
    publisher = context.Process(target=publish,
                                args=(host, port, topic, rate, seconds, qos, go, results))
    publisher.start()
    adapter = MqttAdapter(source, AdapterContext(base_res=10))
    try:
        if not adapter.wait_ready(10):
            raise SystemExit(f"cannot subscribe at {host}:{port}: {adapter.last_error}")
        rows = rejected = 0
        cursor = None
        started = time.monotonic()
        last_progress = started
        go.set()
        outcome: dict[str, Any] | None = None
        while True:
            time.sleep(poll)
            batch = adapter.snapshot() if cursor is None else adapter.updates(cursor)
            cursor = batch.cursor
            got = len(batch.frame) + sum(batch.rejected.values())
            rows += len(batch.frame)
            rejected += sum(batch.rejected.values())
            now = time.monotonic()
            if got:
                last_progress = now
            if outcome is None and not results.empty():
                outcome = results.get()
            if outcome is not None and (rows + rejected >= outcome["acked"]
                                        or now - last_progress > 3):
                break
            if outcome is None and not publisher.is_alive() and results.empty():
                raise SystemExit("the publisher process died")
        publisher.join(10)
    finally:
        adapter.close()
        forget_session(host, port, client_id)
    elapsed = last_progress - started
    return {"target": rate, "published": outcome["acked"],
            "publish_rate": outcome["sent"] / outcome["publish_seconds"],
            "rows": rows, "rejected": rejected, "lost": outcome["acked"] - rows,
            "received_rate": rows / elapsed if elapsed > 0 else 0.0,
            "drain": max(0.0, elapsed - outcome["publish_seconds"])}


@contextlib.contextmanager
def private_broker(queue: int) -> Iterator[int]:
    """A Mosquitto of our own on a free loopback port, with a deeper per-client queue.

    The machine's broker keeps Mosquitto's default ``max_queued_messages 1000``: at
    10k msg/s that is 0.1 s of stream, so any pause of the subscriber longer than
    that (a GC, a long normalise holding the GIL) drops messages at the broker.
    """
    if not shutil.which(MOSQUITTO):
        raise FileNotFoundError(f"{MOSQUITTO} not found (apt-get install mosquitto)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="citybrain-bench-mosquitto-") as folder:
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"max_queued_messages {queue}\n", encoding="utf-8")
        broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            else:
                raise TimeoutError("the private broker did not start")
            yield port
        finally:
            broker.terminate()
            broker.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sustained(r: dict[str, Any], poll: float) -> bool:
    """Nothing lost, the publisher hit the rate, and the adapter had read everything
    within a couple of reads of the publisher finishing (it kept up, not caught up)."""
    return (r["lost"] == 0 and r["rejected"] == 0 and r["publish_rate"] >= 0.98 * r["target"]
            and r["drain"] <= max(1.0, 2 * poll))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--rates", default="2000,5000,10000,20000",
                        help="comma-separated target rates, messages per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per rate")
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--poll", type=float, default=0.5,
                        help="seconds between the adapter reads (the app's ingest interval)")
    parser.add_argument("--brokers", default="system,private",
                        help="system (--host/--port, as configured) and/or private (a "
                             "Mosquitto started here with --private-queue)")
    parser.add_argument("--private-queue", type=int, default=100_000,
                        help="max_queued_messages of the private broker")
    parser.add_argument("--target", type=int, default=TARGET,
                        help="the rate to judge (messages/s)")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]

    header = (f"{'broker':<8} {'target/s':>9} {'published':>10} {'publish/s':>10} {'rows':>10} "
              f"{'rejected':>9} {'lost':>8} {'received/s':>11} {'drain s':>8} {'sustained':>9}")
    print(f"MQTT ingest, QoS {args.qos}, {args.seconds:g} s per rate, adapter read every "
          f"{args.poll:g} s; system = {args.host}:{args.port} (its own config), private = "
          f"Mosquitto on loopback with max_queued_messages {args.private_queue}")
    print(header)
    print("-" * len(header))
    verdicts = []
    for broker in brokers:
        if broker == "system":
            place: contextlib.AbstractContextManager[int] = contextlib.nullcontext(args.port)
            host = args.host
        elif broker == "private":
            place, host = private_broker(args.private_queue), "127.0.0.1"
        else:
            raise SystemExit(f"unknown broker {broker!r}; valid: system, private")
        try:
            with place as port:
                best = 0
                for rate in rates:
                    r = run_rate(host, port, rate, args.seconds, args.qos, args.poll)
                    ok = sustained(r, args.poll)
                    if ok:
                        best = max(best, rate)
                    print(f"{broker:<8} {r['target']:>9} {r['published']:>10} "
                          f"{r['publish_rate']:>10.0f} {r['rows']:>10} {r['rejected']:>9} "
                          f"{r['lost']:>8} {r['received_rate']:>11.0f} {r['drain']:>8.1f} "
                          f"{'yes' if ok else 'no':>9}", flush=True)
        except FileNotFoundError as exc:
            print(f"{broker:<8} skipped: {exc}")
            continue
        verdicts.append((broker, best))
    print()
    for broker, best in verdicts:
        met = best >= args.target
        print(f"TARGET MQTT sustained with 0 lost ({broker} broker): highest sustained rate "
              f"measured {best:,} msg/s vs target ≥ {args.target:,} msg/s — "
              f"{'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
