"""Prometheus metrics of one server process (own registry, so apps in tests don't clash).

Request counts, rows and latencies come from the server's `RequestTally` (one count per
request, shared with monitoring): `absorb` adds drained tallies to running totals, a
vectorised bucket search per drain instead of a lock and a search per request, and a
collector exposes the totals as the usual counters and histogram.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from deckhand.serving.tally import Tally

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_BOUNDS = np.asarray(LATENCY_BUCKETS, dtype=float)
_BOUND_LABELS = [str(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]  # the histogram's `le`


class _Latency:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64)  # the last: +Inf
        self.total = 0.0


class ServerMetrics(Collector):
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._rows: dict[str, int] = {}
        self._latency: dict[str, _Latency] = {}
        self.registry.register(self)
        self.models_loaded = Gauge(
            "deckhand_models_loaded", "Deployments with a model serving.", registry=self.registry
        )
        self.load_failures = Gauge(
            "deckhand_model_load_failures",
            "Model loads that failed since start.",
            registry=self.registry,
        )

    def absorb(self, tallies: list[Tally]) -> None:
        """Add drained tallies to the totals (a RequestTally sink; any thread)."""
        with self._lock:
            for tally in tallies:
                if tally.shadow:  # not what a client got: the answering model's tally counts the request
                    continue
                for status, n in tally.statuses.items():
                    key = (tally.key, status)
                    self._requests[key] = self._requests.get(key, 0) + n
                self._rows[tally.key] = self._rows.get(tally.key, 0) + tally.rows
                if tally.latencies:
                    values = np.asarray(tally.latencies, dtype=float)
                    latency = self._latency.get(tally.key) or self._latency.setdefault(tally.key, _Latency())
                    # a value equal to a bound belongs to that bound's bucket (le = "<=")
                    index = np.searchsorted(_BOUNDS, values, side="left")
                    latency.buckets += np.bincount(index, minlength=len(latency.buckets))
                    latency.total += float(values.sum())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = CounterMetricFamily(
                "deckhand_prediction_requests",
                "Prediction requests by deployment and HTTP status.",
                labels=["deployment", "status"],
            )
            for (deployment, status), n in sorted(self._requests.items()):
                requests.add_metric([deployment, str(status)], n)
            rows = CounterMetricFamily(
                "deckhand_prediction_rows", "Rows predicted, by deployment.", labels=["deployment"]
            )
            for deployment, n in sorted(self._rows.items()):
                rows.add_metric([deployment], n)
            latency = HistogramMetricFamily(
                "deckhand_prediction_latency_seconds",
                "Time from request body received to response ready.",
                labels=["deployment"],
            )
            for deployment, data in sorted(self._latency.items()):
                cumulative = np.cumsum(data.buckets).tolist()
                latency.add_metric([deployment], list(zip(_BOUND_LABELS, cumulative, strict=True)), data.total)
        yield requests
        yield rows
        yield latency

    def render(self, models_loaded: int, load_failures: int) -> bytes:
        self.models_loaded.set(models_loaded)
        self.load_failures.set(load_failures)
        return generate_latest(self.registry)
