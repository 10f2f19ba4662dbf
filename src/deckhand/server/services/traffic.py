"""What a deployment serves next to its champion: its running canary and its challengers.

The queries the desired state, the deployment responses and the rollout services share: one
query for the running rollouts and one for the challengers of a set of deployments (an
environment, one deployment, every live one), never one per deployment. Rows become the
desired state's `traffic` (docs/rollouts.md) and its `servedModelId`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal, select, true, update
from sqlalchemy.orm import Session

from deckhand.packages.mix import served_model_id
from deckhand.server.db.models import Deployment, DeploymentChallenger, DeploymentRollout, ModelPackage, utcnow
from deckhand.server.errors import Conflict
from deckhand.server.schemas.rollouts import ABORTED, RUNNING


@dataclass
class Traffic:
    """One deployment's share-out: `canary` and `challengers` in the desired state's form."""

    rollout_id: str | None = None
    canary: dict[str, Any] | None = None
    sticky: dict[str, str] | None = None
    challengers: list[dict[str, Any]] = field(default_factory=list)
    # the deployment's association-id settings: its rows' ids travel in the mix too
    association: dict[str, Any] | None = None
    copy_percent: float | None = None  # the share of requests copied to the challengers; None: all

    def desired(self) -> dict[str, Any] | None:
        """The desired state's `traffic`: None when the champion serves alone."""
        if self.canary is None and not self.challengers and not self.association:
            return None
        found = {"canary": self.canary, "challengers": self.challengers, "sticky": self.sticky}
        if self.association:
            found["associationId"] = self.association
        if self.challengers and self.copy_percent is not None:  # a share of nothing changes nothing
            found["challengerCopyPercent"] = self.copy_percent
        return found

    def served_model_id(self, champion_id: str) -> str:
        return served_model_id(champion_id, self.desired())


NO_TRAFFIC = Traffic()


def _member(package_id: str, fmt: str, sha256: str, size: int) -> dict[str, Any]:
    return {"modelId": package_id, "modelSha256": sha256, "modelFormat": fmt, "modelSize": int(size)}


def traffic_of(session: Session, where: ColumnElement[bool] | None = None) -> dict[str, Traffic]:
    """Deployment id -> its traffic, for the live deployments matching `where` (a condition on
    `Deployment`; None: all) that have a running canary, a challenger or association-id
    settings (with the challengers' copy share, if set). Three queries, Core selects on the
    tables (no ORM rows: this is part of the desired state's cost)."""
    condition = (where if where is not None else true()) & Deployment.deleted_at.is_(None)
    dep = Deployment.__table__
    rollout, challenger, pkg = DeploymentRollout.__table__.c, DeploymentChallenger.__table__.c, ModelPackage.__table__.c
    connection = session.connection()
    found: dict[str, Traffic] = {}
    canaries = connection.execute(
        select(rollout.deployment_id, rollout.id, rollout.model_package_id, rollout.percent, rollout.sticky,
               pkg.format, pkg.sha256, pkg.size)
        .select_from(
            DeploymentRollout.__table__.join(dep, dep.c.id == rollout.deployment_id)
            .join(ModelPackage.__table__, pkg.id == rollout.model_package_id)
        )
        .where(condition, rollout.state == RUNNING)
    )  # fmt: skip
    for dep_id, rollout_id, package_id, percent, sticky, fmt, sha256, size in canaries:
        found[dep_id] = Traffic(
            rollout_id=rollout_id, canary={**_member(package_id, fmt, sha256, size), "percent": int(percent)},
            sticky=sticky,
        )  # fmt: skip
    shadows = connection.execute(
        select(challenger.deployment_id, challenger.model_package_id, pkg.format, pkg.sha256, pkg.size)
        .select_from(
            DeploymentChallenger.__table__.join(dep, dep.c.id == challenger.deployment_id).join(
                ModelPackage.__table__, pkg.id == challenger.model_package_id
            )
        )
        .where(condition)
        .order_by(challenger.deployment_id, challenger.model_package_id)
    )
    for dep_id, package_id, fmt, sha256, size in shadows:
        found.setdefault(dep_id, Traffic()).challengers.append(_member(package_id, fmt, sha256, size))
    settings = connection.execute(
        select(dep.c.id, dep.c.association_id, dep.c.challenger_copy_percent).where(
            condition, dep.c.association_id.is_not(None) | dep.c.challenger_copy_percent.is_not(None)
        )
    )
    for dep_id, association, copy_percent in settings:
        if association:
            found.setdefault(dep_id, Traffic()).association = dict(association)
        if copy_percent is not None and dep_id in found:  # it matters only next to challengers
            found[dep_id].copy_percent = float(copy_percent)
    return found


def in_environment(environment_id: str) -> ColumnElement[bool]:
    """The condition for `traffic_of` of one environment. The column is wrapped so that the
    database does not use its index: the queries then start from the few rollouts and
    challengers and look each deployment up by id, instead of probing every deployment of the
    environment (1,000 of them cost a millisecond more per desired state on SQLite)."""
    return func.coalesce(Deployment.environment_id, literal("")) == environment_id


def running_rollout(session: Session, deployment_id: str) -> DeploymentRollout | None:
    return session.scalars(
        select(DeploymentRollout).where(
            DeploymentRollout.deployment_id == deployment_id, DeploymentRollout.state == RUNNING
        )
    ).first()


def refuse_while_rolling_out(session: Session, dep: Deployment, what: str) -> None:
    """A model change other than the rollout's own waits for the rollout to end: two changes
    at once would leave it unclear which revision the canary's verdict is about."""
    running = running_rollout(session, dep.id)
    if running is not None:
        raise Conflict(
            f"deployment: {dep.name!r} has a canary of model package {running.model_package_id} running "
            f"({running.percent} %); promote it (`deckhand deployments promote {dep.id}`) or abort it "
            f"(`deckhand deployments abort {dep.id}`) before you {what}"
        )


def end_rollouts_of_deleted(session: Session, deployment_id: str) -> None:
    """A deleted deployment's running rollout ends as aborted (its row stays as history until
    the deployment's row is purged)."""
    now = utcnow()
    session.execute(
        update(DeploymentRollout)
        .where(DeploymentRollout.deployment_id == deployment_id, DeploymentRollout.state == RUNNING)
        .values(state=ABORTED, outcome="the deployment was deleted", ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def shadow_and_canary_uses(session: Session, package_id: str) -> int:
    """How many live deployments run `package_id` as a running canary or a challenger (a
    package they use cannot be deleted: the agent could not fetch it)."""
    live = Deployment.deleted_at.is_(None)
    canaries = session.scalar(
        select(func.count()).select_from(DeploymentRollout)
        .join(Deployment, Deployment.id == DeploymentRollout.deployment_id)
        .where(live, DeploymentRollout.state == RUNNING, DeploymentRollout.model_package_id == package_id)
    )  # fmt: skip
    shadows = session.scalar(
        select(func.count()).select_from(DeploymentChallenger)
        .join(Deployment, Deployment.id == DeploymentChallenger.deployment_id)
        .where(live, DeploymentChallenger.model_package_id == package_id)
    )  # fmt: skip
    return (canaries or 0) + (shadows or 0)


def drop_challenger(session: Session, deployment_id: str, package_id: str) -> bool:
    """A model that becomes the champion stops being a challenger (it cannot shadow itself)."""
    result = session.execute(
        delete(DeploymentChallenger).where(
            DeploymentChallenger.deployment_id == deployment_id, DeploymentChallenger.model_package_id == package_id
        )
    )
    return bool(getattr(result, "rowcount", 0))
