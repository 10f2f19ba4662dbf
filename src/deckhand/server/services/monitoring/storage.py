"""The monitoring tables: claim sources once, merge aggregates into per-minute buckets,
forget old sources.

One service-health row per deployment and minute, one distribution row per deployment,
minute and feature (or the predictions); per model of a deployment, one service-health
row and one prediction-distribution row per minute. A merge (`_upsert`) reads the touched
rows (locked on PostgreSQL: `SELECT ... FOR UPDATE`), adds, and bulk-inserts or -updates.
Claiming a source is `INSERT ... ON CONFLICT DO NOTHING RETURNING`, in the dialect of the
database (SQLite or PostgreSQL).
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
from deckhand.server.db.models import (
    MonitoringDistribution,
    MonitoringModelBucket,
    MonitoringModelPredictions,
    MonitoringServiceBucket,
    MonitoringSource,
    utcnow,
)
from deckhand.server.schemas.monitoring import MonitoringAggregate

ROLE_FEATURE = "feature"
ROLE_PREDICTION = "prediction"
PREDICTION_NAME = "__prediction__"
MAX_NAME_LENGTH = 200  # MonitoringDistribution.name, MonitoringModelBucket.model_id
SOURCE_RETENTION = timedelta(days=7)
PRUNE_INTERVAL_SECONDS = 3600.0
_CHUNK = 500


def insert_of(session: Session) -> Callable[[Any], Any]:
    """The database's own `insert` (SQLite or PostgreSQL), which has ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    else:  # pragma: no cover - other databases are not supported by the control plane
        raise RuntimeError(f"the control plane does not support the {dialect} database")
    return dialect_insert


def claim_sources(session: Session, sources: list[str], batch_id: str) -> set[str]:
    """Record the sources not seen before and return them (INSERT ... ON CONFLICT DO NOTHING
    RETURNING): a concurrent ingest of the same source waits for the other transaction and
    then gets nothing back, so exactly one of them counts it."""
    dialect_insert = insert_of(session)
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


# the counts a service-health row (of a deployment or of one of its models) sums
_COUNTS = ("requests", "rows", "user_errors", "system_errors")
_COMPARISON = ("compared", "agreed", "abs_diff_sum")


def _counts(key: dict[str, Any]) -> dict[str, Any]:
    return {**key, **dict.fromkeys(_COUNTS, 0), "latency": {}}


def _add_counts(row: dict[str, Any], item: MonitoringAggregate) -> None:
    row["requests"] += item.requests
    row["rows"] += item.rows
    row["user_errors"] += item.user_errors
    row["system_errors"] += item.system_errors
    sketch.merge(row["latency"], item.latency)


def _stored_counts(old: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A stored row's counts and latency plus the new row's."""
    added = {name: getattr(old, name) + row[name] for name in _COUNTS}
    added["latency"] = sketch.merge(dict(old.latency or {}), row["latency"])
    return added


def _upsert(
    session: Session,
    table: Any,
    key_columns: tuple[str, ...],
    combined: dict[tuple[Any, ...], dict[str, Any]],
    add: Callable[[Any, dict[str, Any]], dict[str, Any]],
) -> None:
    """Insert the combined rows not stored yet; for the others, store `add(stored, new)`.

    `combined` is keyed like `key_columns` (the table's primary key, deployment_id and
    minute among them). The stored rows of the touched minutes are read per deployment
    (sorted, in primary-key order: one lock order) and locked on PostgreSQL (SELECT ... FOR
    UPDATE), so concurrent ingests never lose an update; then one bulk insert, one bulk update."""
    if not combined:
        return
    by_deployment: dict[str, set[int]] = defaultdict(set)
    for row in combined.values():
        by_deployment[row["deployment_id"]].add(row["minute"])
    order = [getattr(table, column) for column in key_columns]
    existing: dict[tuple[Any, ...], Any] = {}
    for dep in sorted(by_deployment):
        for old in session.scalars(
            select(table)
            .where(table.deployment_id == dep, table.minute.in_(sorted(by_deployment[dep])))
            .order_by(*order)
            .with_for_update()  # PostgreSQL: no lost update between concurrent ingests
        ):
            existing[tuple(getattr(old, column) for column in key_columns)] = old
    inserts, updates = [], []
    for key, row in combined.items():
        old = existing.get(key)
        if old is None:
            inserts.append(row)
        else:
            updates.append({**row, **add(old, row)})
    if inserts:
        session.execute(insert(table), inserts)
    if updates:
        session.execute(update(table), updates)


def merge_service(session: Session, items: list[MonitoringAggregate]) -> None:
    """Add the aggregates' counts and latency sketches to their (deployment, minute) rows,
    summed over the models (the caller leaves shadow aggregates out)."""
    combined: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in items:
        key = (item.deployment_id, item.minute)
        row = combined.get(key)
        if row is None:
            row = combined[key] = _counts({"deployment_id": key[0], "minute": key[1], "model_id": None})
        row["model_id"] = item.model_id or row["model_id"]
        _add_counts(row, item)

    def add(old: MonitoringServiceBucket, row: dict[str, Any]) -> dict[str, Any]:
        return {**_stored_counts(old, row), "model_id": row["model_id"] or old.model_id}

    _upsert(session, MonitoringServiceBucket, ("deployment_id", "minute"), combined, add)


def merge_models(session: Session, items: list[MonitoringAggregate]) -> None:
    """Add the aggregates' statistics to their (deployment, model, minute) rows: every
    model's, shadow or not; aggregates without a model id, or without statistics (feature
    samples), are left out. A row is `shadow` while all its model's statistics in the
    minute were."""
    combined: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in items:
        if item.model_id is None or not (item.requests or item.compared_rows):
            continue
        key = (item.deployment_id, item.model_id[:MAX_NAME_LENGTH], item.minute)
        row = combined.get(key)
        if row is None:
            row = combined[key] = _counts({"deployment_id": key[0], "model_id": key[1], "minute": key[2]})
            row.update(shadow=True, compared=0, agreed=0, abs_diff_sum=0.0)
        _add_counts(row, item)
        row["shadow"] = row["shadow"] and item.shadow
        row["compared"] += item.compared_rows
        row["agreed"] += item.agreed_rows
        row["abs_diff_sum"] += item.abs_diff_sum

    def add(old: MonitoringModelBucket, row: dict[str, Any]) -> dict[str, Any]:
        added = {name: getattr(old, name) + row[name] for name in _COMPARISON}
        return {**_stored_counts(old, row), **added, "shadow": old.shadow and row["shadow"]}

    _upsert(session, MonitoringModelBucket, ("deployment_id", "model_id", "minute"), combined, add)


def _add_data(old: Any, row: dict[str, Any]) -> dict[str, Any]:
    return {"data": merge_distribution(dict(old.data or {}), row["data"])}


def merge_distributions(session: Session, items: list[MonitoringAggregate]) -> None:
    """Add the aggregates' feature and prediction distributions to their rows (a value
    that is not a distribution object is skipped; the caller leaves shadow aggregates out)."""
    combined: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in items:
        parts = [(ROLE_FEATURE, str(name), data) for name, data in item.features.items()]
        if item.predictions:
            parts.append((ROLE_PREDICTION, PREDICTION_NAME, item.predictions))
        for role, name, data in parts:
            if not isinstance(data, dict):
                continue
            key = (item.deployment_id, item.minute, role, name[:MAX_NAME_LENGTH])
            row = combined.get(key)
            if row is None:
                row = combined[key] = {"deployment_id": key[0], "minute": key[1], "role": key[2], "name": key[3]}
                row["data"] = {}
            merge_distribution(row["data"], data)
    _upsert(session, MonitoringDistribution, ("deployment_id", "minute", "role", "name"), combined, _add_data)


def merge_model_predictions(session: Session, items: list[MonitoringAggregate]) -> None:
    """Add the aggregates' prediction distributions to their (deployment, model, minute)
    rows, shadow or not (aggregates without a model id are left out)."""
    combined: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in items:
        if item.model_id is None or not item.predictions:
            continue
        key = (item.deployment_id, item.model_id[:MAX_NAME_LENGTH], item.minute)
        row = combined.get(key)
        if row is None:
            row = combined[key] = {"deployment_id": key[0], "model_id": key[1], "minute": key[2], "data": {}}
        merge_distribution(row["data"], item.predictions)
    _upsert(session, MonitoringModelPredictions, ("deployment_id", "model_id", "minute"), combined, _add_data)


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
