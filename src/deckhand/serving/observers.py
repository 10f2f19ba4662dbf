"""What the prediction server tells monitoring about the requests it serves, never in the way.

The server talks to one interface, `PredictionObserver`, in one of two ways the observer
chooses with `per_request`:

- counts (`per_request` False; deckhand's `MonitoringReporter`): the server counts each
  request once into its `deckhand.serving.tally.RequestTally`, for /metrics and
  monitoring alike, and hands the observer each deployment's counts of a minute when the
  tally drains (`count_tallies`; `add_source` gives the observer the drain, which its
  thread calls before it publishes). Feature samples, at most `feature_samples_per_second`
  requests a second, go to `report_features`. No call per request.
- records (`per_request` True): one `PredictionRecord` per request, feature sample
  included, to `submit`.

An object that only has `submit(record)` (a `RecordObserver`: tests, custom hooks) is
wrapped in a `BackgroundObserver`: `submit` only puts the record on a bounded queue
(dropping, and counting, when it is full) and a daemon thread feeds the real one, so a
slow or failing observer can neither block nor fail a response.

Which observer a server gets is chosen by a monitoring spec (`DECKHAND_MONITORING` or
`deckhand serve --monitoring`): `off`, `memory`, or a monitoring channel (`spool:...`,
`amqp://...`) that a `MonitoringReporter` writes to. `OBSERVERS` names them; third parties
add kinds through the `deckhand.observers` entry-point group.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from deckhand import extras
from deckhand.registry import Registry

if TYPE_CHECKING:
    from deckhand.serving.tally import Tally

log = logging.getLogger("deckhand.serving.monitoring")

MONITORING_ENV = "DECKHAND_MONITORING"
OBSERVER_GROUP = "deckhand.observers"
LEGACY_OBSERVER_GROUP = "deckhand.monitoring_channels"  # read too: packages written before the rename
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
    # a copy scored by a model that did not answer (challenger, failed canary), and its rows
    # compared with the champion's answers: agreed, and the sum of |difference| (regression)
    shadow: bool = False
    compared_rows: int = 0
    agreed_rows: int = 0
    abs_diff_sum: float = 0.0


@runtime_checkable
class PredictionObserver(Protocol):
    """The one interface the prediction server reports through (see the module docstring).

    `per_request` False: the server calls `add_source` once, `count_tallies` per drain of
    its tally and `report_features` per sampled request. True: `submit` per request.
    `feature_samples_per_second` None means every request carries a sample. `close` at
    shutdown. No method may block the caller for long: the server calls them on its
    event loop."""

    @property
    def per_request(self) -> bool: ...

    @property
    def feature_samples_per_second(self) -> int | None: ...

    def add_source(self, drain: Callable[[], None]) -> None: ...

    def count_tallies(self, tallies: list[Tally]) -> None: ...

    def report_features(
        self, deployment_id: str, model_id: str | None, rows: list[dict[str, Any]], timestamp: float
    ) -> None: ...

    def submit(self, record: PredictionRecord) -> None: ...

    def close(self, timeout: float = 5.0) -> None: ...


@runtime_checkable
class RecordObserver(Protocol):
    """The simplest observer: a PredictionRecord per request. It may be slow; the server
    wraps it in a BackgroundObserver and never waits for it."""

    def submit(self, record: PredictionRecord) -> None: ...


class InMemoryObserver:
    """Keeps every record in a list (tests, demos)."""

    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []
        self._lock = threading.Lock()
        self.received = threading.Event()

    def submit(self, record: PredictionRecord) -> None:
        with self._lock:
            self.records.append(record)
        self.received.set()


class BackgroundObserver:
    """A PredictionObserver in front of any RecordObserver: a bounded queue and one daemon
    thread, so submitting never blocks."""

    per_request = True  # records, with their feature sample: no tallies to take
    feature_samples_per_second: int | None = None

    def __init__(self, inner: RecordObserver, *, max_queue: int = 10_000) -> None:
        self.inner = inner
        self.dropped = 0
        self.failed = 0
        self.delivered = 0
        self._queue: queue.Queue[PredictionRecord | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="deckhand-monitoring", daemon=True)
        self._thread.start()

    def add_source(self, drain: Callable[[], None]) -> None:
        """Nothing to drain: the records came one by one."""

    def count_tallies(self, tallies: list[Tally]) -> None:
        """Not called: a per-request observer gets records, not tallies."""

    def report_features(
        self, deployment_id: str, model_id: str | None, rows: list[dict[str, Any]], timestamp: float
    ) -> None:
        """Not called: feature samples travel in the records."""

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
            except Exception as exc:  # a broken observer must not stop the thread
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


def as_observer(observer: PredictionObserver | RecordObserver | None) -> PredictionObserver | None:
    """What the server calls: a PredictionObserver as it is, anything else with `submit`
    behind a BackgroundObserver; None stays None."""
    if observer is None or isinstance(observer, PredictionObserver):
        return observer
    return BackgroundObserver(observer)


class MonitoringConfigError(ValueError):
    """The monitoring spec is not one this build knows, or cannot work."""


# `factory(rest_of_spec)` -> the observer for specs `kind:rest_of_spec`.
ObserverFactory = Callable[[str], "PredictionObserver | RecordObserver"]

OBSERVERS: Registry[ObserverFactory] = Registry(
    "channel",
    {
        "memory": "deckhand.serving.observers:in_memory",
        "spool": "deckhand.serving.observers:spool_reporter",
        "amqp": "deckhand.serving.observers:amqp_reporter",
        "amqps": "deckhand.serving.observers:amqps_reporter",
    },
    groups=(OBSERVER_GROUP, LEGACY_OBSERVER_GROUP),
    requirements=extras.CHANNELS,
    error=MonitoringConfigError,
    hint="unset it (or set 'off') to serve without monitoring",
)
_OFF = ("", "off", "none", "disabled")


def observer_from_spec(spec: str | None) -> PredictionObserver | RecordObserver | None:
    """The observer a spec names (`off` -> None); an unknown spec raises a clear error."""
    text = (spec or "").strip()
    if text.lower() in _OFF:
        return None
    kind, _, rest = text.partition(":")
    factory = OBSERVERS.load(kind, context=f"monitoring spec {text!r} (--monitoring or {MONITORING_ENV})")
    return factory(rest)


# -- the built-in kinds ---------------------------------------------------------------------
def in_memory(_rest: str) -> InMemoryObserver:
    return InMemoryObserver()


def spool_reporter(rest: str) -> PredictionObserver:
    return _monitoring_reporter(f"spool:{rest}")


def amqp_reporter(rest: str) -> PredictionObserver:
    return _monitoring_reporter(f"amqp:{rest}")


def amqps_reporter(rest: str) -> PredictionObserver:
    return _monitoring_reporter(f"amqps:{rest}")


def _monitoring_reporter(spec: str) -> PredictionObserver:
    """A MonitoringReporter writing to the channel `spec` names (imported only now: serving
    uses monitoring, monitoring never imports serving)."""
    from deckhand.monitoring.channels import ChannelConfigError
    from deckhand.monitoring.reporter import MonitoringReporter

    try:
        return MonitoringReporter(spec)
    except ChannelConfigError as exc:  # `deckhand serve` reports it as a start-up error
        raise MonitoringConfigError(f"monitoring spec (--monitoring or {MONITORING_ENV}): {exc}") from None
