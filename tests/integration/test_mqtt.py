"""The MQTT adapter against real Mosquitto brokers, with paho publishing real messages.

Most tests use the shared broker on 127.0.0.1:1883, each on its own topics and client
ids. Tests that stop a broker, or need a password, start a private ``mosquitto`` on a
free port as a subprocess and always terminate it in teardown.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.city import ConfigError
from data import AdapterContext, SourceError, get_adapter_class
from data.mqtt import MqttAdapter, forget_session
from tests.conftest import free_port, port_open, require

pytestmark = pytest.mark.service

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
CITY = {"name": "Test City", "center": {"lat": 40.7, "lon": -73.9}, "timezone": "UTC"}


def device_table(topics: list[str], **options: Any) -> dict[str, Any]:
    """A things/devices source reading nested device JSON from ``topics``."""
    return {"name": "devices", "layer": "things", "role": "devices", "adapter": "mqtt",
            "topics": topics, "id": "id", "time": "ts", "lat": "position.lat",
            "lon": "position.lon", "reading": "sensor.value", "category": "kind",
            "client_id": f"citybrain-test-{uuid.uuid4().hex}", **options}


def device(ident: str | None, lat: float | None = 40.75, lon: float | None = -73.98,
           ts: str = "2024-03-01T12:00:00Z", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"ts": ts, "kind": "air-quality", "sensor": {"value": 21.5}}
    if ident is not None:
        message["id"] = ident
    if lat is not None or lon is not None:
        message["position"] = {"lat": lat, "lon": lon}
    return {**message, **extra}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class Publisher:
    """A paho client that publishes and waits for the broker's acknowledgement."""

    def __init__(self, host: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"citybrain-test-pub-{uuid.uuid4().hex}")
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def send(self, topic: str, payload: Any, qos: int = 1) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(topic, data, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"publish to {topic} was not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """Reads an adapter like the app does: one snapshot, then updates from its cursor."""

    def __init__(self, adapter: MqttAdapter) -> None:
        self.adapter = adapter
        self.frames: list[pd.DataFrame] = []
        self.rejected: Counter[str] = Counter()
        self.cursor: Any = None
        self.started = False

    def poll(self) -> int:
        batch = self.adapter.updates(self.cursor) if self.started else self.adapter.snapshot()
        self.started = True
        self.frames.append(batch.frame)
        self.rejected.update(batch.rejected)
        self.cursor = batch.cursor
        return self.rows

    @property
    def rows(self) -> int:
        return sum(len(f) for f in self.frames)

    @property
    def frame(self) -> pd.DataFrame:
        return pd.concat(self.frames, ignore_index=True)

    def until(self, rows: int, rejected: int = 0, timeout: float = 10.0) -> pd.DataFrame:
        wait_until(lambda: self.poll() >= rows and sum(self.rejected.values()) >= rejected,
                   timeout, f"{rows} rows and {rejected} rejections")
        return self.frame


@pytest.fixture()
def make_adapter(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], MqttAdapter]]:
    """Builds adapters from source tables; closes them and forgets their sessions after."""
    made: list[MqttAdapter] = []

    def make(table: dict[str, Any]) -> MqttAdapter:
        config = parse_config({"city": CITY, "sources": [table]}, tmp_path)
        source = config.sources[0]
        adapter = get_adapter_class(source.adapter)(source, AdapterContext(base_res=10))
        assert isinstance(adapter, MqttAdapter)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()
        settings = adapter.settings
        if port_open(settings.host, settings.port):
            forget_session(settings.host, settings.port, settings.client_id)


@pytest.fixture()
def publisher(mqtt_broker: tuple[str, int]) -> Iterator[Publisher]:
    pub = Publisher(*mqtt_broker)
    yield pub
    pub.close()


@pytest.fixture()
def base_topic() -> str:
    return f"citybrain-test/{uuid.uuid4().hex}"


class PrivateBroker:
    """A throw-away ``mosquitto`` on its own port, run as a child process (not a daemon)."""

    def __init__(self, directory: Path, port: int, extra: str = "") -> None:
        self.port = port
        self.directory = directory
        self.config = directory / f"mosquitto-{port}.conf"
        # ``user``: run as whoever runs the tests, so it can read files in tmp_path
        # (as root, mosquitto would otherwise switch to the ``mosquitto`` user).
        user = pwd.getpwuid(os.getuid()).pw_name
        self.config.write_text(f"listener {port} 127.0.0.1\npersistence false\nuser {user}\n"
                               f"{extra}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.directory / f"mosquitto-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the child holds its own copy
        process = self.process
        wait_until(lambda: port_open("127.0.0.1", self.port) or process.poll() is not None,
                   10, f"mosquitto on port {self.port}")
        assert process.poll() is None, (self.directory / f"mosquitto-{self.port}.log").read_text()

    def kill(self) -> None:
        """Stop abruptly, as a crash or a pulled cable would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture()
def private_broker(tmp_path: Path) -> Iterator[Callable[..., PrivateBroker]]:
    require(MOSQUITTO.exists(), f"mosquitto not found at {MOSQUITTO}")
    started: list[PrivateBroker] = []

    def start(extra: str = "allow_anonymous true\n") -> PrivateBroker:
        broker = PrivateBroker(tmp_path, free_port(), extra)
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        broker.stop()


# ---------------------------------------------------------------------- tests
def test_nested_fields_arrays_wildcards_and_topic_field(
        mqtt_broker: tuple[str, int], make_adapter: Any, publisher: Publisher,
        base_topic: str) -> None:
    host, port = mqtt_broker
    adapter = make_adapter(device_table([f"{base_topic}/telemetry/+", f"{base_topic}/alerts/#"],
                                        host=host, port=port, topic_field="id"))
    assert adapter.wait_ready(10), adapter.last_error
    assert adapter.connected and adapter.last_error is None
    # Not matched by either filter: must never arrive.
    publisher.send(f"{base_topic}/other/dev-x", device("dev-x"))
    publisher.send(f"{base_topic}/telemetry/gw-1/deep", device("dev-y"))
    # The id comes from the topic when the message has none.
    publisher.send(f"{base_topic}/telemetry/dev-1", device(None, lat=40.7128, lon=-74.006))
    publisher.send(f"{base_topic}/telemetry/gw-1", [device("dev-2", lat=40.73),
                                                   device("dev-3", lat=40.74, kind="noise")])
    publisher.send(f"{base_topic}/alerts/zone-1/dev-4", device(None, lat=40.76))

    frame = Collector(adapter).until(rows=4).set_index("id")
    assert sorted(frame.index) == ["dev-1", "dev-2", "dev-3", "dev-4"]
    assert frame.loc["dev-1", "lat"] == pytest.approx(40.7128)
    assert frame.loc["dev-1", "lon"] == pytest.approx(-74.006)
    assert frame.loc["dev-1", "cell"] == h3.str_to_int(h3.latlng_to_cell(40.7128, -74.006, 10))
    assert frame.loc["dev-3", "category"] == "noise"
    assert frame.loc["dev-2", "category"] == "air-quality"
    assert (frame["reading"] == 21.5).all()
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert (frame["time"] == pd.Timestamp("2024-03-01T12:00:00Z")).all()
    assert frame["cell"].dtype == np.int64
    assert (frame["source"] == "devices").all()


def test_bad_messages_are_counted_by_reason_and_good_ones_kept(
        mqtt_broker: tuple[str, int], make_adapter: Any, publisher: Publisher,
        base_topic: str) -> None:
    host, port = mqtt_broker
    adapter = make_adapter(device_table([f"{base_topic}/#"], host=host, port=port,
                                        max_payload=400))
    assert adapter.wait_ready(10), adapter.last_error
    topic = f"{base_topic}/feed"
    for payload in [
        device("good-1"),
        b"{not json",
        "caf\xe9".encode("latin-1"),                      # wrong encoding
        device("big", note="x" * 1000),                   # oversized payload
        42,                                               # not a JSON object
        ["stray text", device("good-2")],                 # one bad item, one good row
        device("no-position", lat=None, lon=None),        # missing coordinates
        device("null-island", lat=0.0, lon=0.0),          # coordinates at (0, 0)
        device("too-far-north", lat=95.0),                # coordinates out of range
        device("bad-time", ts="next tuesday-ish"),        # unparseable time
        device("good-3"),
    ]:
        publisher.send(topic, payload)

    collector = Collector(adapter)
    frame = collector.until(rows=3, rejected=9)
    assert sorted(frame["id"]) == ["good-1", "good-2", "good-3"]
    assert dict(collector.rejected) == {
        "not JSON": 1, "wrong encoding": 1, "oversized payload": 1, "not a JSON object": 2,
        "missing coordinates": 1, "coordinates at (0, 0)": 1, "coordinates out of range": 1,
        "unparseable time": 1,
    }
    # Delivered rows and counted rejections are not reported twice.
    again = adapter.updates(collector.cursor)
    assert len(again.frame) == 0 and not again.rejected


def test_buffer_overflow_is_counted_not_silent(
        mqtt_broker: tuple[str, int], make_adapter: Any, publisher: Publisher,
        base_topic: str) -> None:
    host, port = mqtt_broker
    adapter = make_adapter(device_table([base_topic], host=host, port=port, buffer=5))
    assert adapter.wait_ready(10), adapter.last_error
    for i in range(8):
        publisher.send(base_topic, device(f"dev-{i}"))
    # Snapshots hand nothing over, so the buffer fills up: the newest five stay.
    wait_until(lambda: adapter.snapshot().rejected["buffer overflow"] == 3, 10, "3 overflows")
    batch = adapter.snapshot()
    assert sorted(batch.frame["id"]) == [f"dev-{i}" for i in range(3, 8)]
    assert dict(batch.rejected) == {"buffer overflow": 3}
    assert batch.replace


def test_persistent_session_delivers_what_was_published_while_away(
        mqtt_broker: tuple[str, int], make_adapter: Any, publisher: Publisher,
        base_topic: str) -> None:
    host, port = mqtt_broker
    table = device_table([f"{base_topic}/+"], host=host, port=port, topic_field="id")
    first = make_adapter(table)
    assert first.wait_ready(10), first.last_error
    for i in range(3):
        publisher.send(f"{base_topic}/before-{i}", device(None))
    collector = Collector(first)
    assert sorted(collector.until(rows=3)["id"]) == [f"before-{i}" for i in range(3)]
    collector.poll()  # the next read says the rows are held: now they are acknowledged
    first.close()
    assert not first.connected

    # Acknowledged by the broker (QoS 1) while nobody is connected: queued in the session.
    away = [f"away-{i:02d}" for i in range(25)]
    for ident in away:
        publisher.send(f"{base_topic}/{ident}", device(None))

    second = make_adapter(table)  # the same client id: the broker resumes the session
    assert second.settings.client_id == first.settings.client_id
    frame = Collector(second).until(rows=len(away))
    assert sorted(frame["id"]) == away  # zero lost, nothing delivered twice


def test_a_message_is_acknowledged_only_once_its_rows_are_held(
        mqtt_broker: tuple[str, int], make_adapter: Any, publisher: Publisher,
        base_topic: str) -> None:
    """Rows read but not confirmed by a later read (the reader crashed before keeping
    them) come back to the next connection of the client id; confirmed ones do not."""
    host, port = mqtt_broker
    table = device_table([f"{base_topic}/+"], host=host, port=port, topic_field="id")
    first = make_adapter(table)
    assert first.wait_ready(10), first.last_error
    for i in range(4):
        publisher.send(f"{base_topic}/held-{i}", device(None))
    collector = Collector(first)
    collector.until(rows=4)
    collector.poll()  # held: acknowledged
    assert first.acked == 4
    for i in range(5):
        publisher.send(f"{base_topic}/lost-{i}", device(None))
    wait_until(lambda: first.buffered == 5, 10, "5 messages buffered")
    assert collector.poll() == 9  # read, but the reader dies before a next read confirms them
    assert first.acked == 4
    first.close()

    second = make_adapter(table)
    frame = Collector(second).until(rows=5)
    assert sorted(frame["id"]) == [f"lost-{i}" for i in range(5)]  # redelivered, only those


def test_password_comes_from_the_environment(
        private_broker: Any, make_adapter: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    require(MOSQUITTO_PASSWD.exists(), f"mosquitto_passwd not found at {MOSQUITTO_PASSWD}")
    passwords = tmp_path / "passwords"
    subprocess.run([str(MOSQUITTO_PASSWD), "-b", "-c", str(passwords), "city", "s3cret"],
                   check=True, capture_output=True)
    passwords.chmod(0o600)
    broker = private_broker(f"allow_anonymous false\npassword_file {passwords}\n")
    table = device_table(["things/+"], host="127.0.0.1", port=broker.port, username="city",
                         password_env="CITYBRAIN_TEST_MQTT_PASSWORD", topic_field="id")

    monkeypatch.delenv("CITYBRAIN_TEST_MQTT_PASSWORD", raising=False)
    with pytest.raises(SourceError, match="CITYBRAIN_TEST_MQTT_PASSWORD"):
        make_adapter(table)

    monkeypatch.setenv("CITYBRAIN_TEST_MQTT_PASSWORD", "wrong")
    refused = make_adapter(table)
    with pytest.raises(SourceError, match="Not authorized"):
        refused.snapshot()
    refused.close()

    monkeypatch.setenv("CITYBRAIN_TEST_MQTT_PASSWORD", "s3cret")
    adapter = make_adapter(table)
    assert adapter.wait_ready(10), adapter.last_error
    import paho.mqtt.client as mqtt

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set("city", "s3cret")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish("things/kiosk-1", json.dumps(device(None)), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert list(Collector(adapter).until(rows=1)["id"]) == ["kiosk-1"]


def test_invalid_options_are_refused(make_adapter: Any) -> None:
    with pytest.raises(ConfigError, match="'#' must be a whole level and the last one"):
        make_adapter(device_table(["city/#/status"]))
    with pytest.raises(ConfigError, match="'\\+' must be a whole level"):
        make_adapter(device_table(["city/dev+/status"]))
    with pytest.raises(ConfigError, match="qos"):
        make_adapter(device_table(["city/+"], qos=3))
    with pytest.raises(ConfigError, match="valid fields are"):
        make_adapter(device_table(["city/+"], topic_field="serial"))
    with pytest.raises(ConfigError, match="unknown key"):
        make_adapter(device_table(["city/+"], password="in-the-file"))


def test_unreachable_broker_is_a_source_error(make_adapter: Any) -> None:
    port = free_port()  # nothing listens here
    adapter = make_adapter(device_table(["city/+"], host="127.0.0.1", port=port))
    with pytest.raises(SourceError, match=f"MQTT broker 127.0.0.1:{port} unreachable"):
        adapter.snapshot()
    assert not adapter.connected
    assert adapter.last_error is not None


def test_broker_outage_marks_the_source_stale_and_recovers(
        private_broker: Any, tmp_path: Path) -> None:
    from store.city import CityData

    broker = private_broker()
    # Current times: the app keeps a streaming source's rows in a window up to now.
    now = pd.Timestamp.now(tz="UTC").isoformat()
    table = device_table(["city/devices/+"], host="127.0.0.1", port=broker.port,
                         topic_field="id")
    config = parse_config({"city": CITY, "sources": [table]}, tmp_path)
    source = config.sources[0]
    data = CityData.load(config)
    adapter = data.adapter(source)
    assert isinstance(adapter, MqttAdapter)
    health = data.health[source.name]
    try:
        assert adapter.wait_ready(10), adapter.last_error
        publisher = Publisher("127.0.0.1", broker.port)
        for i in range(3):
            publisher.send(f"city/devices/before-{i}", device(None, ts=now))
        publisher.close()

        def rows() -> int:
            data.refresh_source(source, incremental=True)
            return len(data.frame("things", "devices"))

        wait_until(lambda: rows() == 3, 10, "3 rows before the outage")
        assert health.last_error is None and not data.layer_stale("things")

        broker.kill()
        wait_until(lambda: not adapter.connected, 10, "the adapter to notice the outage")
        with pytest.raises(SourceError, match=f"127.0.0.1:{broker.port} unreachable"):
            adapter.updates(None)
        data.refresh_source(source, incremental=True)
        assert health.last_error is not None
        assert f"MQTT broker 127.0.0.1:{broker.port} unreachable" in health.last_error
        assert data.layer_stale("things")
        assert health.as_dict()["stale"] is True
        assert len(data.frame("things", "devices")) == 3  # the layer keeps its rows

        # Reconnect attempts fail while the broker is down, and say why.
        wait_until(lambda: "refused" in (adapter.last_error or "").lower(), 10,
                   "a failed reconnect attempt")
        with pytest.raises(SourceError, match="unreachable: Connection refused"):
            adapter.snapshot()

        broker.start()  # same port: paho reconnects by itself, and re-subscribes
        assert adapter.wait_ready(20), adapter.last_error
        publisher = Publisher("127.0.0.1", broker.port)
        for i in range(2):
            publisher.send(f"city/devices/after-{i}", device(None, ts=now))
        publisher.close()
        wait_until(lambda: rows() == 5, 10, "2 more rows after the broker came back")
        assert health.last_error is None and not data.layer_stale("things")
        assert sorted(data.frame("things", "devices")["id"]) == [
            "after-0", "after-1", "before-0", "before-1", "before-2"]
    finally:
        adapter.close()
