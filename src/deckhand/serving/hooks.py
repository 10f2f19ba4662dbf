"""The monitoring hook of the prediction server: one record per request, never in the way.

The server hands each request's `PredictionRecord` to a `Reporter`. Whatever reporter is
configured is wrapped in a `BackgroundReporter`: `submit` only puts the record on a
bounded queue (dropping, and counting, when it is full) and a daemon thread feeds the real
reporter, so a slow or failing channel can neither block nor fail a response. A
`TallyReporter` (deckhand's MonitoringReporter) skips all that: it takes the counts the
server keeps anyway for /metrics, a minute at a time.

Channels are chosen by a spec string (`DECKHAND_MONITORING` or `deckhand serve
--monitoring`). Monitoring code registers channel kinds with `register_channel`; until it
does, only `off` and `memory` exist and any other spec is a start-up error.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

log = logging.getLogger("deckhand.serving.monitoring")

MONITORING_ENV = "DECKHAND_MONITORING"
ErrorKind = Literal["user", "system"]


@dataclass(slots=True)
class PredictionRecord:
    """What one prediction request reports to monitoring (slotted: the server builds one
    per request, and slots with positional arguments make that 0.3 us instead of 2)."""

    deployment_id: str
    model_id: str | None
    rows: int
    latency_ms: float
    status_code: int
    error: ErrorKind | None = None
    predictions: list[Any] = field(default_factory=list)
    feature_sample: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] | None = None
    timestamp: float = field(default_factory=time.time)


@runtime_checkable
class Reporter(Protocol):
    """Receives prediction records. Implementations may be slow; the server never waits."""

    def submit(self, record: PredictionRecord) -> None: ...


class TallyReporter(Reporter, Protocol):
    """The fast path. The server counts each request once, for /metrics and monitoring
    alike, into a `deckhand.serving.tally.RequestTally`; a reporter that offers these
    methods is handed the counts instead of a PredictionRecord per request: its thread
    drains the tally (`add_source`), which calls `count_tallies` with each deployment's
    counts, latencies and predicted labels of a minute. Feature samples, at most
    `feature_samples_per_second` requests a second, go to `report_features`."""

    feature_samples_per_second: int

    def add_source(self, drain: Callable[[], None]) -> None: ...

    def count_tallies(self, tallies: list[Any]) -> None: ...

    def report_features(
        self, deployment_id: str, model_id: str | None, rows: list[dict[str, Any]], timestamp: float
    ) -> None: ...


class InMemoryReporter:
    """Keeps every record in a list (tests, demos)."""

    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []
        self._lock = threading.Lock()
        self.received = threading.Event()

    def submit(self, record: PredictionRecord) -> None:
        with self._lock:
            self.records.append(record)
        self.received.set()


class BackgroundReporter:
    """Non-blocking front for any reporter: a bounded queue and one daemon thread."""

    def __init__(self, inner: Reporter, *, max_queue: int = 10_000) -> None:
        self.inner = inner
        self.dropped = 0
        self.failed = 0
        self.delivered = 0
        self._queue: queue.Queue[PredictionRecord | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="deckhand-monitoring", daemon=True)
        self._thread.start()

    def submit(self, record: PredictionRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event=monitoring_queue_full dropped=%d", self.dropped)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                self.inner.submit(record)
                self.delivered += 1
            except Exception as exc:  # a broken channel must not stop the thread
                self.failed += 1
                if self.failed == 1 or self.failed % 1000 == 0:
                    log.warning("event=monitoring_submit_failed failures=%d error=%r", self.failed, exc)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        close = getattr(self.inner, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:
                log.warning("event=monitoring_close_failed error=%r", exc)


class MonitoringConfigError(ValueError):
    """The monitoring channel spec is not one this build knows."""


ChannelFactory = Callable[[str], Reporter]
_CHANNELS: dict[str, ChannelFactory] = {
    "memory": lambda _rest: InMemoryReporter(),
}
_OFF = ("", "off", "none", "disabled")


def register_channel(kind: str, factory: ChannelFactory) -> None:
    """Make `kind:...` specs build a reporter with `factory(rest_of_spec)`."""
    _CHANNELS[kind] = factory


def reporter_from_spec(spec: str | None) -> Reporter | None:
    """The reporter a spec names (`off` -> None); an unknown spec raises a clear error."""
    text = (spec or "").strip()
    if text.lower() in _OFF:
        return None
    kind, _, rest = text.partition(":")
    factory = _CHANNELS.get(kind)
    if factory is None:
        import deckhand.monitoring  # noqa: F401 - registers the built-in spool and amqp channels

        factory = _CHANNELS.get(kind)
    if factory is None:
        _load_channel_plugins()
        factory = _CHANNELS.get(kind)
    if factory is None:
        known = ", ".join(["off", *sorted(_CHANNELS)])
        raise MonitoringConfigError(
            f"monitoring spec {text!r} (--monitoring or {MONITORING_ENV}): unknown channel {kind!r}; "
            f"known channels: {known}. Unset it (or set 'off') to serve without monitoring"
        )
    return factory(rest)


def _load_channel_plugins() -> None:
    """Channels from the `deckhand.monitoring_channels` entry-point group, if any."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="deckhand.monitoring_channels"):
        try:
            register_channel(entry.name, entry.load())
        except Exception as exc:
            log.warning("event=monitoring_channel_load_failed name=%s error=%r", entry.name, exc)


def background(reporter: Reporter | None) -> BackgroundReporter | None:
    """Wrap a reporter so that submitting never blocks; None stays None."""
    if reporter is None or isinstance(reporter, BackgroundReporter):
        return reporter
    if getattr(reporter, "non_blocking", False):  # e.g. MonitoringReporter: already batched in a thread
        return reporter  # type: ignore[return-value]
    return BackgroundReporter(reporter)
