"""Monitoring: report prediction statistics to a channel; the tracking agent carries them
to the control plane, which keeps per-minute service health, prediction distributions
and feature histograms for drift.

    from deckhand.monitoring import MonitoringReporter
    reporter = MonitoringReporter("spool:/var/lib/deckhand/spool")

Importing this package registers the `spool` and `amqp` channels with the prediction
server's hook (`deckhand serve --monitoring SPEC` / DECKHAND_MONITORING).
"""

from __future__ import annotations

from deckhand.monitoring.channels import Channel, ChannelConfigError, ChannelError, Delivery, channel_from_spec
from deckhand.monitoring.reporter import MonitoringReporter


def _serving_reporter(prefix: str):  # type: ignore[no-untyped-def]
    def factory(rest: str) -> MonitoringReporter:
        from deckhand.serving.hooks import MonitoringConfigError

        try:
            return MonitoringReporter(f"{prefix}:{rest}")
        except ChannelConfigError as exc:  # `deckhand serve` reports it as a start-up error
            raise MonitoringConfigError(f"monitoring spec (--monitoring or DECKHAND_MONITORING): {exc}") from None

    return factory


def _register_serving_channels() -> None:
    from deckhand.serving.hooks import register_channel

    for prefix in ("spool", "amqp", "amqps"):
        register_channel(prefix, _serving_reporter(prefix))


_register_serving_channels()

__all__ = ["Channel", "ChannelConfigError", "ChannelError", "Delivery", "MonitoringReporter", "channel_from_spec"]
