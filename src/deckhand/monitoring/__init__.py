"""Monitoring: report prediction statistics to a channel; the tracking agent carries them
to the control plane, which keeps per-minute service health, prediction distributions
and feature histograms for drift.

    from deckhand.monitoring import MonitoringReporter
    reporter = MonitoringReporter("spool:/var/lib/deckhand/spool")

The prediction server builds a MonitoringReporter itself for a `spool:` or `amqp://` spec
(`deckhand serve --monitoring SPEC` / DECKHAND_MONITORING; deckhand.serving.observers).
This package does not import the serving side.
"""

from __future__ import annotations

from deckhand.monitoring.channels import Channel, ChannelConfigError, ChannelError, Delivery, channel_from_spec
from deckhand.monitoring.reporter import MonitoringReporter

__all__ = ["Channel", "ChannelConfigError", "ChannelError", "Delivery", "MonitoringReporter", "channel_from_spec"]
