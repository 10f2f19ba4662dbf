"""`MonitoringReporter`: report from any scoring code without ever waiting on the channel.

    reporter = MonitoringReporter("spool:/var/lib/deckhand/spool")
    reporter.report_deployment_stats(deployment_id, model_id, num_predictions=3, execution_time_ms=4.2)
    reporter.report_predictions_data(deployment_id, model_id, features_df, predictions, class_names=[...])

Statistics (`report_deployment_stats`, and the counts, latency and predictions of each
prediction-server request) are added to per-deployment, per-minute aggregates in memory:
a few dictionary updates, whatever the traffic. Data records (`report_predictions_data`,
and the prediction server's feature samples, at most `feature_samples_per_second`
requests a second) go to a buffer bounded by `max_buffer`. A background thread publishes
the aggregates and up to `batch_size` buffered records at least every `flush_interval`
seconds. When the channel is down everything stays in memory (aggregates do not grow
with traffic) and the thread retries with backoff; only data records beyond the bound are
dropped, and `dropped` counts them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

from deckhand.monitoring import records as R
from deckhand.monitoring.channels import Channel, ChannelError, channel_from_spec
from deckhand.monitoring.sketch import add_values

log = logging.getLogger("deckhand.monitoring.reporter")

DEFAULT_MAX_BUFFER = 100_000
DEFAULT_BATCH_SIZE = 2_000
DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_FEATURE_SAMPLES_PER_SECOND = 20
MAX_BACKOFF = 5.0


class _Stats:
    """One deployment's minute, as the reporter aggregates it before publishing."""

    __slots__ = ("model_id", "requests", "rows", "user_errors", "system_errors", "latencies", "labels", "numbers")

    def __init__(self, model_id: str | None) -> None:
        self.model_id = model_id
        self.requests = self.rows = self.user_errors = self.system_errors = 0
        self.latencies: list[float] = []
        self.labels: dict[str, int] = {}
        self.numbers: list[Any] = []

    def to_record(self, deployment_id: str, minute: int) -> R.Record:
        record: R.Record = {
            R.DEPLOYMENT_ID: deployment_id,
            R.MODEL_ID: self.model_id,
            "minute": minute,
            R.REQUESTS: self.requests,
            R.ROWS: self.rows,
            R.USER_ERRORS: self.user_errors,
            R.SYSTEM_ERRORS: self.system_errors,
            "latency": {},
        }
        add_values(record["latency"], self.latencies)
        if self.labels or self.numbers:
            from deckhand.monitoring.aggregate import distribution, merge_distribution

            predictions = distribution(self.numbers) if self.numbers else {}
            if self.labels:
                merge_distribution(predictions, {"cat": self.labels})
            record[R.PREDICTIONS] = predictions
        return record


class MonitoringReporter:
    """Batched, non-blocking reporting to a channel; also a prediction-server `Reporter`."""

    # The prediction server wraps reporters in a queue thread unless they are already non-blocking.
    non_blocking = True

    def __init__(
        self,
        channel: Channel | str,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        feature_samples_per_second: int = DEFAULT_FEATURE_SAMPLES_PER_SECOND,
    ) -> None:
        if max_buffer < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("MonitoringReporter: need max_buffer >= 1, batch_size >= 1 and flush_interval > 0")
        self.channel = channel_from_spec(channel) if isinstance(channel, str) else channel
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.feature_samples_per_second = feature_samples_per_second
        self._sample_second = 0
        self._sample_count = 0
        self._stats: dict[tuple[str, int], _Stats] = {}
        self._stats_reports = 0
        self._stats_lock = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self.publish_failures = 0
        self.last_error: str | None = None
        self._buffer: deque[R.Record] = deque()
        # a batch whose publish failed: retried as is, with the same message id, so that a
        # publish that reached the broker but whose confirm was lost is not counted twice
        self._retry: tuple[str, list[R.Record], int] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="deckhand-monitoring-reporter", daemon=True)
        self._thread.start()

    # ----- public API ----------------------------------------------------------------------
    def report_deployment_stats(
        self,
        deployment_id: str,
        model_id: str | None,
        num_predictions: int,
        execution_time_ms: float,
        user_errors: int = 0,
        system_errors: int = 0,
    ) -> None:
        """One scoring call: how many rows it predicted, how long it took, how it failed."""
        self._add_stats(
            deployment_id,
            model_id,
            time.time(),
            int(num_predictions),
            float(execution_time_ms),
            int(user_errors),
            int(system_errors),
            None,
        )

    def _add_stats(
        self,
        deployment_id: str,
        model_id: str | None,
        ts: float,
        rows: int,
        latency_ms: float,
        user_errors: int,
        system_errors: int,
        predictions: list[Any] | None,
    ) -> None:
        key = (deployment_id, int(ts // 60) * 60)
        with self._stats_lock:
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = _Stats(model_id)
            elif model_id:
                stats.model_id = model_id
            stats.requests += 1
            stats.rows += rows
            if user_errors:
                stats.user_errors += user_errors
            if system_errors:
                stats.system_errors += system_errors
            stats.latencies.append(latency_ms)  # sketched when published, vectorised
            if predictions:
                labels = stats.labels
                for value in predictions:
                    if type(value) is str:
                        labels[value] = labels.get(value, 0) + 1
                    else:
                        stats.numbers.append(value)
            self._stats_reports += 1

    def report_predictions_data(
        self,
        deployment_id: str,
        model_id: str | None,
        features: Any,
        predictions: Any,
        class_names: list[str] | None = None,
        association_ids: list[Any] | None = None,
    ) -> None:
        """Features (DataFrame or row dicts) and predictions, for drift and prediction distributions."""
        self._put(R.data_record(deployment_id, model_id, features, predictions, class_names, association_ids))

    def wants_feature_sample(self) -> bool:
        """Whether the prediction server should attach this request's feature sample (rate limit)."""
        second = int(time.monotonic())
        if second != self._sample_second:
            self._sample_second, self._sample_count = second, 0
        if self._sample_count >= self.feature_samples_per_second:
            return False
        self._sample_count += 1
        return True

    def submit(self, record: Any) -> None:
        """The prediction server's hook: one `PredictionRecord` per request."""
        error = record.error
        self._add_stats(
            record.deployment_id,
            record.model_id,
            record.timestamp,
            record.rows,
            record.latency_ms,
            1 if error == "user" else 0,
            1 if error == "system" else 0,
            record.predictions,
        )
        sample = record.feature_sample
        if sample:  # features only: the predictions are counted in the aggregate above
            self._put(
                {
                    R.DEPLOYMENT_ID: record.deployment_id,
                    R.MODEL_ID: record.model_id,
                    R.TIMESTAMP: record.timestamp,
                    R.FEATURES: {k: [v] for k, v in sample[0].items()} if len(sample) == 1 else R.columnar(sample),
                }
            )

    @property
    def buffered(self) -> int:
        """Reports not yet published: data records, failed batches and aggregated statistics."""
        retry = self._retry
        return len(self._buffer) + (retry[2] if retry else 0) + self._stats_reports

    def stats(self) -> dict[str, Any]:
        return {
            "channel": self.channel.describe(),
            "buffered": self.buffered,
            "sent": self.sent,
            "dropped": self.dropped,
            "publishFailures": self.publish_failures,
            "lastError": self.last_error,
        }

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything buffered was published; False if that took longer than timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._wake.set()
            if not self.buffered and self._idle.is_set():
                return True
            time.sleep(0.01)
        return not self.buffered and self._idle.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Publish what is buffered (up to timeout), then stop the thread and the channel."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if self.buffered:
            log.warning("event=monitoring_reporter_closed_with_records buffered=%d", self.buffered)
        self.channel.close()

    # ----- internals -----------------------------------------------------------------------
    def _put(self, record: R.Record) -> None:
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning(
                    "event=monitoring_buffer_full dropped=%d max_buffer=%d channel=%s",
                    self.dropped,
                    self.max_buffer,
                    self.channel.describe(),
                )
            return
        buffer.append(record)  # deque.append is atomic under the GIL
        if len(buffer) >= self.batch_size:
            self._wake.set()

    def _take(self) -> list[R.Record]:
        batch: list[R.Record] = []
        popleft = self._buffer.popleft
        try:
            for _ in range(self.batch_size):
                batch.append(popleft())
        except IndexError:
            pass
        return batch

    def _next_batch(self) -> tuple[str, list[R.Record], int]:
        """The failed batch again, else the aggregates so far plus buffered data records."""
        if self._retry is not None:
            return self._retry
        with self._stats_lock:
            stats, self._stats = self._stats, {}
            reports, self._stats_reports = self._stats_reports, 0
        batch = [s.to_record(dep, minute) for (dep, minute), s in stats.items()]
        data = self._take()
        batch.extend(data)
        return uuid.uuid4().hex, batch, reports + len(data)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self.flush_interval)
            self._wake.clear()
            if self._closed:
                return
            while self._retry is not None or self._buffer or self._stats:
                self._idle.clear()
                message_id, batch, reports = self._next_batch()
                try:
                    self.channel.publish(batch, message_id=message_id)
                except Exception as exc:  # any channel failure: keep the batch, retry it later
                    self._retry = (message_id, batch, reports)
                    self.publish_failures += 1
                    self.last_error = str(exc)
                    backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF)
                    if self.publish_failures == 1 or self.publish_failures % 100 == 0:
                        level = logging.WARNING if isinstance(exc, ChannelError) else logging.ERROR
                        log.log(
                            level,
                            "event=monitoring_publish_failed failures=%d buffered=%d retry_in=%.1fs error=%s",
                            self.publish_failures,
                            self.buffered,
                            backoff,
                            exc,
                        )
                    break
                else:
                    self._retry = None
                    if backoff:
                        log.info("event=monitoring_channel_recovered channel=%s", self.channel.describe())
                    backoff = 0.0
                    self.sent += reports
            self._idle.set()
