"""MQTT: rows that devices and gateways push through a broker, read with paho-mqtt 2.x.

The adapter subscribes to one or more topic filters and turns every message (one
JSON object, or a JSON array of objects) into raw rows, which go through the same
:func:`data.base.normalise` as every other source::

    [[sources]]
    name = "bus-positions"
    layer = "people"
    role = "mobility"
    adapter = "mqtt"
    host = "broker.city.gov"
    topics = ["transit/bus/+"]      # transit/bus/<vehicle id>
    topic_field = "id"              # the topic's last segment, unless the message has one
    time = "ts"
    lat = "position.lat"            # dotted paths reach into nested JSON
    lon = "position.lon"

Delivery is at least once end to end while the adapter lives: it speaks MQTT 5
with a stable client id, ``clean_start=False`` and a session expiry, so the broker
queues QoS 1 messages published while the adapter is disconnected and hands them
over when it reconnects (paho reconnects by itself in its network thread). Messages
are buffered between reads in a bounded queue; each read returns the rows that
arrived since the previous one, and a message that cannot be used is counted
under a reason (``not JSON``, ``oversized payload`` …), never dropped silently.
A QoS 1 message is acknowledged to the broker only once a later read's cursor
covers it (``ack = "durable"``): the caller holds its rows, so a crash before
that loses nothing, the broker redelivers it to the next connection.

One client id means one live connection: the broker disconnects the older of two
clients that share an id. Run the app with one worker per MQTT source, or give each
deployment its own ``client_id``.
"""

from __future__ import annotations

from data.mqtt.adapter import TOPIC_COLUMN, MqttAdapter, forget_session, lookup
from data.mqtt.settings import MqttSettings, check_topic_filter, default_client_id

__all__ = ["TOPIC_COLUMN", "MqttAdapter", "MqttSettings", "check_topic_filter",
           "default_client_id", "forget_session", "lookup"]
