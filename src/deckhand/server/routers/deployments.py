"""`/api/v1/deployments`: create, list, show, activate, deactivate, replace model (at once or as
a canary), model revisions and rollback, delete. (Rollouts and challengers: `routers.rollouts`.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from deckhand.server.auth import AdminUser, Reader
from deckhand.server.db.models import Deployment
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.deployments import (
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    ReplaceModel,
)
from deckhand.server.schemas.revisions import RevisionOut, Rollback, RollbackOut
from deckhand.server.services import deployments as svc
from deckhand.server.services import revisions, rollouts
from deckhand.server.services.lookup import find_deployment, find_environment
from deckhand.server.state import CP, ControlPlane

router = APIRouter(prefix=f"{API_PREFIX}/deployments", tags=["deployments"])


def write_change(cp: ControlPlane, change: Callable[[Session], Deployment]) -> DeploymentOut:
    """Run a change in a transaction, then wake the environment's long polls."""
    with cp.db.writing() as session:
        dep = change(session)
        session.flush()
        session.refresh(dep)
        out = svc.deployment_out(session, dep)
    cp.notifier.notify(out.environment_id)
    return out


@router.post("", status_code=201, response_model=DeploymentOut, responses=errors(400, 403, 404, 409))
def create_deployment(
    body: DeploymentCreate,
    principal: AdminUser,
    cp: CP,
) -> DeploymentOut:
    return write_change(cp, lambda s: svc.create_deployment(s, principal, body))


@router.get("", response_model=list[DeploymentOut], responses=errors(403, 404))
def list_deployments(
    principal: Reader,
    cp: CP,
    environment_id: Annotated[
        str | None,
        Query(alias="environmentId", description="Only this environment (id or name)."),
    ] = None,
) -> list[DeploymentOut]:
    with cp.db.reading() as session:
        env_id = None
        if environment_id:
            env_id = find_environment(session, environment_id, field="environmentId", principal=principal).id
        where = None if env_id is None else Deployment.environment_id == env_id
        return svc.deployments_out(session, svc.list_deployments(session, principal, env_id), where)


@router.get("/{ref}", response_model=DeploymentOut, responses=errors(403, 404, 409))
def get_deployment(
    ref: str,
    principal: Reader,
    cp: CP,
) -> DeploymentOut:
    """By id, or by name when the name is unique."""
    with cp.db.reading() as session:
        return svc.deployment_out(session, find_deployment(session, ref, principal))


@router.post("/{ref}/activate", response_model=DeploymentOut, responses=errors(403, 404, 409))
def activate(
    ref: str,
    principal: AdminUser,
    cp: CP,
) -> DeploymentOut:
    return write_change(cp, lambda s: svc.set_active(s, principal, ref, True))


@router.post("/{ref}/deactivate", response_model=DeploymentOut, responses=errors(403, 404, 409))
def deactivate(
    ref: str,
    principal: AdminUser,
    cp: CP,
) -> DeploymentOut:
    return write_change(cp, lambda s: svc.set_active(s, principal, ref, False))


@router.post("/{ref}/replace-model", response_model=DeploymentOut, responses=errors(400, 403, 404, 409))
def replace_model(
    ref: str,
    body: ReplaceModel,
    principal: AdminUser,
    cp: CP,
) -> DeploymentOut:
    """A new model revision. Refused (409, each difference in `errors`) when the new package's
    target type, class labels or features differ from the current one's, unless `force`.

    With `canary`, nothing is replaced yet: the new model takes `percent` of the traffic and
    steps up every `intervalSeconds` while its gates hold (docs/rollouts.md); it becomes the
    next revision when promoted. Any model change is refused (409) while a canary runs:
    promote or abort it first."""
    if body.canary is not None:
        return write_change(cp, lambda s: rollouts.start_canary(s, principal, ref, body))
    return write_change(cp, lambda s: svc.replace_model(s, principal, ref, body))


@router.get("/{ref}/revisions", response_model=list[RevisionOut], responses=errors(403, 404, 409))
def list_revisions(
    ref: str,
    principal: Reader,
    cp: CP,
) -> list[RevisionOut]:
    """Every model the deployment has run, newest (the current one) first."""
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return revisions.revisions_out(session, revisions.history(session, dep.id))


@router.post("/{ref}/rollback", response_model=RollbackOut, responses=errors(400, 403, 404, 409))
def rollback(
    ref: str,
    principal: AdminUser,
    cp: CP,
    body: Rollback | None = None,
) -> RollbackOut:
    """Return to an earlier revision's package, as a new revision made exactly as a
    replacement is (same compatibility check, same agent action). A no-op answered with
    `changed: false` when the deployment already runs that package."""
    with cp.db.writing() as session:
        dep, out = svc.rollback(session, principal, ref, body or Rollback.model_validate({}))
        environment_id = dep.environment_id
    if out.changed:
        cp.notifier.notify(environment_id)
    return out


@router.patch("/{ref}", response_model=DeploymentOut, responses=errors(400, 403, 404, 409))
def update_deployment(
    ref: str,
    body: DeploymentUpdate,
    principal: AdminUser,
    cp: CP,
) -> DeploymentOut:
    return write_change(cp, lambda s: svc.update_deployment(s, principal, ref, body))


@router.delete("/{ref}", status_code=204, responses=errors(403, 404, 409))
def delete_deployment(
    ref: str,
    principal: AdminUser,
    cp: CP,
) -> Response:
    write_change(cp, lambda s: svc.delete_deployment(s, principal, ref))
    return Response(status_code=204)
