"""Contract case for the MQTT adapter: the sample published to the real local Mosquitto.

Each row is one JSON message (QoS 1) on a topic of its own run, published once the
adapter's subscription is acknowledged; the contract test then collects the rows
through ``updates()``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.contract.cases_files import make_adapter
from tests.contract.sample import all_rows, source_table


def mqtt_case(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    import paho.mqtt.client as mqtt

    from data.mqtt import forget_session

    host, port = request.getfixturevalue("mqtt_broker")
    run = uuid.uuid4().hex
    topic = f"citybrain-test/contract/{run}"
    # A client id of its own: runs in parallel must not take over each other's session.
    client_id = f"citybrain-contract-{run}"
    adapter = make_adapter(tmp_path, source_table("mqtt", topics=[topic], host=host, port=port,
                                                  client_id=client_id))
    # Runs after the test closed the adapter: the broker forgets the session at once.
    request.addfinalizer(lambda: forget_session(host, port, client_id))
    if not adapter.wait_ready(10):
        adapter.close()
        raise RuntimeError(f"MQTT subscription not acknowledged: {adapter.last_error}")

    publisher = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                            client_id=f"citybrain-contract-pub-{run}")
    publisher.connect(host, port, keepalive=10)
    publisher.loop_start()
    try:
        for row in all_rows():
            info = publisher.publish(topic, json.dumps(row), qos=1)
            info.wait_for_publish(timeout=10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    return adapter


CASES = {"mqtt": mqtt_case}
