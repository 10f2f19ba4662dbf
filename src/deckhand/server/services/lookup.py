"""Finding resources by id or name, with 404/409 messages that say what to do.

Given the caller, an agent token's lookups see only its own environments: what belongs to
another environment is "not found", with the very message of an object that does not
exist, so that a token cannot learn what exists beyond its scope.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, Environment, ModelPackage
from deckhand.server.errors import Conflict, NotFound


def _visible(principal: Principal | None, environment_id: str) -> bool:
    return principal is None or principal.can_see_environment(environment_id)


def find_environment(
    session: Session, ref: str, field: str = "environment", principal: Principal | None = None
) -> Environment:
    env = session.get(Environment, ref)
    if env is None:
        env = session.scalars(select(Environment).where(Environment.name == ref)).first()
    if env is None or not _visible(principal, env.id):
        raise NotFound(
            f"{field}: no prediction environment with id or name {ref!r}; list them with `deckhand env list`"
        )
    return env


def package_not_found(ref: str, field: str) -> NotFound:
    return NotFound(
        f"{field}: no model package with id {ref!r}; upload one with "
        "POST /api/v1/model-packages or `deckhand deploy FILE`"
    )


def find_package(session: Session, ref: str, field: str = "modelPackageId") -> ModelPackage:
    package = session.get(ModelPackage, ref)
    if package is None:
        raise package_not_found(ref, field)
    return package


def find_deployment(session: Session, ref: str, principal: Principal | None = None) -> Deployment:
    """A live (not deleted) deployment by id, or by name when that name is unique."""
    found = [
        d
        for d in session.scalars(
            select(Deployment)
            .where(Deployment.deleted_at.is_(None))
            .where(or_(Deployment.id == ref, Deployment.name == ref))
        ).all()
        if _visible(principal, d.environment_id)
    ]
    by_id = [d for d in found if d.id == ref]
    if by_id:
        return by_id[0]
    if not found:
        raise NotFound(f"deployment: no deployment with id or name {ref!r}; list them with `deckhand deployments list`")
    if len(found) > 1:
        raise Conflict(
            f"deployment: {len(found)} deployments are named {ref!r} (in different environments); use the deployment id"
        )
    return found[0]
