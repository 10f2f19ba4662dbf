"""`GET /api/v1/events`: what happened, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from deckhand.server.auth import UserReader
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.events import EventOut
from deckhand.server.services import events as svc
from deckhand.server.services.lookup import find_environment
from deckhand.server.state import CP

router = APIRouter(prefix=f"{API_PREFIX}/events", tags=["events"])


@router.get("", response_model=list[EventOut], responses=errors(403, 404))
def list_events(
    _p: UserReader,
    cp: CP,
    environment_id: Annotated[str | None, Query(alias="environmentId")] = None,
    deployment_id: Annotated[str | None, Query(alias="deploymentId")] = None,
    limit: Annotated[int, Query(ge=1, le=svc.MAX_LIMIT)] = 100,
) -> list[EventOut]:
    with cp.db.reading() as session:
        env_id = None
        if environment_id:
            env_id = find_environment(session, environment_id, field="environmentId").id
        return svc.list_events(session, env_id, deployment_id, limit)
