"""Deployments: create, activate, deactivate, replace model, roll back, update, delete.

Every change bumps the deployment's revision and its environment's revision (what
wakes the agent's long poll) and records an event. Every model the deployment runs is
also a numbered model revision (`services.revisions`): replace and rollback are one
path, `change_model`, so the agent sees the same change either way (and so do a promoted
canary and a promoted challenger, `services.rollouts` and `services.challengers`). While a
canary runs, other model changes are refused: promote or abort it first. Deletion is soft:
the deployment leaves the desired state at once, and its row is purged when the agent's
status report no longer lists it (or lists it stopped).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from deckhand.packages.mix import ALL_COPIED
from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, ModelPackage, utcnow
from deckhand.server.errors import Conflict
from deckhand.server.schemas.deployments import (
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    ObservedOut,
    ReplaceModel,
)
from deckhand.server.schemas.revisions import ModelChange, Rollback, RollbackOut
from deckhand.server.schemas.rollouts import RUNNING, RolloutSummary
from deckhand.server.services import revisions
from deckhand.server.services.compatibility import Difference, differences
from deckhand.server.services.environments import bump_revision
from deckhand.server.services.events import record_api_event
from deckhand.server.services.lookup import find_deployment, find_environment, find_package
from deckhand.server.services.traffic import (
    NO_TRAFFIC,
    Traffic,
    drop_challenger,
    end_rollouts_of_deleted,
    refuse_while_rolling_out,
    traffic_of,
)


def _out(dep: Deployment, traffic: Traffic) -> DeploymentOut:
    observed = None if dep.observed_updated_at is None else ObservedOut.from_row(dep, prefix="observed_")
    rollout = None
    if traffic.canary is not None:
        rollout = RolloutSummary(
            id=traffic.rollout_id or "", state=RUNNING, percent=traffic.canary["percent"],
            model_package_id=traffic.canary["modelId"],
        )  # fmt: skip
    return DeploymentOut.from_row(
        dep, observed=observed, served_model_id=traffic.served_model_id(dep.model_package_id), rollout=rollout,
        challenger_copy_percent=dep.challenger_copy_percent or ALL_COPIED,
    )  # fmt: skip


def deployment_out(session: Session, dep: Deployment) -> DeploymentOut:
    return _out(dep, traffic_of(session, Deployment.id == dep.id).get(dep.id, NO_TRAFFIC))


def deployments_out(
    session: Session, deps: list[Deployment], where: ColumnElement[bool] | None = None
) -> list[DeploymentOut]:
    """Many deployments with two more queries in all; `where` narrows the traffic queries to
    a condition on `Deployment` that holds for every one of `deps`."""
    traffic = traffic_of(session, where) if deps else {}
    return [_out(d, traffic.get(d.id, NO_TRAFFIC)) for d in deps]


def record_change(
    session: Session, principal: Principal | None, dep: Deployment, action: str, msg: str, result: str = "passing"
) -> None:
    """A change of what `dep` should run: new deployment and environment revisions (the agent
    wakes up) and an event."""
    dep.revision = dep.revision + 1
    dep.updated_at = utcnow()
    session.flush()
    bump_revision(session, dep.environment_id)
    record_api_event(
        session, principal, action, msg, environment_id=dep.environment_id, deployment_id=dep.id, result=result
    )


def check_compatible(
    session: Session, dep: Deployment, package: ModelPackage, force: bool, *, field: str
) -> list[Difference]:
    """Can `package` stand in for the model `dep` runs? Refused (409, each difference in `errors`)
    unless `force`; returns the differences forced past."""
    current = find_package(session, dep.model_package_id)
    found = differences(current, package)
    if found and not force:
        raise Conflict(
            f"{field}: model package {package.name!r} ({package.id}) is not compatible with the model "
            f"deployment {dep.name!r} runs, {current.name!r} ({current.id}): "
            + "; ".join(f"{d.field}: {d.message}" for d in found)
            + ". Check that this is the package you meant, or pass force: true (CLI: --force) to change anyway",
            errors=[d.as_error() for d in found],
        )
    return found


def create_deployment(session: Session, principal: Principal, body: DeploymentCreate) -> Deployment:
    env = find_environment(session, body.environment_id, field="environmentId")
    package = find_package(session, body.model_package_id)
    taken = session.scalars(
        select(Deployment.id).where(
            Deployment.environment_id == env.id,
            Deployment.name == body.name,
            Deployment.deleted_at.is_(None),
        )
    ).first()
    if taken:
        raise Conflict(
            f"name: environment {env.name!r} already has a deployment named {body.name!r} "
            f"(id {taken}); pick another name or replace its model"
        )
    now = utcnow()
    dep = Deployment(
        name=body.name,
        description=body.description,
        environment_id=env.id,
        model_package_id=package.id,
        active=body.active,
        key_value_config=body.key_value_config,
        association_id=body.association_id.model_dump() if body.association_id else None,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    session.add(dep)
    session.flush()
    revisions.add_revision(session, principal, dep)
    bump_revision(session, env.id)
    record_api_event(
        session,
        principal,
        "deployment.create",
        f"created deployment {dep.name!r} of model package {package.name!r} ({package.id}) "
        f"in {env.name!r}, {'active' if dep.active else 'inactive'}",
        environment_id=env.id,
        deployment_id=dep.id,
    )
    return dep


def set_active(session: Session, principal: Principal, ref: str, active: bool) -> Deployment:
    dep = find_deployment(session, ref)
    if dep.active == active:
        return dep
    dep.active = active
    verb = "activated" if active else "deactivated"
    record_change(
        session,
        principal,
        dep,
        "deployment.activate" if active else "deployment.deactivate",
        f"{verb} deployment {dep.name!r}",
    )
    return dep


def change_model(
    session: Session,
    principal: Principal,
    dep: Deployment,
    package: ModelPackage,
    change: ModelChange,
    *,
    field: str,
    what: str,
    rollback_to: int | None = None,
) -> str:
    """Point `dep` at `package` as a new model revision, unless the packages differ in ways
    callers would notice and `change.force` is not set; returns the event message. The agent
    sees a new model id and runs `deployment_replace_model`, which keeps the old model
    serving until the new one answers."""
    previous = dep.model_package_id
    found = check_compatible(session, dep, package, change.force, field=field)
    dep.model_package_id = package.id
    was_challenger = drop_challenger(session, dep.id, package.id)
    note = change.note or ""
    revision = revisions.add_revision(session, principal, dep, change.reason, note, rollback_to)
    return (
        f"{what} of deployment {dep.name!r}: {previous} -> {package.id} ({package.name!r}); "
        f"revision {revision.number}, reason {change.reason}"
        + (f": {note}" if note else "")
        + (f" (forced past: {'; '.join(d.message for d in found)})" if found else "")
        + ("; it is no longer a challenger" if was_challenger else "")
    )


def replace_model(session: Session, principal: Principal, ref: str, body: ReplaceModel) -> Deployment:
    dep = find_deployment(session, ref)
    package = find_package(session, body.model_package_id)
    revisions.lock_deployment(session, dep)
    if package.id == dep.model_package_id:
        return dep
    refuse_while_rolling_out(session, dep, "replace its model")
    message = change_model(session, principal, dep, package, body, field="modelPackageId", what="replaced the model")
    record_change(session, principal, dep, "deployment.replaceModel", message)
    return dep


def rollback(session: Session, principal: Principal, ref: str, body: Rollback) -> tuple[Deployment, RollbackOut]:
    """Return to an earlier revision's package as a new revision; a no-op when the
    deployment already runs that package."""
    dep = find_deployment(session, ref)
    revisions.lock_deployment(session, dep)
    refuse_while_rolling_out(session, dep, "roll back")
    rows = revisions.history(session, dep.id)
    target = revisions.rollback_target(dep, rows, body.revision)
    if target.model_package_id == dep.model_package_id:
        return dep, RollbackOut(
            deployment_id=dep.id,
            changed=False,
            message=f"deployment {dep.name!r} already runs the package of revision {target.number} "
            f"({target.model_package_id}); nothing to do",
            revision=revisions.revisions_out(session, rows)[0],
        )
    package = session.get(ModelPackage, target.model_package_id)
    if package is None:
        raise Conflict(
            f"revision: the model package of revision {target.number} ({target.model_package_id}) has been "
            "deleted; upload it again and use `deckhand deployments replace`"
        )
    change = body.model_copy(update={"note": body.note or f"rollback to revision {target.number}"})
    message = change_model(
        session, principal, dep, package, change, field="revision",
        what=f"rolled back to revision {target.number}", rollback_to=target.number,
    )  # fmt: skip
    record_change(session, principal, dep, "deployment.rollback", message)
    current = revisions.revisions_out(session, revisions.history(session, dep.id))[0]
    return dep, RollbackOut(deployment_id=dep.id, changed=True, message=message, revision=current)


def update_deployment(session: Session, principal: Principal, ref: str, body: DeploymentUpdate) -> Deployment:
    dep = find_deployment(session, ref)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if body.association_id is not None:  # whole, defaults included
        changes["association_id"] = body.association_id.model_dump()
    if changes.get("challenger_copy_percent") == ALL_COPIED:  # every request: the mix of no share
        changes["challenger_copy_percent"] = None
    changes = {k: v for k, v in changes.items() if getattr(dep, k) != v}  # nothing new: no new revision
    if not changes:
        return dep
    for key, value in changes.items():
        setattr(dep, key, value)
    record_change(
        session, principal, dep, "deployment.update", f"updated {', '.join(sorted(changes))} of deployment {dep.name!r}"
    )
    return dep


def delete_deployment(session: Session, principal: Principal, ref: str) -> Deployment:
    dep = find_deployment(session, ref)
    dep.deleted_at = utcnow()
    end_rollouts_of_deleted(session, dep.id)
    record_change(session, principal, dep, "deployment.delete", f"deleted deployment {dep.name!r}; the agent stops it")
    return dep


def list_deployments(session: Session, principal: Principal, environment_id: str | None = None) -> list[Deployment]:
    query = select(Deployment).where(Deployment.deleted_at.is_(None)).order_by(Deployment.created_at, Deployment.id)
    if environment_id:
        query = query.where(Deployment.environment_id == environment_id)
    if principal.role == "agent":
        query = query.where(Deployment.environment_id.in_(principal.environment_ids))
    return list(session.scalars(query))
