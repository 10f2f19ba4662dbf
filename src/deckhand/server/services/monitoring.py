"""Monitoring ingest and queries over the per-minute buckets.

Ingest merges aggregates (see `deckhand.monitoring.aggregate`) into one service-health
row per deployment and minute and one distribution row per deployment, minute and
feature (or the predictions). Each aggregate names the channel source it came from; a
source already recorded is skipped, so resending a batch after a crash or a timeout
never counts anything twice, however the sender regrouped its sources.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import Aggregator, cap_categories, merge_distribution
from deckhand.monitoring.drift import PSI_DRIFT, PSI_WARNING, FeatureDrift, compare
from deckhand.server.auth import Principal
from deckhand.server.db.models import (
    Deployment,
    MonitoringDistribution,
    MonitoringServiceBucket,
    MonitoringSource,
    utcnow,
)
from deckhand.server.errors import Forbidden, InvalidField

log = logging.getLogger("deckhand.server.monitoring")

ROLE_FEATURE = "feature"
ROLE_PREDICTION = "prediction"
PREDICTION_NAME = "__prediction__"
SOURCE_RETENTION = timedelta(days=7)
MAX_BUCKETS = 10_000
FIRST_WINDOW_SECONDS = 3600
_CHUNK = 500
_last_prune = 0.0


# ----- ingest ----------------------------------------------------------------------------------


@dataclass
class IngestResult:
    accepted: int
    duplicate: bool
    skipped_sources: int
    unknown_deployments: list[str]


def _int(item: dict[str, Any], key: str, where: str) -> int:
    value = item.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidField(f"{where}.{key}", f"expected a non-negative integer, found {value!r}")
    return value


def _check_aggregate(item: dict[str, Any], where: str) -> None:
    if not isinstance(item.get("deploymentId"), str) or not item["deploymentId"]:
        raise InvalidField(f"{where}.deploymentId", "required: the deployment id the statistics belong to")
    minute = item.get("minute")
    if not isinstance(minute, int) or isinstance(minute, bool) or minute % 60:
        raise InvalidField(f"{where}.minute", f"expected epoch seconds at a whole minute, found {minute!r}")
    for key in ("requests", "rows", "userErrors", "systemErrors"):
        _int(item, key, where)
    for key in ("latency", "features", "predictions"):
        if item.get(key) is not None and not isinstance(item[key], dict):
            raise InvalidField(f"{where}.{key}", f"expected an object, found {type(item[key]).__name__}")


def normalize_records(batch_id: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregates as they are (checked); raw records are aggregated here under the batch id."""
    aggregates: list[dict[str, Any]] = []
    raw = Aggregator()
    for index, item in enumerate(records):
        where = f"records[{index}]"
        if "minute" in item:
            _check_aggregate(item, where)
            aggregates.append(item)
        else:
            if not isinstance(item.get("deploymentId"), str) or not isinstance(item.get("ts"), int | float):
                raise InvalidField(
                    where,
                    "a raw record needs deploymentId (string) and ts (epoch seconds); "
                    "an aggregate needs deploymentId and minute",
                )
            raw.add(batch_id, item)
    aggregates.extend(raw.drain())
    return aggregates


def _claim_sources(session: Session, sources: list[str], batch_id: str) -> set[str]:
    """Record the sources not seen before and return them (INSERT ... ON CONFLICT DO NOTHING
    RETURNING): a concurrent ingest of the same source waits for the other transaction and
    then gets nothing back, so exactly one of them counts it."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - other databases are not supported by the control plane
        raise RuntimeError(f"monitoring ingest does not support the {dialect} database")
    now = utcnow()
    claimed: set[str] = set()
    for i in range(0, len(sources), _CHUNK):
        chunk = sources[i : i + _CHUNK]
        statement = (
            dialect_insert(MonitoringSource)
            .values([{"source_id": s, "batch_id": batch_id, "received_at": now} for s in chunk])
            .on_conflict_do_nothing(index_elements=["source_id"])
            .returning(MonitoringSource.source_id)
        )
        claimed.update(session.scalars(statement))
    return claimed


def _check_deployments(session: Session, principal: Principal, ids: set[str]) -> set[str]:
    """Known ids (agents: only in their environments); returns the unknown ones."""
    rows = session.execute(select(Deployment.id, Deployment.environment_id).where(Deployment.id.in_(sorted(ids)))).all()
    known = {row.id for row in rows}
    for row in rows:
        if not principal.can_see_environment(row.environment_id):
            raise Forbidden(
                f"records: agent token {principal.name!r} may not report for deployment {row.id} "
                f"(environment {row.environment_id}); give the token that environment in environmentIds"
            )
    return ids - known


def ingest(session: Session, principal: Principal, batch_id: str, records: list[dict[str, Any]]) -> IngestResult:
    aggregates = normalize_records(batch_id, records)
    for item in aggregates:
        item["sourceId"] = str(item.get("sourceId") or batch_id)
    sources = sorted({item["sourceId"] for item in aggregates} or {batch_id})  # sorted: one lock order
    claimed = _claim_sources(session, sources, batch_id)
    fresh = [item for item in aggregates if item["sourceId"] in claimed]
    skipped = len(sources) - len(claimed)
    if not claimed:
        return IngestResult(0, True, skipped, [])
    unknown = _check_deployments(session, principal, {item["deploymentId"] for item in fresh}) if fresh else set()
    if unknown:
        log.warning("event=monitoring_unknown_deployments batch=%s deployments=%s", batch_id, sorted(unknown))
    usable = [item for item in fresh if item["deploymentId"] not in unknown]
    _merge_service(session, usable)
    _merge_distributions(session, usable)
    _maybe_prune(session)
    return IngestResult(len(usable), False, skipped, sorted(unknown))


def _merge_service(session: Session, items: list[dict[str, Any]]) -> None:
    combined: dict[tuple[str, int], dict[str, Any]] = {}
    for item in items:
        key = (item["deploymentId"], item["minute"])
        row = combined.get(key)
        if row is None:
            row = combined[key] = {
                "deployment_id": key[0],
                "minute": key[1],
                "model_id": None,
                "requests": 0,
                "rows": 0,
                "user_errors": 0,
                "system_errors": 0,
                "latency": {},
            }
        row["model_id"] = item.get("modelId") or row["model_id"]
        row["requests"] += item.get("requests", 0)
        row["rows"] += item.get("rows", 0)
        row["user_errors"] += item.get("userErrors", 0)
        row["system_errors"] += item.get("systemErrors", 0)
        sketch.merge(row["latency"], item.get("latency") or {})
    if not combined:
        return
    by_deployment: dict[str, list[int]] = defaultdict(list)
    for dep, minute in combined:
        by_deployment[dep].append(minute)
    existing: dict[tuple[str, int], MonitoringServiceBucket] = {}
    for dep, minutes in by_deployment.items():
        for bucket in session.scalars(
            select(MonitoringServiceBucket)
            .where(MonitoringServiceBucket.deployment_id == dep, MonitoringServiceBucket.minute.in_(sorted(minutes)))
            .order_by(MonitoringServiceBucket.minute)
            .with_for_update()  # PostgreSQL: no lost update between concurrent ingests
        ):
            existing[(bucket.deployment_id, bucket.minute)] = bucket
    inserts, updates = [], []
    for key, row in combined.items():
        old = existing.get(key)
        if old is None:
            inserts.append(row)
            continue
        updates.append(
            {
                "deployment_id": key[0],
                "minute": key[1],
                "model_id": row["model_id"] or old.model_id,
                "requests": old.requests + row["requests"],
                "rows": old.rows + row["rows"],
                "user_errors": old.user_errors + row["user_errors"],
                "system_errors": old.system_errors + row["system_errors"],
                "latency": sketch.merge(dict(old.latency or {}), row["latency"]),
            }
        )
    if inserts:
        session.execute(insert(MonitoringServiceBucket), inserts)
    if updates:
        session.execute(update(MonitoringServiceBucket), updates)


def _merge_distributions(session: Session, items: list[dict[str, Any]]) -> None:
    combined: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for item in items:
        parts = [(ROLE_FEATURE, str(name), data) for name, data in (item.get("features") or {}).items()]
        if item.get("predictions"):
            parts.append((ROLE_PREDICTION, PREDICTION_NAME, item["predictions"]))
        for role, name, data in parts:
            if not isinstance(data, dict):
                continue
            key = (item["deploymentId"], item["minute"], role, name[:200])
            merge_distribution(combined.setdefault(key, {}), data)
    if not combined:
        return
    by_deployment: dict[str, set[int]] = defaultdict(set)
    for dep, minute, _role, _name in combined:
        by_deployment[dep].add(minute)
    existing: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for dep, minutes in by_deployment.items():
        for row in session.scalars(
            select(MonitoringDistribution)
            .where(MonitoringDistribution.deployment_id == dep, MonitoringDistribution.minute.in_(sorted(minutes)))
            .order_by(MonitoringDistribution.minute, MonitoringDistribution.role, MonitoringDistribution.name)
            .with_for_update()
        ):
            existing[(row.deployment_id, row.minute, row.role, row.name)] = row.data or {}
    inserts, updates = [], []
    for key, data in combined.items():
        values = {"deployment_id": key[0], "minute": key[1], "role": key[2], "name": key[3]}
        if key in existing:
            updates.append({**values, "data": merge_distribution(dict(existing[key]), data)})
        else:
            inserts.append({**values, "data": data})
    if inserts:
        session.execute(insert(MonitoringDistribution), inserts)
    if updates:
        session.execute(update(MonitoringDistribution), updates)


def _maybe_prune(session: Session) -> None:
    """Forget counted sources after SOURCE_RETENTION (checked at most once an hour)."""
    global _last_prune
    if time.monotonic() - _last_prune < 3600:
        return
    _last_prune = time.monotonic()
    session.execute(delete(MonitoringSource).where(MonitoringSource.received_at < utcnow() - SOURCE_RETENTION))


# ----- queries ---------------------------------------------------------------------------------


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


__all__ = ["cap_categories", "ingest", "service_health", "predictions", "drift", "window"]
