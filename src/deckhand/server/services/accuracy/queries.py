"""Accuracy over a window: the per-minute sums of each model added up per bucket and in
total, then turned into metrics (`metrics.metrics`). No prediction or actual is read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.server.db.models import AccuracyBucket, Deployment
from deckhand.server.errors import InvalidField
from deckhand.server.schemas.accuracy import AccuracyBucketOut, AccuracyReport, ModelAccuracy
from deckhand.server.services.accuracy.metrics import Sums, combine, metrics

MAX_BUCKETS = 10_000


def accuracy(
    session: Session, dep: Deployment, start: int, end: int, bucket_seconds: int, model_id: str | None = None
) -> AccuracyReport:
    """Each model's accuracy in [start, end), per bucket of `bucket_seconds` (only buckets
    with matched predictions are listed) and in total; the champion first."""
    if bucket_seconds % 60:
        raise InvalidField("bucketSeconds", f"{bucket_seconds} is not a multiple of 60")
    if (end - start) // bucket_seconds > MAX_BUCKETS:
        raise InvalidField("bucketSeconds", f"the window would have over {MAX_BUCKETS} buckets; widen the buckets")
    query = select(AccuracyBucket.model_id, AccuracyBucket.minute, AccuracyBucket.kind, AccuracyBucket.sums).where(
        AccuracyBucket.deployment_id == dep.id, AccuracyBucket.minute >= start, AccuracyBucket.minute < end
    )
    if model_id is not None:
        query = query.where(AccuracyBucket.model_id == model_id)
    kinds: dict[str, str] = {}
    totals: dict[str, Sums] = {}
    buckets: dict[str, dict[int, Sums]] = {}
    for model, minute, kind, sums in session.execute(query.order_by(AccuracyBucket.model_id, AccuracyBucket.minute)):
        kinds.setdefault(model, kind)
        bucket_start = start + (minute - start) // bucket_seconds * bucket_seconds
        combine(buckets.setdefault(model, {}).setdefault(bucket_start, {}), sums)
        combine(totals.setdefault(model, {}), sums)
    models = [
        ModelAccuracy(
            model_id=model,
            champion=model == dep.model_package_id,
            kind=kinds[model],
            matched=int(totals[model].get("n", 0)),
            metrics=_rounded(metrics(kinds[model], totals[model])),
            buckets=[
                AccuracyBucketOut(start=_at(at), matched=int(s.get("n", 0)), metrics=_rounded(metrics(kinds[model], s)))
                for at, s in sorted(buckets[model].items())
                if s.get("n")
            ],
        )
        for model in sorted(totals, key=lambda m: (m != dep.model_package_id, m))
    ]
    return AccuracyReport(
        deployment_id=dep.id, start=_at(start), end=_at(end), bucket_seconds=bucket_seconds, models=models
    )


def _rounded(values: dict[str, Any]) -> dict[str, float | None]:
    return {k: None if v is None else round(float(v), 6) for k, v in values.items()}


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
