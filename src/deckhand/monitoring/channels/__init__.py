"""Built-in monitoring channels: `spool:` (default) and `amqp://` / `amqps://` (RabbitMQ)."""

from __future__ import annotations

from deckhand.monitoring.channels.base import (
    Channel,
    ChannelConfigError,
    ChannelError,
    Delivery,
    channel_from_spec,
    register_channel_kind,
)


def _spool(spec: str) -> Channel:
    from deckhand.monitoring.channels.spool import SpoolChannel

    return SpoolChannel.from_spec(spec)


def _amqp(spec: str) -> Channel:
    from deckhand.monitoring.channels.rabbitmq import RabbitMQChannel

    return RabbitMQChannel.from_spec(spec)


register_channel_kind("spool", _spool)
register_channel_kind("amqp", _amqp)
register_channel_kind("amqps", _amqp)

__all__ = [
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "Delivery",
    "channel_from_spec",
    "register_channel_kind",
]
