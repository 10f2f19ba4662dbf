"""`MonitoringReporter`: report from any scoring code without ever waiting on the channel.

    reporter = MonitoringReporter("spool:/var/lib/deckhand/spool")
    reporter.report_deployment_stats(deployment_id, model_id, num_predictions=3, execution_time_ms=4.2)
    reporter.report_predictions_data(deployment_id, model_id, features_df, predictions, class_names=[...])

Statistics (`report_deployment_stats`) are counted at once into tallies per deployment,
model, shadow flag and minute, under a lock held for a few attribute updates; the
prediction server hands over the tallies it keeps anyway (`add_source`, `count_tallies`).
A shadow (challenger) tally also sums how many rows were compared with the champion's
answers, agreed with them, and the absolute differences (`TALLY_COMPARISON`). Data records
(`report_predictions_data`, and the prediction server's feature samples, at most
`feature_samples_per_second` requests a second) go to a buffer bounded by `max_buffer`.

Every `flush_interval` seconds the background thread swaps the tallies out, compacts
them into sketches (so what waits while the channel is down grows with deployments and
minutes, not with requests) and publishes them with up to `batch_size` buffered data
records. When the channel is down it retries with backoff; only data records beyond the
bound are dropped, and `dropped` counts them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from operator import index
from typing import Any

import numpy as np

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import distribution, merge_distribution
from deckhand.monitoring.channels import Channel, ChannelError, channel_from_spec
from deckhand.monitoring.records import (
    ABS_DIFF_SUM,
    AGREED_ROWS,
    COMPARED_ROWS,
    DEPLOYMENT_ID,
    FEATURES,
    MODEL_ID,
    PREDICTIONS,
    REQUESTS,
    ROWS,
    SHADOW,
    SYSTEM_ERRORS,
    TIMESTAMP,
    USER_ERRORS,
    Record,
    actuals_record,
    columnar,
    data_record,
    scored_record,
)

log = logging.getLogger("deckhand.monitoring.reporter")

DEFAULT_MAX_BUFFER = 100_000
DEFAULT_BATCH_SIZE = 2_000
DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_FEATURE_SAMPLES_PER_SECOND = 20
MAX_BACKOFF = 5.0
# What a prediction server's tally (deckhand.serving.tally.Tally, or a PredictionRecord) may
# carry beyond its model id, named after the record keys; one without them is not shadow
# and compared nothing.
TALLY_SHADOW = "shadow"
TALLY_COMPARISON = ("compared_rows", "agreed_rows", "abs_diff_sum")
# (deployment id, model id, shadow, minute)
StatsKey = tuple[str, str | None, bool, int]


def _comparison_of(tally: Any) -> tuple[int, int, float] | None:
    sums = tuple(getattr(tally, name, 0) or 0 for name in TALLY_COMPARISON)
    return (int(sums[0]), int(sums[1]), float(sums[2])) if any(sums) else None


class _Stats:
    """One model's minute in a deployment. Callers add raw latencies and labels (cheap
    appends); the background thread `compact`s them into a latency sketch and a prediction
    distribution."""

    __slots__ = (
        "requests",
        "rows",
        "user_errors",
        "system_errors",
        "compared",
        "agreed",
        "abs_diff_sum",
        "latencies",
        "labels",
        "numbers",
        "latency",
        "predictions",
    )

    def __init__(self) -> None:
        self.requests = self.rows = self.user_errors = self.system_errors = 0
        self.compared = self.agreed = 0
        self.abs_diff_sum = 0.0
        self.latencies: list[float] = []
        self.labels: Counter[Any] = Counter()
        self.numbers: list[Any] = []
        self.latency: sketch.Counts = {}
        self.predictions: dict[str, Any] = {}  # a wire distribution (aggregate.distribution)

    def count_errors(self, error: Any) -> None:
        if error == "user":
            self.user_errors += 1
        elif error == "system":
            self.system_errors += 1
        else:  # report_deployment_stats' (user_errors, system_errors) counts
            self.user_errors += error[0]
            self.system_errors += error[1]

    def count_comparison(self, sums: tuple[int, int, float]) -> None:
        self.compared += sums[0]
        self.agreed += sums[1]
        self.abs_diff_sum += sums[2]

    def count_predictions(self, predictions: Any) -> None:
        if type(predictions[0]) is str:
            self.labels.update(predictions)  # counted in C
        else:
            self.numbers.extend(predictions)

    def compact(self) -> None:
        """Raw latencies and predictions into sketches (background thread, once taken)."""
        if self.latencies:
            sketch.add_values(self.latency, self.latencies)
            self.latencies = []
        if self.labels:
            categories = {}
            for label, n in self.labels.items():
                if type(label) is str:
                    categories[label] = n
                else:  # a stray number among labels
                    self.numbers.extend([label] * n)
            merge_distribution(self.predictions, {"cat": categories})
            self.labels = Counter()
        if self.numbers:
            merge_distribution(self.predictions, distribution(self.numbers))
            self.numbers = []

    def absorb(self, other: _Stats) -> None:
        """Add another compacted tally of the same deployment, model, shadow flag and minute."""
        self.requests += other.requests
        self.rows += other.rows
        self.user_errors += other.user_errors
        self.system_errors += other.system_errors
        self.count_comparison((other.compared, other.agreed, other.abs_diff_sum))
        sketch.merge(self.latency, other.latency)
        merge_distribution(self.predictions, other.predictions)

    def to_record(self, key: StatsKey) -> Record:
        deployment_id, model_id, shadow, minute = key
        record: Record = {
            DEPLOYMENT_ID: deployment_id,
            MODEL_ID: model_id,
            "minute": minute,
            REQUESTS: self.requests,
            ROWS: self.rows,
            USER_ERRORS: self.user_errors,
            SYSTEM_ERRORS: self.system_errors,
            "latency": self.latency,
        }
        if shadow:
            record[SHADOW] = True
        if self.compared or self.agreed or self.abs_diff_sum:
            record.update({COMPARED_ROWS: self.compared, AGREED_ROWS: self.agreed, ABS_DIFF_SUM: self.abs_diff_sum})
        if self.predictions:
            record[PREDICTIONS] = self.predictions
        return record


class MonitoringReporter:
    """Batched, non-blocking reporting to a channel; also the prediction server's observer
    (deckhand.serving.observers.PredictionObserver, by its methods: nothing imported)."""

    # The prediction server hands over its tallies (count_tallies) instead of a record per
    # request, and calls it directly: it never blocks, so it needs no queue thread in front.
    per_request = False

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
        # callers count into _live under _lock; the background thread swaps it out
        self._lock = threading.Lock()
        self._live: dict[StatsKey, _Stats] = {}
        # the background thread's compacted statistics, not yet published
        self._stats: dict[StatsKey, _Stats] = {}
        self._sources: list[Callable[[], None]] = []
        self._cycles_started = self._cycles_done = 0  # of the background thread (flush waits on them)
        self.sent = 0
        self.dropped = 0
        self.publish_failures = 0
        self.last_error: str | None = None
        self._buffer: deque[Record] = deque()
        # a batch whose publish failed: retried as is, with the same message id, so that a
        # publish that reached the broker but whose confirm was lost is not counted twice
        self._retry: tuple[str, list[Record], int] | None = None
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
        *,
        shadow: bool = False,
    ) -> None:
        """One scoring call: how many rows it predicted, how long it took, how it failed;
        `shadow` when its answer was not the one returned (a challenger's)."""
        rows, latency_ms, errors = _checked_stats(
            deployment_id, num_predictions, execution_time_ms, user_errors, system_errors
        )
        self.count_request(deployment_id, model_id, time.time(), rows, latency_ms, errors, shadow=bool(shadow))

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
        self._put(data_record(deployment_id, model_id, features, predictions, class_names, association_ids))

    def report_scored(
        self,
        deployment_id: str,
        model_id: str | None,
        association_ids: list[str],
        predictions: list[Any],
        class_names: list[str] | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Each row's prediction under its association id, matched with actuals later
        (docs/accuracy.md): numbers, labels, or probability lists in `class_names` order."""
        self._put(scored_record(deployment_id, model_id, association_ids, predictions, class_names, timestamp))

    def report_actuals(self, deployment_id: str, actuals: list[dict[str, Any]]) -> None:
        """Actuals (`associationId`, `actualValue`, optional `timestamp`) through the channel,
        from an environment that cannot reach the control plane itself."""
        self._put(actuals_record(deployment_id, list(actuals)))

    def count_request(
        self,
        deployment_id: str,
        model_id: str | None,
        timestamp: float,
        rows: int,
        latency_ms: float,
        error: Any = None,
        predictions: Any = (),
        *,
        shadow: bool = False,
        comparison: tuple[int, int, float] | None = None,
    ) -> None:
        """One scoring call, counted at once.

        For trusted callers, so nothing is checked here (report_deployment_stats checks):
        `error` is None, "user", "system" or a (user_errors, system_errors) pair,
        `predictions` the predicted labels or values of the call's rows, `comparison` the
        (compared, agreed, absolute difference sum) of a shadow call's rows."""
        with self._lock:
            stats = self._live_stats(deployment_id, model_id, shadow, timestamp)
            stats.requests += 1
            stats.rows += rows
            stats.latencies.append(latency_ms)
            if error is not None:
                stats.count_errors(error)
            if predictions:
                stats.count_predictions(predictions)
            if comparison:
                stats.count_comparison(comparison)

    def add_source(self, drain: Callable[[], None]) -> None:
        """Statistics counted elsewhere -- the prediction server's RequestTally, which counts
        each request once for /metrics and monitoring alike -- and handed over (through
        `count_tallies`) when `drain` is called: the background thread calls it before each
        publish."""
        self._sources.append(drain)

    def count_tallies(self, tallies: list[Any]) -> None:
        """A RequestTally sink: each deployment's (model's) requests of one minute
        (serving.tally.Tally; its shadow flag and comparison sums as TALLY_* name them)."""
        for tally in tallies:
            latency: sketch.Counts = {}
            if tally.latencies:  # seconds; sketched here, outside the lock
                sketch.add_values(latency, np.asarray(tally.latencies, dtype=float) * 1000.0)
            shadow, sums = bool(getattr(tally, TALLY_SHADOW, False)), _comparison_of(tally)
            with self._lock:
                stats = self._live_stats(tally.deployment_id, tally.model_id, shadow, tally.minute)
                if sums:
                    stats.count_comparison(sums)
                stats.requests += tally.requests
                stats.rows += tally.rows
                stats.user_errors += tally.user_errors
                stats.system_errors += tally.system_errors
                sketch.merge(stats.latency, latency)
                stats.labels.update(tally.predictions)
                for values in tally.value_arrays:  # large regression requests: sketched, never listed
                    merge_distribution(stats.predictions, distribution(values))

    def report_features(
        self, deployment_id: str, model_id: str | None, rows: Any, timestamp: float | None = None
    ) -> None:
        """A sample of a call's input rows, for drift; its predictions are in the statistics."""
        self._put(
            {
                DEPLOYMENT_ID: deployment_id,
                MODEL_ID: model_id,
                TIMESTAMP: time.time() if timestamp is None else timestamp,
                FEATURES: columnar(rows),
            }
        )

    def submit(self, record: Any) -> None:
        """A `PredictionRecord` per request, from a server that does not keep tallies
        (deckhand's own server hands over tallies)."""
        user_errors, system_errors = int(record.error == "user"), int(record.error == "system")
        if record.error not in (None, "user", "system"):
            raise ValueError(f"error: expected None, 'user' or 'system', got {record.error!r}")
        rows, latency_ms, errors = _checked_stats(
            record.deployment_id, record.rows, record.latency_ms, user_errors, system_errors
        )
        timestamp = record.timestamp
        if type(timestamp) not in (int, float) or not math.isfinite(timestamp):
            raise ValueError(f"timestamp: expected seconds since the epoch, got {timestamp!r}")
        self.count_request(
            record.deployment_id,
            record.model_id,
            timestamp,
            rows,
            latency_ms,
            errors,
            list(record.predictions),
            shadow=bool(getattr(record, TALLY_SHADOW, False)),
            comparison=_comparison_of(record),
        )
        if record.feature_sample:
            self.report_features(record.deployment_id, record.model_id, record.feature_sample, timestamp)

    @property
    def buffered(self) -> int:
        """Reports not yet published: data records, failed batches and counted statistics."""
        retry = self._retry
        with self._lock:
            live = sum(stats.requests for stats in self._live.values())
        pending = sum(stats.requests for stats in list(self._stats.values()))
        return len(self._buffer) + (retry[2] if retry else 0) + pending + live

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
        """Wait until everything reported so far was published; False if that took longer
        than timeout. At least one whole cycle of the background thread must start after
        the call: it is the one that drains the sources."""
        deadline = time.monotonic() + timeout
        cycle = self._cycles_started + 1
        while time.monotonic() < deadline:
            self._wake.set()
            if self._cycles_done >= cycle and not self.buffered and self._idle.is_set():
                return True
            time.sleep(0.01)
        return False

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
    def _live_stats(self, deployment_id: str, model_id: str | None, shadow: bool, timestamp: float) -> _Stats:
        """The tally of a deployment's model's minute (under _lock)."""
        key = (deployment_id, model_id or None, shadow, int(timestamp // 60) * 60)
        stats = self._live.get(key)
        if stats is None:
            stats = self._live[key] = _Stats()
        return stats

    def _take_live(self) -> None:
        """Swap the callers' tallies out, compact them and add them to what waits (background thread)."""
        with self._lock:
            live, self._live = self._live, {}
        for key, stats in live.items():
            stats.compact()
            waiting = self._stats.get(key)
            if waiting is None:
                self._stats[key] = stats
            else:
                waiting.absorb(stats)

    def _put(self, record: Record) -> None:
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

    def _take(self) -> list[Record]:
        batch: list[Record] = []
        popleft = self._buffer.popleft
        try:
            for _ in range(self.batch_size):
                batch.append(popleft())
        except IndexError:
            pass
        return batch

    def _next_batch(self) -> tuple[str, list[Record], int]:
        """The failed batch again, else the statistics so far plus buffered data records."""
        if self._retry is not None:
            return self._retry
        stats, self._stats = self._stats, {}
        batch = [s.to_record(key) for key, s in stats.items()]
        data = self._take()
        batch.extend(data)
        return uuid.uuid4().hex, batch, sum(s.requests for s in stats.values()) + len(data)

    def _run(self) -> None:
        backoff = 0.0
        retry_at = 0.0
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._closed:
                return
            self._idle.clear()  # before taking: flush() must not see taken reports as gone
            self._cycles_started += 1
            for drain in self._sources:
                try:
                    drain()
                except Exception:  # a broken source must not stop the thread
                    log.exception("event=monitoring_source_failed")
            self._take_live()  # also while the channel is down: compacted, they stay small
            if time.monotonic() < retry_at:
                self._cycles_done += 1
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
            self._cycles_done += 1
            self._idle.set()


def _checked_stats(
    deployment_id: Any, rows: Any, latency_ms: Any, user_errors: Any, system_errors: Any
) -> tuple[int, float, tuple[int, int] | None]:
    """A scoring call's statistics as count_request takes them, or a ValueError naming the field."""
    if type(deployment_id) is not str or not deployment_id:
        raise ValueError(f"deployment_id: expected a non-empty string, got {deployment_id!r}")
    counts = []
    for name, value in (("num_predictions", rows), ("user_errors", user_errors), ("system_errors", system_errors)):
        try:
            count = index(value)  # ints and numpy integers; not 1.5, not "3"
        except TypeError:
            count = -1
        if count < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        counts.append(count)
    try:
        latency = float(latency_ms)
    except (TypeError, ValueError):
        latency = math.nan
    if not (latency >= 0 and math.isfinite(latency)) or isinstance(latency_ms, str | bool):
        raise ValueError(f"execution_time_ms: expected a non-negative number of milliseconds, got {latency_ms!r}")
    return counts[0], latency, (counts[1], counts[2]) if counts[1] or counts[2] else None
