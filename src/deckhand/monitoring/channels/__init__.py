"""Monitoring channels, the transport between reporters and the tracking agent: `spool:`
(default) and `amqp://` / `amqps://` (RabbitMQ), named in `CHANNELS`."""

from __future__ import annotations

from deckhand.monitoring.channels.base import (
    CHANNEL_GROUP,
    CHANNELS,
    Channel,
    ChannelConfigError,
    ChannelError,
    Delivery,
    channel_from_spec,
    register_channel_kind,
)

__all__ = [
    "CHANNEL_GROUP",
    "CHANNELS",
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "Delivery",
    "channel_from_spec",
    "register_channel_kind",
]
