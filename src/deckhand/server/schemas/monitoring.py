"""Monitoring ingest body and its answer (queries answer plain JSON documented in docs/monitoring.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from deckhand.server.schemas.common import ApiModel, RequestModel

MAX_BATCH_RECORDS = 200_000


class MonitoringBatch(RequestModel):
    batch_id: str = Field(
        min_length=1,
        max_length=200,
        description="Idempotency key: resending a batch (or any source in it) is a no-op.",
    )
    records: list[dict[str, Any]] = Field(
        max_length=MAX_BATCH_RECORDS,
        description="Aggregates (deploymentId, minute, ...) or raw records (deploymentId, ts, ...).",
    )


class MonitoringBatchResult(ApiModel):
    accepted: int
    duplicate: bool
    skipped_sources: int = 0
    unknown_deployments: list[str] = Field(default_factory=list)
