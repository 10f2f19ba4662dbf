"""`/api/v1/agent/environments/{envId}/...`: what the management agent calls."""

from __future__ import annotations

import logging
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from deckhand.secrets import mask_mapping
from deckhand.server.auth import AgentUser
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.agent import AgentEvents, DesiredState, StatusReport
from deckhand.server.services import agent as svc
from deckhand.server.services.events import record_agent_events
from deckhand.server.state import CP

log = logging.getLogger(__name__)
router = APIRouter(prefix=f"{API_PREFIX}/agent/environments", tags=["agent"])


@router.get(
    "/{environment_id}/desired-state",
    response_model=DesiredState,
    responses=errors(403, 404),
)
async def desired_state(
    environment_id: str,
    principal: AgentUser,
    cp: CP,
    revision: Annotated[
        int | None,
        Query(ge=0, description="The revision the agent holds; omit to get it at once."),
    ] = None,
    timeout: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for a newer revision (max 60).")] = 30.0,
) -> Response:
    """Long poll: returns at once when the revision differs from `revision`, otherwise
    when it changes or after `timeout` seconds (then with the same revision)."""
    svc.check_scope(principal, environment_id)
    timeout = min(timeout, cp.settings.long_poll_max_seconds)
    state = await svc.wait_for_desired_state(cp, environment_id, revision, timeout)
    if principal.role != "agent":  # secrets are for the environment's agent alone, not for admins
        state["environment"]["pluginConfig"] = mask_mapping(state["environment"]["pluginConfig"])
    # the state is already plain JSON data: orjson writes it without a second validation pass
    return Response(orjson.dumps(state), media_type="application/json")


@router.post("/{environment_id}/status", status_code=204, responses=errors(400, 403, 404))
def report_status(
    environment_id: str,
    body: StatusReport,
    principal: AgentUser,
    cp: CP,
) -> Response:
    svc.check_scope(principal, environment_id)
    with cp.db.writing() as session:
        svc.check_deployments_of(
            session, environment_id, [(f"deployments.{i}.id", d.id) for i, d in enumerate(body.deployments)]
        )
        counts = svc.report_status(session, environment_id, body)
    log.debug("status report environment=%s updated=%d purged=%d", environment_id, counts["updated"], counts["purged"])
    return Response(status_code=204)


@router.post("/{environment_id}/events", status_code=204, responses=errors(400, 403, 404))
def post_events(
    environment_id: str,
    body: AgentEvents,
    principal: AgentUser,
    cp: CP,
) -> Response:
    svc.check_scope(principal, environment_id)
    with cp.db.writing() as session:
        svc.current_revision(session, environment_id)  # 404 for an unknown environment
        named = [(f"events.{i}.deploymentId", e.deployment_id) for i, e in enumerate(body.events) if e.deployment_id]
        svc.check_deployments_of(session, environment_id, named)
        record_agent_events(session, principal, environment_id, body.events)
    return Response(status_code=204)
