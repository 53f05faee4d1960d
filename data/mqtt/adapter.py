"""The MQTT adapter: a paho-mqtt 2.x client per source, messages buffered between reads.

See :mod:`data.mqtt` for the options and the delivery guarantees.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from config.city import ConfigError
from data.base import (
    DEAD_LETTERS_PER_BATCH,
    AdapterBase,
    AdapterContext,
    Batch,
    SourceError,
    empty_frame,
    normalise,
)
from data.mqtt.settings import MqttSettings, default_client_id
from data.validate import DeadLetter, dead_letter

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from config.city import Source

log = logging.getLogger(__name__)

#: Raw column that carries the topic's last segment when the field has no mapping.
TOPIC_COLUMN = "_mqtt_topic"

#: How long the first read waits for the first connection attempt to settle.
FIRST_CONNECT_WAIT = 8.0
#: Cumulative rejection totals remembered per handed-out cursor (see ``_totals_at``).
MAX_REMEMBERED_CURSORS = 64


def lookup(obj: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` in a JSON object: a literal key first, then a dotted path.

    >>> lookup({"position": {"lat": 40.7}}, "position.lat")
    40.7
    """
    if path in obj:
        return obj[path]
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def forget_session(host: str, port: int, client_id: str, timeout: float = 5.0) -> None:
    """Drop the broker's persistent session for ``client_id`` (e.g. after removing a source).

    Until its session expires, the broker keeps queueing QoS 1 messages for a client
    id that has gone away; connecting once with a clean start and a zero session
    expiry discards that session at once.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id, protocol=mqtt.MQTTv5)
    answered = threading.Event()
    client.on_connect = lambda *args: answered.set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    try:
        client.connect(host, port, keepalive=10, clean_start=True, properties=properties)
    except OSError as exc:
        raise SourceError(f"MQTT broker {host}:{port} unreachable: {_describe(exc)}") from exc
    client.loop_start()
    try:
        if not answered.wait(timeout):
            raise SourceError(f"MQTT broker {host}:{port} did not answer within {timeout:g} s")
    finally:
        client.disconnect()
        client.loop_stop()


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """Drop paho's error line from its network thread racing a clean ``disconnect()``."""
    return not str(record.msg).startswith("Client is not connected")


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "connection failed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class MqttAdapter(AdapterBase):
    """Rows from JSON messages on MQTT topics; see the module docs for the options.

    ``snapshot()`` returns everything received and not yet handed over; its cursor
    is the sequence number of the last message included. ``updates(since)`` first
    drops what was delivered up to ``since`` (the caller holds it), then returns
    what arrived after. While the broker cannot be reached, both raise
    :class:`SourceError`; once paho has reconnected they work again by themselves.
    """

    name = "mqtt"
    options: ClassVar[frozenset[str]] = frozenset({
        "host", "port", "topics", "client_id", "qos", "username", "password_env", "tls",
        "max_payload", "buffer", "keepalive", "topic_field", "session_expiry", "ack",
    })
    required_options: ClassVar[frozenset[str]] = frozenset({"topics"})
    streaming: ClassVar[bool] = True
    #: A cursor counts the messages this connection received: meaningless to another.
    process_local_cursor: ClassVar[bool] = True

    def __init__(self, source: Source, context: AdapterContext) -> None:
        super().__init__(source, context)
        if self.role.geometry != "point":
            raise ConfigError(f"[[sources]] {source.name!r}: the mqtt adapter serves point roles; "
                              f"{source.layer}.{source.role} is an area role")
        self._read_options(self.source)
        # State shared with paho's network thread, all guarded by one lock.
        self._lock = threading.Lock()
        self._records: deque[tuple[int, dict[str, Any]]] = deque()
        self._seq = 0  # one number per message event (a record or a rejection)
        self._delivered = 0  # sequence number up to which the caller holds the rows
        self._handed_out = 0  # the last cursor returned by a read
        self._rejected_total: Counter[str] = Counter()
        # Messages refused before they became rows, kept until the next read hands them out.
        self._dead: deque[DeadLetter] = deque(maxlen=DEAD_LETTERS_PER_BATCH)
        self._handed_dead: list[DeadLetter] = []
        # Rejection totals as they were when each cursor was handed out, so that a
        # read reports exactly the rejections that happened after its ``since``.
        self._totals_at: dict[int, Counter[str]] = {0: Counter()}
        self._connected = False
        self._last_error: str | None = None
        self._subscribe_error: str | None = None
        self._subscribe_mid: int | None = None
        # QoS 1/2 messages not yet acknowledged to the broker: (last sequence number
        # of what the message gave, mid, qos), in arrival order. Acknowledged once a
        # read's ``since`` covers that number: the caller holds (has made durable) it.
        self._unacked: deque[tuple[int, int, int]] = deque()
        self.acked = 0  # messages acknowledged to the broker (QoS > 0)
        self._closed = False
        self._settled = threading.Event()  # the first connection attempt has an outcome
        self._ready = threading.Event()  # connected and every subscription acknowledged
        self._client = self._connect()

    # ------------------------------------------------------------------ options
    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Validate the options when the config loads, not at the first read."""
        MqttSettings.parse(where, options)

    def _read_options(self, source: Source) -> None:
        where = f"[[sources]] {source.name!r}"
        self.settings = MqttSettings.parse(where, source.options, default_client_id(source.name))
        topic_field = self.settings.topic_field
        if topic_field is not None and topic_field not in self.role.field_names():
            raise ConfigError(f"{where}.topic_field: unknown field {topic_field!r}; valid fields "
                              f"are: {', '.join(self.role.field_names())}")
        # The normaliser reads the topic through a field mapping like any other column.
        self.topic_column: str | None = None
        self._mapped = source
        if topic_field is not None:
            self.topic_column = source.fields.get(topic_field, TOPIC_COLUMN)
            self._mapped = replace(source, fields={**source.fields, topic_field: self.topic_column})
        # Only the columns the source uses are kept from each message.
        columns = dict.fromkeys([*self._mapped.fields.values(), *source.where])
        self.columns: tuple[str, ...] = tuple(columns)

    # --------------------------------------------------------------- connection
    def _connect(self) -> mqtt.Client:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
        except ImportError as exc:  # an optional dependency: say how to get it
            raise SourceError("the mqtt adapter needs paho-mqtt: pip install 'citybrain[mqtt]'") \
                from exc

        settings = self.settings
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=settings.client_id, protocol=mqtt.MQTTv5,
                             manual_ack=settings.ack == "durable")
        # An exception in a callback must not end the network thread (and reconnects).
        client.suppress_exceptions = True
        paho_log = logging.getLogger(f"{__name__}.paho")
        paho_log.addFilter(_quiet_shutdown)  # same object every time: added once
        client.enable_logger(paho_log)
        if settings.username is not None or settings.password_env is not None:
            password = None
            if settings.password_env is not None:
                password = os.environ.get(settings.password_env)
                if password is None:
                    raise SourceError(f"environment variable {settings.password_env} "
                                      "(password_env) is not set")
            client.username_pw_set(settings.username, password)
        if settings.tls:
            try:
                client.tls_set()  # the system's CA bundle, certificate and host name checked
            except (OSError, ValueError) as exc:
                raise SourceError(f"MQTT TLS setup failed: {_describe(exc)}") from exc
        client.reconnect_delay_set(min_delay=0.5, max_delay=10)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = settings.session_expiry
        # Messages are acknowledged only once held, a read later: let the broker send
        # as many unacknowledged as MQTT allows (Mosquitto would stop at 20 otherwise);
        # past ``buffer`` rows the oldest are dropped and counted, as always.
        properties.ReceiveMaximum = 65535
        # Never a clean start: the broker keeps the subscriptions and queued QoS 1
        # messages of this client id while it is away.
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive,
                             clean_start=False, properties=properties)
        client.loop_start()  # connects, and reconnects after any loss, in its own thread
        return client

    @property
    def connected(self) -> bool:
        """True while the broker connection is up (CONNACK received, not lost since)."""
        return self._connected

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed or the connection was lost; None when fine."""
        return self._last_error

    @property
    def buffered(self) -> int:
        """Rows received and not yet confirmed held by a read's ``since``."""
        with self._lock:
            return len(self._records)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until connected and every subscription is acknowledged; False on timeout."""
        return self._ready.wait(timeout)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            with self._lock:
                self._connected = False
                self._last_error = f"connection refused: {reason_code}"
            self._settled.set()
            return
        with self._lock:
            self._connected = True
            self._last_error = None
        # Subscribing on every connect restores the subscriptions after a reconnect
        # even when the broker lost the session (a restart without persistence).
        qos = self.settings.qos
        result, mid = client.subscribe([(topic, qos) for topic in self.settings.topics])
        with self._lock:
            self._subscribe_mid = mid
            if result != 0:
                self._subscribe_error = f"subscribe failed: error {result}"
        self._settled.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this from inside its ``except OSError`` block: the exception
        # being handled is the reason the attempt failed.
        reason = _describe(sys.exception())
        with self._lock:
            self._connected = False
            self._last_error = reason
        self._ready.clear()
        self._settled.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._ready.clear()
        with self._lock:
            # A refused CONNACK also ends in a disconnect: keep the refusal as the reason.
            if not self._closed and (self._connected or self._last_error is None):
                self._last_error = f"connection lost ({reason_code})"
            self._connected = False

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        refused = [f"{topic} ({code})"
                   for topic, code in zip(self.settings.topics, reason_codes, strict=False)
                   if code.is_failure]
        with self._lock:
            if mid != self._subscribe_mid:
                return
            self._subscribe_error = "subscription refused: " + ", ".join(refused) if refused \
                else None
        if not refused:
            self._ready.set()

    # ----------------------------------------------------------------- messages
    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            before = self._seq
        try:
            self._take(message.topic, message.payload)
        except Exception:  # a bug here must cost one message, counted, not the thread
            log.exception("source %s: cannot handle a message on %s", self.source.name,
                          message.topic)
            self._count_rejected("unreadable message", raw=message.payload)
        if self.settings.ack != "durable" or message.qos == 0:
            return
        with self._lock:
            # Only this (network) thread adds to the sequence: what it added is this message.
            last = self._seq
            if last > before and last > self._delivered:
                self._unacked.append((last, message.mid, message.qos))
                return
        self._ack([(message.mid, message.qos)], client)  # it gave nothing to hold

    def _ack(self, messages: list[tuple[int, int]], client: mqtt.Client | None = None) -> None:
        """Acknowledge messages to the broker (PUBACK/PUBREC), from any thread."""
        client = client or self._client
        for mid, qos in messages:
            client.ack(mid, qos)
        with self._lock:
            self.acked += len(messages)

    def _take(self, topic: str, payload: bytes | bytearray) -> None:
        if len(payload) > self.settings.max_payload:
            self._count_rejected("oversized payload", raw=bytes(payload[:200]))
            return
        try:
            # JSON is UTF-8 (RFC 8259); Latin-1 bytes are refused, never turned into U+FFFD.
            document = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            self._count_rejected("wrong encoding", raw=bytes(payload))
            return
        except (ValueError, RecursionError):
            self._count_rejected("not JSON", raw=bytes(payload))
            return
        items = document if isinstance(document, list) else [document]
        objects = [item for item in items if isinstance(item, dict)]
        if len(objects) < len(items):
            self._count_rejected("not a JSON object", len(items) - len(objects),
                                 raw=[item for item in items if not isinstance(item, dict)][-1])
        if objects:
            segment = topic.rsplit("/", 1)[-1]
            self._append([self._flatten(obj, segment) for obj in objects])

    def _flatten(self, obj: Mapping[str, Any], topic_segment: str) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for column in self.columns:
            value = lookup(obj, column)
            if isinstance(value, dict | list):
                value = json.dumps(value, ensure_ascii=False)
            record[column] = value
        if self.topic_column is not None and record.get(self.topic_column) in (None, ""):
            record[self.topic_column] = topic_segment
        return record

    def _count_rejected(self, reason: str, n: int = 1, raw: Any = None) -> None:
        with self._lock:
            self._seq += 1
            self._rejected_total[reason] += n
            self._dead.append(dead_letter(reason, raw))

    def _append(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            for record in records:
                self._seq += 1
                self._records.append((self._seq, record))
            overflow = len(self._records) - self.settings.buffer
            if overflow > 0:
                # Keep the newest rows: a live map wants the latest state.
                for _ in range(overflow):
                    self._records.popleft()
                self._rejected_total["buffer overflow"] += overflow

    # -------------------------------------------------------------------- reads
    def _check_connection(self) -> None:
        if self._closed:
            raise SourceError(f"MQTT source {self.source.name!r} is closed")
        where = f"MQTT broker {self.settings.host}:{self.settings.port}"
        if not self._settled.wait(FIRST_CONNECT_WAIT):
            raise SourceError(f"{where} unreachable: no answer within {FIRST_CONNECT_WAIT:g} s")
        with self._lock:
            connected, error, subscribe_error = (self._connected, self._last_error,
                                                 self._subscribe_error)
        if not connected and error is not None:
            raise SourceError(f"{where} unreachable: {error}")
        if subscribe_error is not None:
            raise SourceError(f"{where}: {subscribe_error}")

    def _take_since(self, since: int | None) -> tuple[list[dict[str, Any]], Counter[str], int]:
        """Drop rows delivered up to ``since``; return the rest, their rejections, a cursor."""
        held: list[tuple[int, int]] = []
        with self._lock:
            base = self._totals_at.get(self._delivered if since is None else since)
            if base is None:  # a cursor this adapter did not hand out (or long forgotten)
                base = self._totals_at.get(self._delivered, Counter())
            if since is not None and since > self._delivered:
                since = min(since, self._seq)
                while self._records and self._records[0][0] <= since:
                    self._records.popleft()
                while self._unacked and self._unacked[0][0] <= since:
                    _, mid, qos = self._unacked.popleft()
                    held.append((mid, qos))
                self._delivered = since
                self._totals_at = {k: v for k, v in self._totals_at.items() if k >= since}
            records = [record for _, record in self._records]
            rejected = self._rejected_total - base
            self._handed_dead = list(self._dead)
            self._dead.clear()
            cursor = self._seq
            self._handed_out = cursor
            self._totals_at.setdefault(self._delivered, base)
            self._totals_at[cursor] = self._rejected_total.copy()
            if len(self._totals_at) > MAX_REMEMBERED_CURSORS:
                oldest = sorted(k for k in self._totals_at if k != self._delivered)
                for key in oldest[: len(self._totals_at) - MAX_REMEMBERED_CURSORS]:
                    del self._totals_at[key]
        if since is not None and held:
            self._ack(held)
        return records, rejected, cursor

    def _batch(self, records: list[dict[str, Any]], rejected: Counter[str], cursor: int,
               replace: bool) -> Batch:
        batch = self._normalise_records(records) if records else Batch(frame=empty_frame(self.role))
        batch.rejected.update(rejected)
        batch.dead_letters[:0] = self._handed_dead
        self._handed_dead = []
        batch.replace = replace
        batch.cursor = cursor
        return batch

    def _normalise_records(self, records: list[dict[str, Any]]) -> Batch:
        """Normalise the buffered rows; never raises, so the cursor always moves on.

        Should the batch fail as a whole (a bug, or a value no check foresaw), each row
        is normalised alone and the ones that still fail are dead letters: one bad
        message can neither stop the source nor take good rows down with it.
        """
        raw = pd.DataFrame.from_records(records, columns=list(self.columns))
        try:
            return normalise(raw, self._mapped, self.role, self.context)
        except SourceError:
            raise
        except Exception:
            log.exception("source %s: a batch failed to normalise; retrying row by row",
                          self.source.name)
        frames, merged = [], Batch(frame=empty_frame(self.role))
        for i, record in enumerate(records):
            try:
                one = normalise(raw.iloc[[i]], self._mapped, self.role, self.context)
            except Exception as exc:
                reason = f"unreadable row ({type(exc).__name__})"
                merged.rejected[reason] += 1
                merged.dead_letters.append(dead_letter(reason, record))
                continue
            frames.append(one.frame)
            merged.rejected.update(one.rejected)
            merged.dead_letters.extend(one.dead_letters)
        if frames:
            merged.frame = pd.concat(frames, ignore_index=True).drop_duplicates(
                "id", keep="last", ignore_index=True)
        return merged

    def snapshot(self) -> Batch:
        """Every row received and not yet delivered (all of them, until ``updates`` is used).

        ``replace`` is True while nothing has been acknowledged through ``updates``;
        after that the adapter no longer holds the whole state (the broker keeps no
        history), so a later snapshot is returned as rows to append.
        """
        self._check_connection()
        records, rejected, cursor = self._take_since(None)
        return self._batch(records, rejected, cursor, replace=self._delivered == 0)

    def updates(self, since: Any) -> Batch:
        """Rows that arrived after cursor ``since``; rows up to ``since`` are forgotten."""
        self._check_connection()
        cursor = since if isinstance(since, int) and not isinstance(since, bool) else None
        records, rejected, new_cursor = self._take_since(cursor)
        return self._batch(records, rejected, new_cursor, replace=False)

    def close(self) -> None:
        """Disconnect and stop the network thread; rows never read are counted in the log."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            unread = sum(1 for seq, _ in self._records if seq > self._handed_out)
        if unread:
            log.warning("source %s: closed with %d row(s) never read", self.source.name, unread)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._ready.clear()


__all__ = ["TOPIC_COLUMN", "MqttAdapter", "forget_session", "lookup"]
