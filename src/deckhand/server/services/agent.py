"""What the management agent uses: desired state (long-polled), status reports, events.

The desired state is built from one query for the environment, one for its live
deployments joined with their packages, and one each for its running canaries and its
challengers (`services.traffic`), straight into JSON-ready dicts (no ORM objects, no N+1):
this is the call the agent makes most and the benchmarks time (bench/desired_state.py).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, Environment, ModelPackage, utcnow
from deckhand.server.errors import Forbidden, NotFound
from deckhand.server.schemas.agent import StatusReport
from deckhand.server.services.traffic import Traffic, in_environment, traffic_of
from deckhand.server.state import ControlPlane

PURGE_STATES = frozenset({"stopped"})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _not_found(environment_id: str) -> NotFound:
    return NotFound(
        f"environment: no prediction environment with id {environment_id!r}; check the agent's environment id"
    )


def check_scope(principal: Principal, environment_id: str) -> None:
    """An agent token's environments only; another one is "not found", as a missing one is."""
    if not principal.can_see_environment(environment_id):
        raise _not_found(environment_id)


def check_deployments_of(session: Session, environment_id: str, named: list[tuple[str, str]]) -> None:
    """Refuse (403) a report or event that names another environment's deployment.

    `named` holds (field, deployment id) pairs. Ids the control plane does not know stay
    allowed: an agent reports what its platform holds, orphans included (ignored by the
    status update), and ids are random, so this cannot be used to probe for them."""
    ids = {dep_id for _, dep_id in named}
    if not ids:
        return
    foreign = set(
        session.scalars(
            select(Deployment.id).where(Deployment.id.in_(ids), Deployment.environment_id != environment_id)
        )
    )
    for field, dep_id in named:
        if dep_id in foreign:
            raise Forbidden(
                f"{field}: {dep_id!r} is not a deployment of prediction environment {environment_id!r}; "
                "an agent reports only on its own environment's deployments"
            )


def current_revision(session: Session, environment_id: str) -> int:
    revision = session.scalar(select(Environment.revision).where(Environment.id == environment_id))
    if revision is None:
        raise _not_found(environment_id)
    return int(revision)


def desired_state(session: Session, environment_id: str) -> dict[str, Any]:
    env = session.execute(
        select(
            Environment.id,
            Environment.name,
            Environment.description,
            Environment.platform,
            Environment.plugin,
            Environment.plugin_config,
            Environment.key_value_config,
            Environment.monitoring_enabled,
            Environment.created_at,
            Environment.created_by,
            Environment.revision,
        ).where(Environment.id == environment_id)
    ).first()
    if env is None:
        raise _not_found(environment_id)
    # Core (not ORM) select on the tables: half the per-row cost for large environments.
    dep, pkg = Deployment.__table__.c, ModelPackage.__table__.c
    rows = (
        session.connection()
        .execute(
            select(
                dep.id,
                dep.name,
                dep.description,
                dep.active,
                dep.model_package_id,
                dep.key_value_config,
                dep.revision,
                pkg.format,
                pkg.sha256,
                pkg.size,
            )
            .select_from(Deployment.__table__.join(ModelPackage.__table__, pkg.id == dep.model_package_id))
            .where(dep.environment_id == environment_id, dep.deleted_at.is_(None))
            .order_by(dep.created_at, dep.id)
        )
        .all()
    )
    return {
        "revision": int(env.revision),
        "environment": {
            "id": env.id,
            "name": env.name,
            "description": env.description,
            "platform": env.platform,
            "plugin": env.plugin,
            "pluginConfig": env.plugin_config or {},
            "keyValueConfig": env.key_value_config or {},
            "monitoringEnabled": bool(env.monitoring_enabled),
            "createdAt": _iso(env.created_at),
            "createdBy": env.created_by,
        },
        "deployments": _with_traffic(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "description": r.description,
                    "active": bool(r.active),
                    "modelPackageId": r.model_package_id,
                    "modelId": r.model_package_id,
                    "modelFormat": r.format,
                    "modelSha256": r.sha256,
                    "modelSize": int(r.size),
                    "keyValueConfig": r.key_value_config or {},
                    "revision": int(r.revision),
                    "servedModelId": r.model_package_id,
                    "traffic": None,
                }
                for r in rows
            ],
            traffic_of(session, in_environment(environment_id)),
        ),
    }


def _with_traffic(deployments: list[dict[str, Any]], traffic: dict[str, Traffic]) -> list[dict[str, Any]]:
    """Fill in `traffic` and `servedModelId` of the few deployments that have a canary or
    challengers (a second pass: nothing is added to the per-row cost of the others)."""
    if traffic:
        for d in deployments:
            found = traffic.get(d["id"])
            if found is not None:
                d["traffic"] = found.desired()
                d["servedModelId"] = found.served_model_id(d["modelId"])
    return deployments


async def wait_for_desired_state(
    cp: ControlPlane, environment_id: str, known_revision: int | None, timeout: float
) -> dict[str, Any]:
    """Return at once if the revision differs from `known_revision`, else wait for a change.

    Woken by the notifier (at once, for changes through any replica on PostgreSQL); re-reads
    the revision every `long_poll_recheck_seconds` as well, should a wake-up be lost.
    """
    deadline = time.monotonic() + timeout
    recheck = cp.settings.long_poll_recheck_seconds
    while known_revision is not None:
        event = cp.notifier.event_for(environment_id)  # taken before reading: no lost wake-up

        def _revision() -> int:
            with cp.db.reading() as session:
                return current_revision(session, environment_id)

        if await run_in_threadpool(_revision) != known_revision:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            await asyncio.wait_for(event.wait(), timeout=min(remaining, recheck))
        except TimeoutError:
            pass

    def _load() -> dict[str, Any]:
        with cp.db.reading() as session:
            return desired_state(session, environment_id)

    return await run_in_threadpool(_load)


def report_status(session: Session, environment_id: str, report: StatusReport) -> dict[str, int]:
    """Store observed state: one read of the environment's deployment ids, one bulk update."""
    now = utcnow()
    current_revision(session, environment_id)  # 404 for an unknown environment
    known = {
        row.id: row.deleted_at is not None
        for row in session.execute(
            select(Deployment.id, Deployment.deleted_at).where(Deployment.environment_id == environment_id)
        )
    }
    rows = []
    reported: dict[str, str] = {}
    for d in sorted(report.deployments, key=lambda d: d.id):
        reported[d.id] = d.state
        if known.get(d.id) is False:  # live deployment of this environment
            rows.append(
                {
                    "id": d.id,
                    "observed_state": d.state,
                    "observed_model_id": d.model_id,
                    "observed_prediction_url": d.prediction_url,
                    "observed_message": d.message,
                    "observed_old_model_in_use": d.old_model_in_use,
                    "observed_updated_at": now,
                }
            )
    # Deployment rows (in id order) before the environment's: the order every change of a
    # deployment takes (its row, then the revision bump), so two replicas never deadlock.
    if rows:
        session.execute(update(Deployment), rows)
    gone = [
        dep_id
        for dep_id, deleted in known.items()
        if deleted and (dep_id not in reported or reported[dep_id] in PURGE_STATES)
    ]
    if gone:
        session.execute(delete(Deployment).where(Deployment.id.in_(gone)).execution_options(synchronize_session=False))
    if report.environment is not None:
        session.execute(
            update(Environment)
            .where(Environment.id == environment_id)
            .values(
                status=report.environment.status,
                status_message=report.environment.message,
                status_updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return {"updated": len(rows), "purged": len(gone)}
