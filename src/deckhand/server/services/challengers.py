"""Challengers: up to five shadow models of a deployment (they score a copy of live requests;
their answers are recorded, never returned). Add, remove, list, and promote one to champion
as the next revision, made as any replacement is (`deployments.change_model`).

Each change bumps the deployment's and the environment's revisions (the agent rebuilds the
mix) and records an event."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, DeploymentChallenger, ModelPackage, utcnow
from deckhand.server.errors import Conflict, NotFound
from deckhand.server.schemas.rollouts import MAX_CHALLENGERS, ChallengerIn, ChallengerOut, PromoteChallenger
from deckhand.server.services import revisions
from deckhand.server.services.deployments import change_model, check_compatible, record_change
from deckhand.server.services.lookup import find_deployment, find_package
from deckhand.server.services.traffic import refuse_while_rolling_out, running_rollout


def list_challengers(session: Session, dep: Deployment) -> list[ChallengerOut]:
    rows = session.execute(
        select(DeploymentChallenger, ModelPackage.name)
        .outerjoin(ModelPackage, ModelPackage.id == DeploymentChallenger.model_package_id)
        .where(DeploymentChallenger.deployment_id == dep.id)
        .order_by(DeploymentChallenger.added_at, DeploymentChallenger.model_package_id)
    )
    return [ChallengerOut.from_row(row, model_package_name=name) for row, name in rows]


def _find(session: Session, dep: Deployment, package_id: str) -> DeploymentChallenger:
    row = session.get(DeploymentChallenger, (dep.id, package_id))
    if row is None:
        raise NotFound(
            f"packageId: model package {package_id!r} is not a challenger of deployment {dep.name!r}; "
            f"list them with `deckhand deployments challengers {dep.id}`"
        )
    return row


def add_challenger(session: Session, principal: Principal, ref: str, body: ChallengerIn) -> Deployment:
    """Add a challenger; one that is already there is a no-op."""
    dep = find_deployment(session, ref)
    package = find_package(session, body.model_package_id)
    revisions.lock_deployment(session, dep)
    if session.get(DeploymentChallenger, (dep.id, package.id)) is not None:
        return dep
    if package.id == dep.model_package_id:
        raise Conflict(f"modelPackageId: model package {package.id} is deployment {dep.name!r}'s champion")
    canary = running_rollout(session, dep.id)
    if canary is not None and canary.model_package_id == package.id:
        raise Conflict(
            f"modelPackageId: model package {package.id} is deployment {dep.name!r}'s canary; promote or abort "
            "the canary first"
        )
    count = session.scalar(
        select(func.count()).select_from(DeploymentChallenger).where(DeploymentChallenger.deployment_id == dep.id)
    )
    if (count or 0) >= MAX_CHALLENGERS:
        raise Conflict(
            f"modelPackageId: deployment {dep.name!r} has {count} challengers, the most it may have; remove one "
            f"(`deckhand deployments challenger-remove {dep.id} PACKAGE`) first"
        )
    found = check_compatible(session, dep, package, body.force, field="modelPackageId")
    session.add(DeploymentChallenger(deployment_id=dep.id, model_package_id=package.id, added_at=utcnow(),
                                     added_by=principal.name))  # fmt: skip
    session.flush()
    record_change(
        session, principal, dep, "deployment.challenger.add",
        f"added model package {package.name!r} ({package.id}) as a challenger of deployment {dep.name!r}"
        + (f" (forced past: {'; '.join(d.message for d in found)})" if found else ""),
    )  # fmt: skip
    return dep


def remove_challenger(session: Session, principal: Principal, ref: str, package_id: str) -> Deployment:
    dep = find_deployment(session, ref)
    revisions.lock_deployment(session, dep)
    _find(session, dep, package_id)
    session.execute(
        delete(DeploymentChallenger).where(
            DeploymentChallenger.deployment_id == dep.id, DeploymentChallenger.model_package_id == package_id
        )
    )
    record_change(
        session, principal, dep, "deployment.challenger.remove",
        f"removed challenger {package_id} from deployment {dep.name!r}",
    )  # fmt: skip
    return dep


def promote_challenger(
    session: Session, principal: Principal, ref: str, package_id: str, body: PromoteChallenger
) -> Deployment:
    """The challenger becomes the champion (the next revision) and leaves the challengers
    (`change_model` drops it); the old champion is not made a challenger."""
    dep = find_deployment(session, ref)
    revisions.lock_deployment(session, dep)
    _find(session, dep, package_id)
    refuse_while_rolling_out(session, dep, "promote a challenger")
    package = find_package(session, package_id, field="packageId")
    message = change_model(session, principal, dep, package, body, field="packageId", what="promoted a challenger")
    record_change(session, principal, dep, "deployment.challenger.promote", message)
    return dep
