"""Monitoring queries over a window of per-minute buckets: service health, the prediction
distribution, feature drift (the PSI computed by `deckhand.monitoring.drift`)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import merge_distribution
from deckhand.monitoring.drift import PSI_DRIFT, PSI_WARNING, FeatureDrift, compare
from deckhand.server.db.models import Deployment, MonitoringDistribution, MonitoringServiceBucket
from deckhand.server.errors import InvalidField
from deckhand.server.services.monitoring.storage import PREDICTION_NAME, ROLE_FEATURE, ROLE_PREDICTION

MAX_BUCKETS = 10_000
FIRST_WINDOW_SECONDS = 3600


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


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _percentiles(latency: dict[str, int]) -> tuple[float | None, float | None]:
    p50 = sketch.quantile(latency, 0.50)
    p99 = sketch.quantile(latency, 0.99)
    return (round(p50, 3) if p50 is not None else None, round(p99, 3) if p99 is not None else None)


def service_health(session: Session, deployment_id: str, start: int, end: int, bucket_seconds: int) -> dict[str, Any]:
    if bucket_seconds % 60:
        raise InvalidField("bucketSeconds", f"must be a multiple of 60 (one minute), found {bucket_seconds}")
    count = math.ceil((end - start) / bucket_seconds)
    if count > MAX_BUCKETS:
        raise InvalidField(
            "bucketSeconds",
            f"the window holds {count} buckets of {bucket_seconds} s; at most {MAX_BUCKETS}: "
            "use a larger bucketSeconds or a shorter window",
        )
    buckets: list[dict[str, Any]] = [
        {"requests": 0, "rows": 0, "userErrors": 0, "systemErrors": 0, "latency": {}} for _ in range(count)
    ]
    total: dict[str, Any] = {"requests": 0, "rows": 0, "userErrors": 0, "systemErrors": 0, "latency": {}}
    rows = session.scalars(
        select(MonitoringServiceBucket).where(
            MonitoringServiceBucket.deployment_id == deployment_id,
            MonitoringServiceBucket.minute >= start,
            MonitoringServiceBucket.minute < end,
        )
    )
    for row in rows:
        index = (row.minute - start) // bucket_seconds
        for target in (buckets[index], total):
            target["requests"] += row.requests
            target["rows"] += row.rows
            target["userErrors"] += row.user_errors
            target["systemErrors"] += row.system_errors
            sketch.merge(target["latency"], row.latency or {})

    def finish(data: dict[str, Any]) -> dict[str, Any]:
        p50, p99 = _percentiles(data.pop("latency"))
        return {**data, "latencyP50Ms": p50, "latencyP99Ms": p99}

    return {
        "deploymentId": deployment_id,
        "start": iso(start),
        "end": iso(end),
        "bucketSeconds": bucket_seconds,
        "totals": finish(total),
        "buckets": [{"start": iso(start + i * bucket_seconds), **finish(b)} for i, b in enumerate(buckets)],
    }


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


def predictions(session: Session, deployment: Deployment, start: int, end: int) -> dict[str, Any]:
    package = deployment.model_package
    target_type = package.target_type if package is not None else "unknown"
    data = _distributions(session, deployment.id, ROLE_PREDICTION, start, end).get(PREDICTION_NAME, {})
    out: dict[str, Any] = {
        "deploymentId": deployment.id,
        "start": iso(start),
        "end": iso(end),
        "targetType": target_type,
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
        out["classes"] = [
            {
                "label": name,
                "count": categories.get(name, 0),
                "share": (categories.get(name, 0) / total) if total else 0.0,
            }
            for name in names
        ]
        out["count"] = total
        return out
    items = sketch.sorted_buckets(numbers)
    total = sum(n for _, n in items)
    out["count"] = total
    if not items:
        out["bins"] = []
        return out
    low, high = items[0][0], items[-1][0]
    if high <= low:
        high = low + 1.0
    edges = [low + (high - low) * i / 10 for i in range(11)]
    counts = sketch.histogram(numbers, edges)
    out["bins"] = [
        {"start": edges[i], "end": edges[i + 1], "count": counts[i], "share": counts[i] / total}
        for i in range(len(counts))
    ]
    return out


def _feature_out(result: FeatureDrift) -> dict[str, Any]:
    return {
        "name": result.name,
        "kind": result.kind,
        "psi": result.psi,
        "status": result.status,
        "bins": result.bins,
        "baselineShare": result.baseline_share,
        "currentShare": result.current_share,
        "baselineCount": result.baseline_count,
        "currentCount": result.current_count,
    }


def drift(session: Session, deployment: Deployment, start: int, end: int) -> dict[str, Any]:
    current = _distributions(session, deployment.id, ROLE_FEATURE, start, end)
    manifest = (deployment.model_package.manifest or {}) if deployment.model_package else {}
    summary = manifest.get("training_summary") or manifest.get("trainingSummary")
    baseline_kind = "package"
    base_features: dict[str, dict[str, Any]] = {}
    base_window: tuple[int, int] | None = None
    if summary and summary.get("features"):
        base_features = dict(summary["features"])
    else:
        baseline_kind = "first-window"
        first = session.scalar(
            select(MonitoringDistribution.minute)
            .where(MonitoringDistribution.deployment_id == deployment.id, MonitoringDistribution.role == ROLE_FEATURE)
            .order_by(MonitoringDistribution.minute)
            .limit(1)
        )
        if first is not None:
            base_window = (first, first + FIRST_WINDOW_SECONDS)
            base_features = _distributions(session, deployment.id, ROLE_FEATURE, *base_window)
    report = compare(base_features, current)
    out: dict[str, Any] = {
        "deploymentId": deployment.id,
        "start": iso(start),
        "end": iso(end),
        "baseline": baseline_kind,
        "features": [_feature_out(f) for f in report.features],
        "featuresWithoutData": report.features_without_data,
        "thresholds": {"warning": PSI_WARNING, "drift": PSI_DRIFT},
    }
    if base_window is not None:
        out["baselineStart"], out["baselineEnd"] = iso(base_window[0]), iso(base_window[1])
    return out
