"""The RabbitMQ channel: one durable queue, persistent messages, publisher confirms.

Each publish is one message (a JSON-lines batch) with a unique message id; it returns
only after the broker confirmed it. The reader consumes with a prefetch window and acks
only after the control plane accepted what it sent; unacked messages come back after a
crash and their message ids make the resend a no-op in the control plane.

Spec: `amqp://user:pass@host:5672/vhost?queue=deckhand-monitoring` (also `amqps://`; other
query options are pika's URL parameters, e.g. heartbeat=30).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from deckhand import extras
from deckhand.monitoring.channels.base import Channel, ChannelConfigError, ChannelError, Delivery
from deckhand.monitoring.records import Record, decode_batch, encode_batch, record_count
from deckhand.secrets import register_secret

log = logging.getLogger("deckhand.monitoring.rabbitmq")

DEFAULT_QUEUE = "deckhand-monitoring"
CONTENT_TYPE = "application/x-ndjson"


def mask_amqp_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class RabbitMQChannel(Channel):
    kind = "amqp"

    def __init__(self, url: str, queue: str = DEFAULT_QUEUE, *, prefetch: int = 2000, connect_timeout: float = 5.0):
        needed = extras.missing(extras.CHANNELS["amqp"])
        if needed is not None:
            raise ChannelConfigError(extras.describe(needed))
        self.url = url
        self.queue = queue
        self.prefetch = prefetch
        self.connect_timeout = connect_timeout
        self._pub: Any = None  # (connection, channel) for publishing
        self._sub: Any = None  # (connection, channel, consumer generator) for reading
        self._sub_generation = 0
        register_secret(urlsplit(url).password)

    @classmethod
    def from_spec(cls, spec: str) -> RabbitMQChannel:
        parts = urlsplit(spec)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ChannelConfigError(
                f"rabbitmq spec {mask_amqp_url(spec)!r}: expected amqp://user:pass@host:5672/vhost?queue=NAME"
            )
        query = parse_qsl(parts.query, keep_blank_values=True)
        queue = next((v for k, v in query if k == "queue"), DEFAULT_QUEUE)
        if not queue:
            raise ChannelConfigError(f"rabbitmq spec {mask_amqp_url(spec)!r}: queue= is empty; name a queue")
        rest = urlencode([(k, v) for k, v in query if k != "queue"])
        url = urlunsplit(parts._replace(query=rest))
        try:
            _port = parts.port
        except ValueError as exc:
            raise ChannelConfigError(f"rabbitmq spec {mask_amqp_url(spec)!r}: bad port ({exc})") from None
        return cls(url, queue)

    def describe(self) -> str:
        return f"{mask_amqp_url(self.url)} queue={self.queue}"

    def _connect(self) -> tuple[Any, Any]:
        import pika

        params = pika.URLParameters(self.url)
        params.socket_timeout = self.connect_timeout
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.queue_declare(queue=self.queue, durable=True)
        return connection, channel

    @staticmethod
    def _close(pair: Any) -> None:
        if pair is None:
            return
        try:
            if pair[0].is_open:
                pair[0].close()
        except Exception:  # already broken
            pass

    # ----- publish -----------------------------------------------------------------------
    def publish(self, records: list[Record], message_id: str | None = None) -> None:
        import pika
        import pika.exceptions

        if not records:
            return
        body = encode_batch(records)
        try:
            if self._pub is None or not self._pub[0].is_open:
                self._close(self._pub)
                self._pub = self._connect()
                self._pub[1].confirm_delivery()
            self._pub[1].basic_publish(
                exchange="",
                routing_key=self.queue,
                body=body,
                properties=pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message_id or uuid.uuid4().hex,
                    content_type=CONTENT_TYPE,
                    timestamp=int(time.time()),
                ),
                mandatory=True,
            )
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._close(self._pub)
            self._pub = None
            raise ChannelError(f"rabbitmq {self.describe()}: publish failed ({type(exc).__name__}: {exc})") from exc

    # ----- read / ack --------------------------------------------------------------------
    def _subscriber(self) -> Any:
        if self._sub is None or not self._sub[0].is_open:
            self._close(self._sub)
            connection, channel = self._connect()
            channel.basic_qos(prefetch_count=self.prefetch)
            self._sub_generation += 1
            self._sub = (connection, channel)
        return self._sub

    def read(self, max_records: int, timeout: float) -> list[Delivery]:
        import pika.exceptions

        deliveries: list[Delivery] = []
        count = 0
        deadline = time.monotonic() + timeout
        try:
            _connection, channel = self._subscriber()
            while count < max_records and len(deliveries) < self.prefetch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # after a first delivery, collect whatever is already here without waiting long
                wait = remaining if not deliveries else min(remaining, 0.05)
                method, props, body = next(channel.consume(self.queue, inactivity_timeout=wait))
                if method is None:
                    if deliveries:
                        break
                    continue
                message_id = getattr(props, "message_id", None) or "sha256-" + hashlib.sha256(body).hexdigest()
                records = decode_batch(body)
                deliveries.append(Delivery(f"amqp:{message_id}", records, (self._sub_generation, method.delivery_tag)))
                count += record_count(records)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._close(self._sub)
            self._sub = None
            if not deliveries:
                raise ChannelError(f"rabbitmq {self.describe()}: read failed ({type(exc).__name__}: {exc})") from exc
            # what was read will be redelivered; acking it on a new channel is impossible
            raise ChannelError(f"rabbitmq {self.describe()}: connection lost while reading ({exc})") from exc
        return deliveries

    def ack(self, deliveries: list[Delivery]) -> None:
        import pika.exceptions

        if not deliveries:
            return
        current = [d for d in deliveries if d.handle[0] == self._sub_generation]
        if not current or self._sub is None:
            return  # the connection they came on is gone: the broker redelivers, the server dedupes
        try:
            last = max(d.handle[1] for d in current)
            self._sub[1].basic_ack(delivery_tag=last, multiple=True)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._close(self._sub)
            self._sub = None
            raise ChannelError(f"rabbitmq {self.describe()}: ack failed ({exc})") from exc

    def close(self) -> None:
        if self._sub is not None:
            try:
                self._sub[1].cancel()
            except Exception:
                pass
        self._close(self._sub)
        self._close(self._pub)
        self._sub = self._pub = None

    def queue_depth(self) -> int:
        """Messages ready in the queue (tests, benches)."""
        connection, channel = self._connect()
        try:
            return int(channel.queue_declare(queue=self.queue, durable=True, passive=True).method.message_count)
        finally:
            self._close((connection, channel))
