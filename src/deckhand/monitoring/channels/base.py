"""The channel interface: publish batches of records, read them back, acknowledge them.

A channel is the transport between reporters (prediction servers, scoring code) and the
tracking agent. Publishing returns only once the batch is durable (a renamed spool file,
a confirmed persistent message); reading hands out `Delivery`s that stay in the channel
until `ack`. A new channel (Kafka, SQS) implements these four methods and names its spec
prefix in the `deckhand.channels` entry-point group (or with `register_channel_kind`);
`CHANNELS` knows the built-in ones.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deckhand import extras
from deckhand.monitoring.records import Record
from deckhand.registry import Registry


class ChannelError(Exception):
    """The channel cannot take or give records right now (down, full); try again later."""


class ChannelConfigError(ValueError):
    """A channel spec that cannot work; the message names the part and the fix."""


@dataclass
class Delivery:
    """One unit read from a channel: a spool file or one message, with a stable id.
    `records` are the decoded lines: raw records, blocks of them, aggregates
    (`records.record_count` says how many records they stand for)."""

    source_id: str
    records: list[Record]
    handle: Any = None


class Channel(abc.ABC):
    kind: str = ""

    @abc.abstractmethod
    def publish(self, records: list[Record], message_id: str | None = None) -> None:
        """Store the records durably, or raise ChannelError.

        A retry of the same batch passes the same `message_id`, which becomes its source id
        where the channel can carry it, so a publish that succeeded unbeknown to the caller
        is recognised downstream."""

    @abc.abstractmethod
    def read(self, max_records: int, timeout: float) -> list[Delivery]:
        """Up to about max_records records (whole deliveries; a block counts its records),
        waiting at most timeout seconds."""

    @abc.abstractmethod
    def ack(self, deliveries: list[Delivery]) -> None:
        """Remove deliveries for good (after the control plane accepted them)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections and files."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The spec with secrets masked, for logs."""


ChannelKindFactory = Callable[[str], Channel]
CHANNEL_GROUP = "deckhand.channels"

# Spec prefix -> `factory(full_spec)` building the channel; imported only when a spec uses it.
CHANNELS: Registry[ChannelKindFactory] = Registry(
    "kind",
    {
        "spool": "deckhand.monitoring.channels.spool:SpoolChannel.from_spec",
        "amqp": "deckhand.monitoring.channels.rabbitmq:RabbitMQChannel.from_spec",
        "amqps": "deckhand.monitoring.channels.rabbitmq:RabbitMQChannel.from_spec",
    },
    groups=(CHANNEL_GROUP,),
    requirements=extras.CHANNELS,
    error=ChannelConfigError,
    hint="e.g. spool:/var/lib/deckhand/spool or amqp://user:pass@host:5672/%2F?queue=deckhand-monitoring",
)


def register_channel_kind(prefix: str, factory: ChannelKindFactory) -> None:
    """`factory(full_spec)` builds the channel for specs starting with `prefix:`."""
    CHANNELS.register(prefix, factory)


def channel_from_spec(spec: str) -> Channel:
    """The channel a spec names: `spool:/abs/dir`, `amqp://user:pass@host:5672/vhost?queue=NAME`."""
    text = (spec or "").strip()
    kind = text.partition(":")[0]
    return CHANNELS.load(kind, context=f"monitoring channel {text!r}")(text)
