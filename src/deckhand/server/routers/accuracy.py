"""`/api/v1/deployments/{id}/actuals` (upload) and `/api/v1/deployments/{id}/accuracy` (query)."""

from __future__ import annotations

import logging
import random
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool

from deckhand.server.auth import AgentUser, Principal, Reader
from deckhand.server.errors import ApiError, InvalidField, PayloadTooLarge
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.routers.monitoring import BucketSeconds, End, Start
from deckhand.server.schemas.accuracy import AccuracyReport, ActualsResult, RejectedActual
from deckhand.server.services.accuracy import actuals_input, queries, store
from deckhand.server.services.lookup import find_deployment
from deckhand.server.services.monitoring.queries import window
from deckhand.server.state import CP, ControlPlane

log = logging.getLogger("deckhand.server.accuracy")

router = APIRouter(prefix=API_PREFIX, tags=["accuracy"])
MAX_ACTUALS_ROWS = 100_000
ATTEMPTS = 6


class BadRequest(ApiError):
    status_code = 400


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it passes `limit` bytes."""
    too_large = PayloadTooLarge(
        f"body: over the server's limit of {limit} bytes for actuals (deckhand server --max-actuals-mb); "
        f"split the upload (deckhand actuals upload sends {MAX_ACTUALS_ROWS // 10:,} rows a request)"
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/deployments/{ref}/actuals",
    response_model=ActualsResult,
    responses=errors(400, 403, 404, 409, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {  # {"data": [...]}, or the list alone
                        "anyOf": [
                            {"type": "object", "properties": {"data": {"type": "array"}}},
                            {"type": "array"},
                        ]
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def upload_actuals(ref: str, request: Request, principal: AgentUser, cp: CP) -> ActualsResult:
    """Actuals by association id (JSON `{"data": [...]}` or CSV). Sending an id again
    replaces its value; ids without a prediction yet are kept and matched when it arrives;
    each unusable row is rejected with its reason."""
    body = await _read_body(request, cp.settings.max_actuals_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # parsing and the database work off the event loop: a large upload must not stall other requests
    return await run_in_threadpool(_store_actuals, cp, principal, ref, body, content_type)


def _store_actuals(cp: ControlPlane, principal: Principal, ref: str, body: bytes, content_type: str) -> ActualsResult:
    try:
        parsed = (actuals_input.from_csv if content_type == "text/csv" else actuals_input.from_json)(body)
    except actuals_input.ActualsFormatError as exc:
        raise BadRequest(str(exc)) from None
    received = len(parsed.rows) + parsed.rejected_count
    if received > MAX_ACTUALS_ROWS:
        raise PayloadTooLarge(
            f"body: {received} rows, over {MAX_ACTUALS_ROWS} a request; split the upload "
            "(deckhand actuals upload FILE --deployment ID does)"
        )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with cp.db.writing() as session:
                dep = find_deployment(session, ref, principal)
                outcome = store.upsert_actuals(session, dep.id, parsed.rows)
            break
        except (IntegrityError, OperationalError) as exc:
            # a concurrent upload inserted one of these ids first: everything rolled back; again
            if attempt == ATTEMPTS:
                raise
            log.info("event=actuals_retry deployment=%s attempt=%d error=%s", ref, attempt, type(exc).__name__)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    log.info(
        "event=actuals deployment=%s received=%d inserted=%d updated=%d matched=%d pending=%d rejected=%d",
        dep.id, received, outcome.inserted, outcome.updated, outcome.matched, outcome.pending, parsed.rejected_count,
    )  # fmt: skip
    return ActualsResult(
        received=received,
        accepted=len(parsed.rows),
        inserted=outcome.inserted,
        updated=outcome.updated,
        unchanged=outcome.unchanged,
        matched=outcome.matched,
        pending=outcome.pending,
        pending_ids=outcome.pending_ids,
        rejected_count=parsed.rejected_count,
        rejected=[RejectedActual(**vars(r)) for r in parsed.rejected],
    )


@router.get("/deployments/{ref}/accuracy", response_model=AccuracyReport, responses=errors(403, 404, 409))
def accuracy(
    ref: str,
    principal: Reader,
    cp: CP,
    start: Start = None,
    end: End = None,
    bucket_seconds: BucketSeconds = 3600,
    model_id: Annotated[str | None, Query(alias="modelId", max_length=200, description="One model only.")] = None,
) -> AccuracyReport:
    """Each model's accuracy (champion first) per bucket of prediction time and in total,
    from the predictions that have an actual."""
    first, last = window(start, end)
    if bucket_seconds % 60:
        raise InvalidField("bucketSeconds", f"{bucket_seconds} is not a multiple of 60")
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return queries.accuracy(session, dep, first, last, bucket_seconds, model_id)
