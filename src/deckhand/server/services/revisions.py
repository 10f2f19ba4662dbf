"""Deployment revisions: recording each model a deployment runs, listing them, and
choosing the revision a rollback returns to. (Changing the model itself is
`services.deployments`' job, the one path for replace and rollback.)"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, DeploymentRevision, ModelPackage, utcnow
from deckhand.server.errors import Conflict, NotFound
from deckhand.server.schemas.revisions import RevisionOut


def add_revision(
    session: Session,
    principal: Principal,
    dep: Deployment,
    reason: str | None = None,
    note: str = "",
    rollback_to: int | None = None,
) -> DeploymentRevision:
    """The next revision of `dep`, for the package it now runs. The caller holds the
    deployment's row (SQLite: the write transaction; PostgreSQL: `lock_deployment`)."""
    latest = session.scalar(
        select(func.max(DeploymentRevision.number)).where(DeploymentRevision.deployment_id == dep.id)
    )
    row = DeploymentRevision(
        deployment_id=dep.id,
        number=(latest or 0) + 1,
        model_package_id=dep.model_package_id,
        created_at=utcnow(),
        created_by=principal.name,
        reason=reason,
        note=note,
        rollback_to=rollback_to,
    )
    session.add(row)
    session.flush()
    return row


def lock_deployment(session: Session, dep: Deployment) -> None:
    """Hold the deployment's row until the transaction ends, so that two concurrent model
    changes cannot take the same revision number (PostgreSQL; SQLite writers queue anyway)."""
    session.refresh(dep, with_for_update=True)


def history(session: Session, deployment_id: str) -> list[DeploymentRevision]:
    """Newest first: the first is the current revision."""
    return list(
        session.scalars(
            select(DeploymentRevision)
            .where(DeploymentRevision.deployment_id == deployment_id)
            .order_by(DeploymentRevision.number.desc())
        )
    )


def revisions_out(session: Session, rows: list[DeploymentRevision]) -> list[RevisionOut]:
    ids = {r.model_package_id for r in rows}
    found = session.execute(select(ModelPackage.id, ModelPackage.name).where(ModelPackage.id.in_(ids)))
    names = {package_id: name for package_id, name in found}
    newest = max((r.number for r in rows), default=None)
    return [
        RevisionOut.from_row(r, model_package_name=names.get(r.model_package_id), current=r.number == newest)
        for r in rows
    ]


def rollback_target(dep: Deployment, rows: list[DeploymentRevision], number: int | None) -> DeploymentRevision:
    """The revision to return to: `number`, or by default the one before the current revision
    (before the one a rollback returned to, so that rolling back again steps further back
    instead of flipping between two models)."""
    if not rows:
        raise Conflict(f"revision: deployment {dep.name!r} has no recorded revisions to roll back to")
    current = rows[0]
    if number is None:
        number = (current.rollback_to or current.number) - 1
        if number < 1:
            came_from = f" (it returned to revision {current.rollback_to})" if current.rollback_to else ""
            raise Conflict(
                f"revision: deployment {dep.name!r} is at revision {current.number}{came_from} and there is no "
                "earlier revision to roll back to; see `deckhand deployments history` and pass a revision "
                "(--to N) to return to a later one"
            )
    found = next((r for r in rows if r.number == number), None)
    if found is None:
        raise NotFound(
            f"revision: deployment {dep.name!r} has revisions 1 to {current.number}, not {number}; "
            "list them with `deckhand deployments history`"
        )
    return found
