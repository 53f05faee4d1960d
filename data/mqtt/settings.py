"""The options of an MQTT source: topics, broker, session, limits, checked when the config loads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.city import ConfigError, parse_duration

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_SESSION_EXPIRY = 3600
ACK_MODES = ("durable", "receipt")


def default_client_id(source_name: str) -> str:
    """A stable client id for a source, so the broker keeps its session across restarts."""
    return "citybrain-" + re.sub(r"[^A-Za-z0-9_-]", "-", source_name)


def check_topic_filter(topic: str) -> None:
    """Refuse a topic filter that breaks MQTT's wildcard rules (``+`` and ``#``)."""
    if not topic:
        raise ValueError("a topic filter cannot be empty")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{topic!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"{topic!r}: '+' must be a whole level")



@dataclass(frozen=True)
class MqttSettings:
    """The options of one MQTT source, validated (see the module docs and docs/adapters.md)."""

    topics: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    client_id: str = ""
    qos: int = 1
    username: str | None = None
    password_env: str | None = None
    tls: bool = False
    max_payload: int = 65536
    buffer: int = 200_000
    keepalive: int = 30
    topic_field: str | None = None
    session_expiry: int = DEFAULT_SESSION_EXPIRY
    #: When a QoS 1/2 message is acknowledged to the broker: "durable" once the rows
    #: it gave are held by the caller (the next read says so), "receipt" on arrival.
    ack: str = "durable"

    @classmethod
    def parse(cls, where: str, options: Mapping[str, Any], client_id: str = "") -> MqttSettings:
        """Options as written in the config; a wrong value is a :class:`ConfigError`."""

        def integer(key: str, default: int, lo: int, hi: int | None = None) -> int:
            value = options.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo \
                    or (hi is not None and value > hi):
                bounds = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
                raise ConfigError(f"{where}.{key}: expected an integer {bounds}, got {value!r}")
            return value

        def text(key: str) -> str | None:
            value = options.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
            return value

        topics = options.get("topics")
        if isinstance(topics, str):
            topics = [topics]
        if not isinstance(topics, list) or not topics or \
                not all(isinstance(t, str) for t in topics):
            raise ConfigError(f"{where}.topics: expected a list of topic filters, got {topics!r}")
        for topic in topics:
            try:
                check_topic_filter(topic)
            except ValueError as exc:
                raise ConfigError(f"{where}.topics: {exc}") from exc
        tls = options.get("tls", False)
        if not isinstance(tls, bool):
            raise ConfigError(f"{where}.tls: expected true or false, got {tls!r}")
        expiry = parse_duration(f"{where}.session_expiry",
                                options.get("session_expiry", DEFAULT_SESSION_EXPIRY))
        if not 0 <= expiry <= 0xFFFFFFFF:
            raise ConfigError(f"{where}.session_expiry: {expiry:g} s is outside MQTT's range")
        ack = options.get("ack", "durable")
        if ack not in ACK_MODES:
            raise ConfigError(f"{where}.ack: expected one of {', '.join(ACK_MODES)}, got {ack!r}")
        return cls(
            topics=tuple(topics),
            host=text("host") or "127.0.0.1",
            port=integer("port", DEFAULT_TLS_PORT if tls else DEFAULT_PORT, 1, 65535),
            client_id=text("client_id") or client_id,
            qos=integer("qos", 1, 0, 2),
            username=text("username"),
            password_env=text("password_env"),
            tls=tls,
            max_payload=integer("max_payload", 65536, 1),
            buffer=integer("buffer", 200_000, 1),
            keepalive=integer("keepalive", 30, 5, 65535),
            topic_field=text("topic_field"),
            session_expiry=int(expiry),
            ack=ack,
        )


__all__ = ["ACK_MODES", "DEFAULT_PORT", "DEFAULT_SESSION_EXPIRY", "DEFAULT_TLS_PORT", "MqttSettings",
           "check_topic_filter", "default_client_id"]
