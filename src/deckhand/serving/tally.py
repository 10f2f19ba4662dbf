"""Per-request accounting of the prediction server, shared by /metrics and monitoring.

Each request is counted once, into its deployment's `Tally` for the current minute: a
lock, a few integer updates and one list append. What is costly -- the latency
histogram buckets of /metrics, the per-minute latency sketch and label counts of
monitoring -- is computed from the collected values in one vectorised pass per drain,
when a /metrics scrape or the monitoring reporter's thread asks (`drain`), or when
`MAX_PENDING` latencies wait. prometheus_client's own Counter and Histogram take a lock
and search the buckets on every call, and monitoring counting the same request again on
its own would do that work twice.

A tally is kept per deployment, answering model and shadow flag: in a mix (a canary, or
challengers) several models answer for one deployment, and monitoring compares them.
Shadow tallies count what a model scored without answering the client (a challenger, or a
canary whose failure the champion covered); /metrics leaves them out.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_PENDING = 4096  # latencies per deployment before the request that adds one drains


class Tally:
    """One deployment's requests answered by one model within one minute, since the last drain."""

    __slots__ = (
        "key",
        "deployment_id",
        "model_id",
        "minute",
        "statuses",
        "rows",
        "user_errors",
        "system_errors",
        "latencies",
        "predictions",
        "value_arrays",
        "shadow",
        "compared_rows",
        "agreed_rows",
        "abs_diff_sum",
    )

    def __init__(self, key: str, deployment_id: str, model_id: str | None, minute: int, shadow: bool = False) -> None:
        self.key = key  # the server's name for the deployment (its directory; /metrics' label)
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.minute = minute  # epoch seconds, a multiple of 60
        self.statuses: dict[int, int] = {}  # HTTP status -> requests
        self.rows = 0
        self.user_errors = 0
        self.system_errors = 0
        self.latencies: list[float] = []  # seconds, one per request
        self.predictions: dict[Any, int] = {}  # predicted label or value -> rows (a plain dict: faster)
        # the predicted values of large regression requests, kept as arrays (8 bytes a row)
        # rather than as a dict entry per distinct value; the reporter sketches them
        self.value_arrays: list[np.ndarray] = []
        self.shadow = shadow  # scored a copy: its answer was not the one returned
        # rows compared with the champion's answers (challengers): equal, and |difference| summed
        self.compared_rows = 0
        self.agreed_rows = 0
        self.abs_diff_sum = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


Sink = Callable[[list[Tally]], None]


class RequestTally:
    """The tallies of every deployment of one server. `observe` is the per-request call;
    `drain` hands what was counted to every sink (any thread may call it)."""

    def __init__(self, *, count_predictions: bool = False) -> None:
        self.count_predictions = count_predictions  # only monitoring wants them
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()
        # deployment key -> model id -> tally (two lookups, no key tuple built per request)
        self._tallies: dict[str, dict[str | None, Tally]] = {}
        self._shadow: dict[str, dict[str | None, Tally]] = {}
        self._done: list[Tally] = []  # of earlier minutes, not drained yet
        self._minute = 0
        self._minute_end = 0.0

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def observe(
        self,
        key: str,
        deployment_id: str,
        model_id: str | None,
        now: float,
        status: int,
        rows: int,
        seconds: float,
        error: str | None,
        predictions: list[Any] | np.ndarray,
        shadow: bool = False,
        comparison: tuple[int, int, float] | None = None,
        requests: int = 1,
    ) -> None:
        """One request (`now` from time.time(); `seconds` its latency). `predictions` are the
        predicted labels or values, or an array of values for a large regression request.
        `shadow`: the model scored a copy and did not answer; `comparison`: (compared rows,
        agreed rows, sum of |difference|) against the champion's answers. `requests` > 1:
        that many requests scored in one call (a challenger's), `rows` and `predictions`
        theirs together, each with the call's `seconds`."""
        with self._lock:
            if not self._minute <= now < self._minute_end:
                self._new_minute(now)
            tallies = self._shadow if shadow else self._tallies
            by_model = tallies.get(key)
            if by_model is None:
                by_model = tallies[key] = {}
            tally = by_model.get(model_id)
            if tally is None:
                tally = by_model[model_id] = Tally(key, deployment_id, model_id, self._minute, shadow)
            statuses = tally.statuses
            statuses[status] = statuses.get(status, 0) + requests
            tally.rows += rows
            if requests == 1:
                tally.latencies.append(seconds)
            else:
                tally.latencies.extend([seconds] * requests)
            if error is not None:
                if error == "user":
                    tally.user_errors += requests
                else:
                    tally.system_errors += requests
            if comparison is not None:
                tally.compared_rows += comparison[0]
                tally.agreed_rows += comparison[1]
                tally.abs_diff_sum += comparison[2]
            if self.count_predictions and len(predictions):
                counts = tally.predictions
                if isinstance(predictions, np.ndarray):
                    tally.value_arrays.append(predictions)
                elif len(predictions) == 1:  # one row: no Counter to build
                    value = predictions[0]
                    counts[value] = counts.get(value, 0) + 1
                else:
                    for value, n in Counter(predictions).items():  # counted in C
                        counts[value] = counts.get(value, 0) + n
            full = len(tally.latencies) >= MAX_PENDING
        if full:  # nobody drained for a while (no scrapes, no monitoring): keep memory bounded
            self.drain()

    def absorb(self, tallies: list[Tally]) -> None:
        """Tallies counted elsewhere (the challengers' scorer process), drained with the next
        drain: a few objects per model and minute, so the request path hardly waits."""
        with self._lock:
            for tally in tallies:
                if not self.count_predictions:
                    tally.predictions, tally.value_arrays = {}, []
            self._done.extend(tallies)
            full = sum(len(t.latencies) for t in self._done) >= MAX_PENDING
        if full:
            self.drain()

    def drain(self) -> None:
        """Hand everything counted so far to the sinks."""
        with self._lock:
            taken = self._done + _flat(self._tallies) + _flat(self._shadow)
            self._done = []
            self._tallies = {}
            self._shadow = {}
        if taken:
            for sink in self._sinks:
                sink(taken)

    def _new_minute(self, now: float) -> None:
        """Tallies never span two minutes: the minute's go to `_done` (under the lock)."""
        minute = int(now // 60) * 60
        self._done.extend(_flat(self._tallies) + _flat(self._shadow))
        self._tallies = {}
        self._shadow = {}
        self._minute, self._minute_end = minute, minute + 60.0


def _flat(tallies: dict[str, dict[str | None, Tally]]) -> list[Tally]:
    return [tally for by_model in tallies.values() for tally in by_model.values()]
