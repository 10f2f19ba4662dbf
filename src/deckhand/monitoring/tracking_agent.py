"""The tracking agent: channel -> aggregate -> control plane -> acknowledge.

Each cycle reads up to `batch_size` records (whole spool files or messages), aggregates
them per source, deployment, model, shadow flag and minute, and posts one batch. Only after the control plane
answered 200 are the deliveries acknowledged (spool files deleted, messages acked). The
batch id and each aggregate's source id come from the deliveries themselves, so a resend
after any crash or timeout is recognised by the control plane and not counted again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from deckhand.client.control_plane import ControlPlaneClient
from deckhand.client.errors import ControlPlaneError
from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.channels import Channel, ChannelError, Delivery

log = logging.getLogger("deckhand.monitoring.tracking_agent")

DEFAULT_BATCH_SIZE = 50_000
DEFAULT_FLUSH_INTERVAL = 1.0
MAX_BACKOFF = 30.0
# An idle read waits at most this long, so a stop request (SIGTERM) is seen this fast. A
# read returns as soon as records are there, so batching does not depend on it.
STOP_CHECK_SECONDS = 0.1
# Answers that will never succeed for this content: the batch is logged and dropped.
POISON_STATUSES = (400, 413, 422)
# Tests only: "exit-after-post:N" makes the process die (exit 137) right after its Nth
# accepted post and before acknowledging it -- the worst moment for exactly-once counting.
FAILPOINT_ENV = "DECKHAND_TRACKING_AGENT_FAILPOINT"


def batch_id(deliveries: list[Delivery]) -> str:
    digest = hashlib.sha256("\n".join(sorted(d.source_id for d in deliveries)).encode())
    return "tb-" + digest.hexdigest()[:40]


@dataclass
class AgentCounters:
    batches: int = 0
    records: int = 0
    duplicates: int = 0
    rejected_records: int = 0
    post_failures: int = 0
    channel_failures: int = 0


class TrackingAgent:
    def __init__(
        self,
        channel: Channel,
        client: ControlPlaneClient,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if batch_size < 1 or flush_interval <= 0:
            raise ValueError("tracking agent: need --batch-size >= 1 and --flush-interval > 0")
        self.channel = channel
        self.client = client
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.counters = AgentCounters()
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Read, aggregate and send until stopped. One batch is in flight while the next is
        read and aggregated (the control plane works while this process does), and each
        batch is acknowledged, in order, only once the control plane accepted it."""
        log.info(
            "event=tracking_agent_started channel=%s server=%s batch_size=%d flush_interval=%.2f",
            self.channel.describe(),
            self.client.base_url,
            self.batch_size,
            self.flush_interval,
        )
        backoff = 0.0
        pending: _Pending | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracking-agent-post") as poster:
            while not self.stop_event.is_set():
                try:
                    # while a batch is in flight, take what is there now rather than wait
                    wait = min(self.flush_interval, STOP_CHECK_SECONDS) if pending is None else 0.0
                    deliveries = self.channel.read(self.batch_size, wait)
                except ChannelError as exc:
                    self.counters.channel_failures += 1
                    backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF)
                    log.warning("event=channel_read_failed retry_in=%.1fs error=%s", backoff, exc)
                    if pending is not None:
                        self._finish(pending)
                        pending = None
                    self.stop_event.wait(backoff)
                    continue
                backoff = 0.0
                batch = self._prepare(deliveries) if deliveries else None
                if pending is not None:
                    self._finish(pending)
                    pending = None
                if batch is not None:
                    batch.future = poster.submit(self._send, batch)
                    pending = batch
            if pending is not None:
                self._finish(pending)
        self.channel.close()
        log.info("event=tracking_agent_stopped batches=%d records=%d", self.counters.batches, self.counters.records)

    def _failpoint(self) -> None:
        spec = os.environ.get(FAILPOINT_ENV, "")
        if spec.startswith("exit-after-post:") and self.counters.batches + 1 >= int(spec.partition(":")[2]):
            log.warning("event=failpoint_exit batch_number=%d", self.counters.batches + 1)
            os._exit(137)

    def process(self, deliveries: list[Delivery]) -> bool:
        """Send one batch until the control plane takes it (or the agent stops), then ack."""
        batch = self._prepare(deliveries)
        batch.answer_ready = True
        batch.answer = self._send(batch)
        return self._finish(batch)

    def _prepare(self, deliveries: list[Delivery]) -> _Pending:
        started = time.perf_counter()
        aggregator = Aggregator()
        for delivery in deliveries:
            for record in delivery.records:
                aggregator.add(delivery.source_id, record)
        # an empty list (empty or corrupt files) is sent too, so that they are acked, not piled up
        return _Pending(deliveries, batch_id(deliveries), aggregator.drain(), aggregator, started)

    def _send(self, batch: _Pending) -> dict[str, Any] | None | bool:
        """POST until accepted (answer), rejected for good (None) or the agent stops (False)."""
        backoff = 0.0
        while True:
            try:
                return self.client.post_monitoring_batch(batch.ident, batch.aggregates)
            except ControlPlaneError as exc:
                if exc.status_code in POISON_STATUSES:
                    self.counters.rejected_records += batch.aggregator.records
                    log.error(
                        "event=batch_rejected batch=%s records=%d status=%d error=%s (dropped)",
                        batch.ident,
                        batch.aggregator.records,
                        exc.status_code,
                        exc.message,
                    )
                    return None
                self.counters.post_failures += 1
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF)
                log.warning("event=batch_post_failed batch=%s retry_in=%.1fs error=%s", batch.ident, backoff, exc)
                if self.stop_event.wait(backoff):
                    return False  # not acked: the next run resends it, the control plane dedupes

    def _finish(self, batch: _Pending) -> bool:
        """Wait for the batch's answer; ack unless the agent stopped before it was accepted."""
        answer = batch.answer if batch.answer_ready else batch.future.result()  # type: ignore[union-attr]
        if answer is False:
            return False
        self._failpoint()
        try:
            self.channel.ack(batch.deliveries)
        except ChannelError as exc:  # redelivered later; the control plane skips it then
            log.warning("event=ack_failed batch=%s error=%s", batch.ident, exc)
        self.counters.batches += 1
        if isinstance(answer, dict):
            self.counters.records += batch.aggregator.records
            if answer.get("duplicate"):
                self.counters.duplicates += 1
        log.info(
            "event=batch_sent batch=%s sources=%d records=%d aggregates=%d invalid=%d duplicate=%s "
            "skipped_sources=%d ms=%.1f",
            batch.ident,
            len(batch.deliveries),
            batch.aggregator.records,
            len(batch.aggregates),
            batch.aggregator.invalid,
            bool(isinstance(answer, dict) and answer.get("duplicate")),
            int(answer.get("skippedSources") or 0) if isinstance(answer, dict) else 0,
            (time.perf_counter() - batch.started) * 1000,
        )
        return True


@dataclass
class _Pending:
    """A batch between aggregation and acknowledgement."""

    deliveries: list[Delivery]
    ident: str
    aggregates: list[dict[str, Any]]
    aggregator: Aggregator
    started: float
    future: Future[Any] | None = None
    answer: Any = None
    answer_ready: bool = False
