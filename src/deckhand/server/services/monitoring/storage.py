"""The monitoring tables: claim sources once, merge aggregates into per-minute buckets,
forget old sources.

One service-health row per deployment and minute, one distribution row per deployment,
minute and feature (or the predictions). A merge reads the touched rows (locked on
PostgreSQL: `SELECT ... FOR UPDATE`), adds, and bulk-inserts or -updates. Claiming a
source is `INSERT ... ON CONFLICT DO NOTHING RETURNING`, in the dialect of the database
(SQLite or PostgreSQL).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import merge_distribution
from deckhand.server.db.models import MonitoringDistribution, MonitoringServiceBucket, MonitoringSource, utcnow
from deckhand.server.schemas.monitoring import MonitoringAggregate

ROLE_FEATURE = "feature"
ROLE_PREDICTION = "prediction"
PREDICTION_NAME = "__prediction__"
MAX_NAME_LENGTH = 200  # MonitoringDistribution.name
SOURCE_RETENTION = timedelta(days=7)
PRUNE_INTERVAL_SECONDS = 3600.0
_CHUNK = 500


def claim_sources(session: Session, sources: list[str], batch_id: str) -> set[str]:
    """Record the sources not seen before and return them (INSERT ... ON CONFLICT DO NOTHING
    RETURNING): a concurrent ingest of the same source waits for the other transaction and
    then gets nothing back, so exactly one of them counts it."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
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


def merge_service(session: Session, items: list[MonitoringAggregate]) -> None:
    """Add the aggregates' counts and latency sketches to their (deployment, minute) rows."""
    combined: dict[tuple[str, int], dict[str, Any]] = {}
    for item in items:
        key = (item.deployment_id, item.minute)
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
        row["model_id"] = item.model_id or row["model_id"]
        row["requests"] += item.requests
        row["rows"] += item.rows
        row["user_errors"] += item.user_errors
        row["system_errors"] += item.system_errors
        sketch.merge(row["latency"], item.latency)
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


def merge_distributions(session: Session, items: list[MonitoringAggregate]) -> None:
    """Add the aggregates' feature and prediction distributions to their rows (a value
    that is not a distribution object is skipped)."""
    combined: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for item in items:
        parts = [(ROLE_FEATURE, str(name), data) for name, data in item.features.items()]
        if item.predictions:
            parts.append((ROLE_PREDICTION, PREDICTION_NAME, item.predictions))
        for role, name, data in parts:
            if not isinstance(data, dict):
                continue
            key = (item.deployment_id, item.minute, role, name[:MAX_NAME_LENGTH])
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


def prune_sources(session: Session, received_before: datetime) -> None:
    """Forget the sources counted before `received_before` (a resend of one is counted again)."""
    session.execute(delete(MonitoringSource).where(MonitoringSource.received_at < received_before))


@dataclass
class SourceRetention:
    """When one control plane last pruned its counted sources: it forgets those older than
    `keep`, at most once per `interval_seconds` (the first ingest after start prunes).

    Held by the control plane object, so apps in one process do not share it."""

    keep: timedelta = SOURCE_RETENTION
    interval_seconds: float = PRUNE_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    last_pruned: float | None = None

    def maybe_prune(self, session: Session) -> bool:
        """Prune within `session` unless that was done less than `interval_seconds` ago."""
        now = self.clock()
        if self.last_pruned is not None and now - self.last_pruned < self.interval_seconds:
            return False
        self.last_pruned = now
        prune_sources(session, utcnow() - self.keep)
        return True
