"""Prometheus metrics of one server process (own registry, so apps in tests don't clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deckhand_prediction_requests",
            "Prediction requests by deployment and HTTP status.",
            ["deployment", "status"],
            registry=self.registry,
        )
        self.rows = Counter(
            "deckhand_prediction_rows",
            "Rows predicted, by deployment.",
            ["deployment"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "deckhand_prediction_latency_seconds",
            "Time from request body received to response ready.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.models_loaded = Gauge(
            "deckhand_models_loaded", "Deployments with a model serving.", registry=self.registry
        )
        self.load_failures = Gauge(
            "deckhand_model_load_failures",
            "Model loads that failed since start.",
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[object, object, object]] = {}

    def observe(self, deployment: str, status: int, rows: int, seconds: float) -> None:
        key = (deployment, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(deployment, str(status)),
                self.rows.labels(deployment),
                self.latency.labels(deployment),
            )
            self._children[key] = children
        requests, row_counter, latency = children
        requests.inc()  # type: ignore[attr-defined]
        if rows:
            row_counter.inc(rows)  # type: ignore[attr-defined]
        latency.observe(seconds)  # type: ignore[attr-defined]

    def render(self, models_loaded: int, load_failures: int) -> bytes:
        self.models_loaded.set(models_loaded)
        self.load_failures.set(load_failures)
        return generate_latest(self.registry)
