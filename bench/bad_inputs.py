"""The bad-input corpus as a table: for each case, rows in, loaded and rejected by reason.

Files (``tests/corpus/bad_files``) go through the csv adapter and the city store;
messages (``tests/corpus/bad_rows``) through a real MQTT broker (``--broker``,
default the local Mosquitto) and the MQTT adapter read as the app reads it, each
followed by one good message. A case is OK when rows in = loaded + rejected and
every good message after a bad one arrived::

    .venv/bin/python bench/bad_inputs.py [--broker 127.0.0.1:1883]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def files() -> list[tuple[str, int, int, Counter[str], bool]]:
    from tests.integration.test_bad_files import CASES, file_bytes, store_for

    out = []
    for name, case in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "devices.csv"
            path.write_bytes(file_bytes(case))
            data = store_for(path)
            data.refresh_source(data.config.sources[0])
            health = data.health["devices"]
            rows_in = len(file_bytes(case).splitlines()) - 1
            out.append((name, rows_in, health.rows_loaded, Counter(health.rejected),
                        health.last_error is None))
    return out


def messages(host: str, port: int) -> list[tuple[str, int, int, Counter[str], bool]]:
    from app import parse_config
    from data import AdapterContext, get_adapter_class
    from data.mqtt import forget_session
    from tests.integration.test_bad_rows import CASES, payload
    from tests.integration.test_mqtt import CITY, Publisher, device, device_table

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            topic = f"citybrain/bench/{uuid.uuid4().hex}"
            table = device_table([topic], host=host, port=port)
            source = parse_config({"city": CITY, "sources": [table]}, Path(tmp)).sources[0]
            adapter = get_adapter_class("mqtt")(source, AdapterContext(base_res=10))
            adapter.wait_ready(10)  # type: ignore[attr-defined]
            publisher = Publisher(host, port)
            sent = 0
            for message in case.get("messages", []):
                publisher.send(topic, json.dumps(message).encode())
                sent += 1
            if "payload" in case:
                publisher.send(topic, payload(case))
                sent += 1
            publisher.send(topic, device(f"good-after-{name}"))
            publisher.close()
            loaded, rejected, ids = 0, Counter[str](), set()
            batch = adapter.snapshot()
            deadline = time.monotonic() + 10
            while True:
                loaded += len(batch.frame)
                ids |= set(batch.frame["id"])
                rejected.update(batch.rejected)
                if loaded + sum(rejected.values()) >= sent + 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
                batch = adapter.updates(batch.cursor)
            adapter.close()
            forget_session(host, port, adapter.settings.client_id)  # type: ignore[attr-defined]
            out.append((name, sent, loaded - 1, rejected, f"good-after-{name}" in ids))
    return out


def table(title: str, rows: list[tuple[str, int, int, Counter[str], bool]]) -> None:
    print(f"\n{title}\n| case | rows in | loaded | rejected by reason | accounted | after |")
    print("|---|---|---|---|---|---|")
    for name, rows_in, loaded, rejected, after in rows:
        accounted = rows_in == loaded + sum(rejected.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "—"
        print(f"| {name} | {rows_in} | {loaded} | {reasons} | {'yes' if accounted else 'NO'} "
              f"| {'ok' if after else 'LOST'} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="127.0.0.1:1883")
    args = parser.parse_args(argv)
    host, _, port = args.broker.partition(":")
    table("Files (csv adapter → store); after = the source reads without error", files())
    table("MQTT messages (broker → adapter); after = the good message sent next arrived",
          messages(host, int(port or 1883)))


if __name__ == "__main__":
    main()
