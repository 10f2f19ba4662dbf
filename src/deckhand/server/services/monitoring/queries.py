"""Monitoring queries over a window of per-minute buckets: service health, the prediction
distribution, feature drift (the PSI computed by `deckhand.monitoring.drift`)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import merge_distribution
from deckhand.monitoring.drift import PSI_DRIFT, PSI_WARNING, compare
from deckhand.server.db.models import Deployment, MonitoringDistribution, MonitoringServiceBucket
from deckhand.server.errors import InvalidField
from deckhand.server.schemas.monitoring import (
    DriftThresholds,
    FeatureDriftOut,
    FeatureDriftReport,
    HealthBucket,
    HealthCounts,
    PredictionBin,
    PredictionClass,
    PredictionDistribution,
    ServiceHealth,
)
from deckhand.server.services.monitoring.storage import PREDICTION_NAME, ROLE_FEATURE, ROLE_PREDICTION

MAX_BUCKETS = 10_000
FIRST_WINDOW_SECONDS = 3600
PREDICTION_BINS = 10


def window(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """[start, end) in epoch seconds, start aligned down to a minute; default: the last hour up to this minute's end."""
    if end is None:  # the current minute, whole
        end_dt = datetime.fromtimestamp(math.ceil(time.time() / 60) * 60, UTC)
    else:
        end_dt = _utc(end)
    start_dt = _utc(start) if start else end_dt - timedelta(hours=1)
    if end_dt <= start_dt:
        raise InvalidField("end", f"must be after start ({start_dt.isoformat()}), found {end_dt.isoformat()}")
    start_s = int(start_dt.timestamp()) // 60 * 60
    return start_s, math.ceil(end_dt.timestamp())


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _percentile(latency: dict[str, int], q: float) -> float | None:
    value = sketch.quantile(latency, q)
    return round(value, 3) if value is not None else None


class _Tally:
    """Counts and a latency sketch, summed over buckets."""

    def __init__(self) -> None:
        self.requests = self.rows = self.user_errors = self.system_errors = 0
        self.latency: dict[str, int] = {}

    def add(self, row: MonitoringServiceBucket) -> None:
        self.requests += row.requests
        self.rows += row.rows
        self.user_errors += row.user_errors
        self.system_errors += row.system_errors
        sketch.merge(self.latency, row.latency or {})

    def counts(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "user_errors": self.user_errors,
            "system_errors": self.system_errors,
            "latency_p50_ms": _percentile(self.latency, 0.50),
            "latency_p99_ms": _percentile(self.latency, 0.99),
        }


def service_health(session: Session, deployment_id: str, start: int, end: int, bucket_seconds: int) -> ServiceHealth:
    if bucket_seconds % 60:
        raise InvalidField("bucketSeconds", f"must be a multiple of 60 (one minute), found {bucket_seconds}")
    count = math.ceil((end - start) / bucket_seconds)
    if count > MAX_BUCKETS:
        raise InvalidField(
            "bucketSeconds",
            f"the window holds {count} buckets of {bucket_seconds} s; at most {MAX_BUCKETS}: "
            "use a larger bucketSeconds or a shorter window",
        )
    buckets = [_Tally() for _ in range(count)]
    total = _Tally()
    rows = session.scalars(
        select(MonitoringServiceBucket).where(
            MonitoringServiceBucket.deployment_id == deployment_id,
            MonitoringServiceBucket.minute >= start,
            MonitoringServiceBucket.minute < end,
        )
    )
    for row in rows:
        buckets[(row.minute - start) // bucket_seconds].add(row)
        total.add(row)
    return ServiceHealth(
        deployment_id=deployment_id,
        start=_at(start),
        end=_at(end),
        bucket_seconds=bucket_seconds,
        totals=HealthCounts(**total.counts()),
        buckets=[HealthBucket(start=_at(start + i * bucket_seconds), **b.counts()) for i, b in enumerate(buckets)],
    )


def _distributions(session: Session, deployment_id: str, role: str, start: int, end: int) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    rows = session.scalars(
        select(MonitoringDistribution).where(
            MonitoringDistribution.deployment_id == deployment_id,
            MonitoringDistribution.role == role,
            MonitoringDistribution.minute >= start,
            MonitoringDistribution.minute < end,
        )
    )
    for row in rows:
        merge_distribution(merged.setdefault(row.name, {}), row.data or {})
    return merged


def predictions(session: Session, deployment: Deployment, start: int, end: int) -> PredictionDistribution:
    package = deployment.model_package
    target_type = package.target_type if package is not None else "unknown"
    data = _distributions(session, deployment.id, ROLE_PREDICTION, start, end).get(PREDICTION_NAME, {})
    head: dict[str, Any] = {
        "deployment_id": deployment.id,
        "start": _at(start),
        "end": _at(end),
        "target_type": target_type,
        "missing": int(data.get("missing") or 0),
    }
    categories: dict[str, int] = dict(data.get("cat") or {})
    numbers: dict[str, int] = dict(data.get("num") or {})
    if target_type in ("binary", "multiclass") or (categories and not numbers):
        labels = list(package.class_labels or []) if package is not None else []
        if numbers:  # numeric class labels arrive as numbers
            for value, n in sketch.sorted_buckets(numbers):
                label = f"{value:g}"
                categories[label] = categories.get(label, 0) + n
        names = labels + sorted(k for k in categories if k not in labels)
        total = sum(categories.values())
        classes = [
            PredictionClass(
                label=name,
                count=categories.get(name, 0),
                share=(categories.get(name, 0) / total) if total else 0.0,
            )
            for name in names
        ]
        return PredictionDistribution(**head, classes=classes, count=total)
    items = sketch.sorted_buckets(numbers)
    total = sum(n for _, n in items)
    if not items:
        return PredictionDistribution(**head, count=total, bins=[])
    low, high = items[0][0], items[-1][0]
    if high <= low:
        high = low + 1.0
    edges = [low + (high - low) * i / PREDICTION_BINS for i in range(PREDICTION_BINS + 1)]
    counts = sketch.histogram(numbers, edges)
    bins = [
        PredictionBin(start=edges[i], end=edges[i + 1], count=counts[i], share=counts[i] / total)
        for i in range(len(counts))
    ]
    return PredictionDistribution(**head, count=total, bins=bins)


def drift(session: Session, deployment: Deployment, start: int, end: int) -> FeatureDriftReport:
    """Drift against the package's training summary, else the first hour of data the deployment reported."""
    current = _distributions(session, deployment.id, ROLE_FEATURE, start, end)
    manifest = (deployment.model_package.manifest or {}) if deployment.model_package else {}
    summary = manifest.get("training_summary") or manifest.get("trainingSummary")
    extra: dict[str, Any] = {}
    baseline: Literal["package", "first-window"]
    if summary and summary.get("features"):
        baseline = "package"
        base_features: dict[str, dict[str, Any]] = dict(summary["features"])
    else:
        baseline, base_features = "first-window", {}
        first = session.scalar(
            select(MonitoringDistribution.minute)
            .where(MonitoringDistribution.deployment_id == deployment.id, MonitoringDistribution.role == ROLE_FEATURE)
            .order_by(MonitoringDistribution.minute)
            .limit(1)
        )
        if first is not None:
            base_window = (first, first + FIRST_WINDOW_SECONDS)
            base_features = _distributions(session, deployment.id, ROLE_FEATURE, *base_window)
            extra = {"baseline_start": _at(base_window[0]), "baseline_end": _at(base_window[1])}
    report = compare(base_features, current)
    return FeatureDriftReport(
        deployment_id=deployment.id,
        start=_at(start),
        end=_at(end),
        baseline=baseline,
        features=[FeatureDriftOut.model_validate(f) for f in report.features],
        features_without_data=report.features_without_data,
        thresholds=DriftThresholds(warning=PSI_WARNING, drift=PSI_DRIFT),
        **extra,
    )
