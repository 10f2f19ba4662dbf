"""Recording and listing events (API changes and agent actions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from deckhand.server.auth import Principal
from deckhand.server.db.models import Event, utcnow
from deckhand.server.schemas.agent import AgentEventIn
from deckhand.server.schemas.events import EventOut

MAX_LIMIT = 1000


def record_api_event(
    session: Session,
    principal: Principal | None,
    action: str,
    message: str,
    environment_id: str | None = None,
    deployment_id: str | None = None,
    result: str = "passing",
) -> None:
    session.add(
        Event(
            timestamp=utcnow(),
            environment_id=environment_id,
            deployment_id=deployment_id,
            kind="api",
            action=action,
            result=result,
            message=message,
            actor=principal.name if principal else None,
        )
    )


def record_agent_events(session: Session, principal: Principal, environment_id: str, events: list[AgentEventIn]) -> int:
    rows: list[dict[str, Any]] = [
        {
            "timestamp": e.timestamp or utcnow(),  # validated and made UTC by the schema
            "environment_id": environment_id,
            "deployment_id": e.deployment_id,
            "kind": "agent",
            "action": e.action,
            "result": e.result,
            "duration_seconds": e.duration_seconds,
            "message": e.message or "",
            "actor": principal.name,
        }
        for e in events
    ]
    if rows:
        session.execute(insert(Event), rows)
    return len(rows)


def list_events(
    session: Session,
    environment_id: str | None = None,
    deployment_id: str | None = None,
    limit: int = 100,
) -> list[EventOut]:
    query = select(Event).order_by(Event.id.desc()).limit(min(limit, MAX_LIMIT))
    if environment_id:
        query = query.where(Event.environment_id == environment_id)
    if deployment_id:
        query = query.where(Event.deployment_id == deployment_id)
    return [EventOut.model_validate(row) for row in session.scalars(query)]
