"""`/api/v1/monitoring/batches` (ingest) and `/api/v1/deployments/{id}/monitoring/*` (queries)."""

from __future__ import annotations

import logging
import random
import time
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.exc import IntegrityError, OperationalError

from deckhand.server.auth import AgentUser, Reader
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.common import IsoDateTime
from deckhand.server.schemas.monitoring import (
    FeatureDriftReport,
    ModelsMonitoring,
    MonitoringBatch,
    MonitoringBatchResult,
    PredictionDistribution,
    ServiceHealth,
)
from deckhand.server.services.lookup import find_deployment
from deckhand.server.services.monitoring import ingest, models, queries
from deckhand.server.state import CP

log = logging.getLogger("deckhand.server.monitoring")

router = APIRouter(prefix=API_PREFIX, tags=["monitoring"])
INGEST_ATTEMPTS = 6

Start = Annotated[
    IsoDateTime | None, Query(description="Window start, ISO 8601 (UTC if no zone). Default: end minus one hour.")
]
End = Annotated[IsoDateTime | None, Query(description="Window end, ISO 8601 (UTC if no zone). Default: now.")]
BucketSeconds = Annotated[
    int, Query(alias="bucketSeconds", ge=60, le=31 * 86400, description="Bucket width, a multiple of 60.")
]


@router.post("/monitoring/batches", response_model=MonitoringBatchResult, responses=errors(400, 403))
def ingest_batch(body: MonitoringBatch, principal: AgentUser, cp: CP) -> MonitoringBatchResult:
    """Merge a batch of monitoring aggregates; replaying a batchId (or a source) is a no-op."""
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with cp.db.writing() as session:
                result = ingest.ingest(session, principal, body.batch_id, body.records, cp.source_retention)
            break
        except (IntegrityError, OperationalError) as exc:
            # A concurrent ingest created the same minute bucket first (or a deadlock/lock
            # timeout): the transaction rolled back, sources included; retry it.
            if attempt == INGEST_ATTEMPTS:
                raise
            log.info(
                "event=monitoring_batch_retry batch=%s attempt=%d error=%s", body.batch_id, attempt, type(exc).__name__
            )
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    log.info(
        "event=monitoring_batch batch=%s accepted=%d duplicate=%s", body.batch_id, result.accepted, result.duplicate
    )
    return MonitoringBatchResult(
        accepted=result.accepted,
        duplicate=result.duplicate,
        skipped_sources=result.skipped_sources,
        unknown_deployments=result.unknown_deployments,
    )


@router.get(
    "/deployments/{ref}/monitoring/service-health", response_model=ServiceHealth, responses=errors(403, 404, 409)
)
def service_health(
    ref: str,
    principal: Reader,
    cp: CP,
    start: Start = None,
    end: End = None,
    bucket_seconds: BucketSeconds = 60,
) -> ServiceHealth:
    """Requests, rows, errors and latency p50/p99 per bucket and in total."""
    window = queries.window(start, end)
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return queries.service_health(session, dep.id, *window, bucket_seconds)


@router.get(
    "/deployments/{ref}/monitoring/predictions",
    response_model=PredictionDistribution,
    response_model_exclude_unset=True,  # `classes` or `bins`, not both
    responses=errors(403, 404, 409),
)
def prediction_distribution(
    ref: str, principal: Reader, cp: CP, start: Start = None, end: End = None
) -> PredictionDistribution:
    """Classes (classification) or bins (regression) of the predictions in the window."""
    window = queries.window(start, end)
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return queries.predictions(session, dep, *window)


@router.get(
    "/deployments/{ref}/monitoring/drift",
    response_model=FeatureDriftReport,
    response_model_exclude_unset=True,  # `baselineStart`/`baselineEnd` only for a first-window baseline
    responses=errors(403, 404, 409),
)
def feature_drift(ref: str, principal: Reader, cp: CP, start: Start = None, end: End = None) -> FeatureDriftReport:
    """PSI per feature against the package's training summary, else the first hour of data."""
    window = queries.window(start, end)
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return queries.drift(session, dep, *window)


@router.get("/deployments/{ref}/monitoring/models", response_model=ModelsMonitoring, responses=errors(403, 404, 409))
def model_monitoring(ref: str, principal: Reader, cp: CP, start: Start = None, end: End = None) -> ModelsMonitoring:
    """Each model's health (champion, canary, challengers) and its prediction PSI against the champion."""
    window = queries.window(start, end)
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return models.compare_models(session, dep, *window)
