"""`MonitoringReporter`: report from any scoring code without ever waiting on the channel.

    reporter = MonitoringReporter("spool:/var/lib/deckhand/spool")
    reporter.report_deployment_stats(deployment_id, model_id, num_predictions=3, execution_time_ms=4.2)
    reporter.report_predictions_data(deployment_id, model_id, features_df, predictions, class_names=[...])

Statistics (`report_deployment_stats`, and the counts, latency and predictions of each
prediction-server request) are appended to a queue as they come -- the caller's whole
cost, well under a microsecond -- and the background thread folds them into
per-deployment, per-minute aggregates, a batch at a time. Data records
(`report_predictions_data`, and the prediction server's feature samples, at most
`feature_samples_per_second` requests a second) go to a buffer bounded by `max_buffer`.
The background thread publishes the aggregates and up to `batch_size` buffered records
every `flush_interval` seconds. When the channel is down everything stays in memory (the
thread keeps folding statistics, so aggregates do not grow with traffic) and it retries
with backoff; only data records beyond the bound are dropped, and `dropped` counts them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from itertools import chain, compress
from operator import itemgetter
from typing import Any

import numpy as np

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

    __slots__ = (
        "model_id",
        "requests",
        "rows",
        "user_errors",
        "system_errors",
        "latencies",
        "labels",
        "numbers",
    )

    def __init__(self, model_id: str | None) -> None:
        self.model_id = model_id
        self.requests = self.rows = self.user_errors = self.system_errors = 0
        self.latencies: list[np.ndarray] = []  # a chunk per fold
        self.labels: Counter[str] = Counter()
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
        if self.latencies:
            add_values(record["latency"], np.concatenate(self.latencies))
        if self.labels or self.numbers:
            from deckhand.monitoring.aggregate import distribution, merge_distribution

            predictions = distribution(self.numbers) if self.numbers else {}
            if self.labels:
                merge_distribution(predictions, {"cat": dict(self.labels)})
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
        # scoring calls as tuples in deckhand.serving.hooks.REQUEST_FIELDS order (the error
        # field may also be a (user_errors, system_errors) pair), folded into _stats by the
        # background thread only: no lock on the caller's path
        self._calls: deque[tuple[Any, ...]] = deque()
        self.queue_request = self._calls.append  # the prediction server's hook (deque.append: atomic)
        self._stats: dict[tuple[str, int], _Stats] = {}
        self._stats_reports = 0
        self.sent = 0
        self.dropped = 0
        self.malformed = 0  # of the dropped: records that could not be read (submit's callers)
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
        errors = (int(user_errors), int(system_errors)) if user_errors or system_errors else None
        self.queue_request(
            (deployment_id, model_id, time.time(), int(num_predictions), float(execution_time_ms), errors, (), None)
        )

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

    def submit(self, record: Any) -> None:
        """A prediction server's `PredictionRecord` (the server itself uses queue_request)."""
        self.queue_request(
            (
                record.deployment_id,
                record.model_id,
                record.timestamp,
                record.rows,
                record.latency_ms,
                record.error,
                tuple(record.predictions),
                record.feature_sample or None,
            )
        )

    @property
    def buffered(self) -> int:
        """Reports not yet published: data records, failed batches and aggregated statistics."""
        retry = self._retry
        return len(self._buffer) + (retry[2] if retry else 0) + self._stats_reports + len(self._calls)

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

    def _stats_for(self, deployment_id: str, minute: int, model_id: str | None) -> _Stats:
        stats = self._stats.get((deployment_id, minute))
        if stats is None:
            stats = self._stats[(deployment_id, minute)] = _Stats(model_id)
        elif model_id:
            stats.model_id = model_id
        return stats

    def _fold(self) -> None:
        """Move queued statistics into the per-minute aggregates (background thread only)."""
        calls = _pop_all(self._calls)
        if calls:
            # zip/map/Counter run in C: about 0.6 us a call, where a Python loop over the
            # calls took 1.1
            try:
                stamps = list(map(_TIMESTAMP, calls))
                first_minute = int(min(stamps) // 60)
                one_group = len(set(map(_DEPLOYMENT, calls))) == 1 and first_minute == int(max(stamps) // 60)
            except Exception:
                one_group = False
            groups: dict[tuple[str, int], list[Any]] = {}
            if one_group:
                groups[(calls[0][0], first_minute * 60)] = calls
            else:  # several deployments, a minute boundary, or something malformed
                for call in calls:
                    try:
                        key = (call[0], int(call[2] // 60) * 60)
                    except Exception as exc:
                        self._drop_malformed(exc)
                        continue
                    groups.setdefault(key, []).append(call)
            for (deployment_id, minute), group in groups.items():
                if type(deployment_id) is not str or not deployment_id:
                    for _ in group:
                        self._drop_malformed(TypeError(f"deployment_id {deployment_id!r}: expected a string"))
                    continue
                self._stats_reports += len(group)
                self._fold_calls(self._stats_for(deployment_id, minute, group[-1][1]), group)

    def _fold_calls(self, stats: _Stats, group: list[Any]) -> None:
        try:
            self._fold_group(stats, group)
        except Exception:  # somebody's malformed call: fold one by one, drop only the bad ones
            for call in group:
                try:
                    self._fold_group(stats, [call])
                except Exception as exc:
                    self._stats_reports -= 1
                    self._drop_malformed(exc)

    def _drop_malformed(self, exc: Exception) -> None:
        self.dropped += 1
        self.malformed += 1
        if self.malformed == 1 or self.malformed % 1000 == 0:
            log.warning("event=monitoring_record_dropped reason=malformed dropped=%d error=%r", self.malformed, exc)

    def _fold_group(self, stats: _Stats, group: list[Any]) -> None:
        """Add queued scoring calls to one aggregate: everything is computed before anything
        is added, so a malformed call raises with the aggregate untouched."""
        _, models, stamps, rows, latencies, errors, predictions, samples = zip(*group, strict=True)
        user_errors, system_errors = errors.count("user"), errors.count("system")
        if errors.count(None) + user_errors + system_errors != len(errors):  # report_deployment_stats' counts
            pairs = [e for e in errors if type(e) is tuple]
            if errors.count(None) + user_errors + system_errors + len(pairs) != len(errors):
                raise TypeError("error must be None, 'user', 'system' or a (user, system) pair of counts")
            user_errors += sum(e[0] for e in pairs)
            system_errors += sum(e[1] for e in pairs)
        counts = sum(rows), user_errors, system_errors
        if any(type(n) is not int for n in counts) or min(counts) < 0:
            raise TypeError("rows and error counts must be non-negative integers")
        latency_values = np.asarray(latencies, dtype=float)  # raises on a non-number
        values = list(chain.from_iterable(predictions))
        features = [(models[i], stamps[i], R.columnar(samples[i])) for i in compress(range(len(group)), samples)]
        labels: Counter[Any] = Counter(values) if values and type(values[0]) is str else Counter()
        numbers = [] if labels else values
        for value in [v for v in labels if type(v) is not str]:  # a stray number among labels
            numbers.extend([value] * labels.pop(value))
        stats.requests += len(group)
        stats.rows += counts[0]
        stats.user_errors += counts[1]
        stats.system_errors += counts[2]
        stats.latencies.append(latency_values)
        stats.labels.update(labels)
        stats.numbers.extend(numbers)
        for model_id, timestamp, columns in features:  # features only: predictions are above
            self._put({R.DEPLOYMENT_ID: group[0][0], R.MODEL_ID: model_id, R.TIMESTAMP: timestamp, R.FEATURES: columns})

    def _next_batch(self) -> tuple[str, list[R.Record], int]:
        """The failed batch again, else the aggregates so far plus buffered data records."""
        if self._retry is not None:
            return self._retry
        stats, self._stats = self._stats, {}
        reports, self._stats_reports = self._stats_reports, 0
        batch = [s.to_record(dep, minute) for (dep, minute), s in stats.items()]
        data = self._take()
        batch.extend(data)
        return uuid.uuid4().hex, batch, reports + len(data)

    def _run(self) -> None:
        backoff = 0.0
        retry_at = 0.0
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._closed:
                return
            self._idle.clear()  # before folding: flush() must not see popped reports as gone
            self._fold()  # also while the channel is down: statistics must not pile up
            if time.monotonic() < retry_at:
                self._idle.set()
                continue
            # One publish per wake-up, then more only while full batches of data wait: under
            # steady traffic the statistics are never empty, and publishing them again at once
            # wrote a file per few requests and took more CPU than serving them.
            more = self._retry is not None or self._buffer or self._stats
            while more:
                message_id, batch, reports = self._next_batch()
                try:
                    self.channel.publish(batch, message_id=message_id)
                except Exception as exc:  # any channel failure: keep the batch, retry it later
                    self._retry = (message_id, batch, reports)
                    self.publish_failures += 1
                    self.last_error = str(exc)
                    backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF)
                    retry_at = time.monotonic() + backoff
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
                    more = len(self._buffer) >= self.batch_size
            self._idle.set()


_DEPLOYMENT, _TIMESTAMP = itemgetter(0), itemgetter(2)  # of a queued call (REQUEST_FIELDS)


def _pop_all(queue: deque[Any]) -> list[Any]:
    """What is in a deque now, taken safely while other threads append."""
    popleft = queue.popleft
    return [popleft() for _ in range(len(queue))]
