"""Canary rollouts: start, promote, abort and list them (the API), and the controller's
judgement of a step (docs/rollouts.md).

A step is judged by pure functions, `evaluate_gates` and `decide`, on what a
`MonitoringReader` says of the candidate since the step started: tests call them with a fake.
`tick` reads (no write transaction is open while monitoring is read), decides, then applies
each decision in its own short write transaction. Every transition is a conditional update
(`WHERE id = ? AND state = 'running' AND percent = ?`): when several control planes run the
controller, or an admin promotes while a step is judged, one transition happens, once.
Locks are taken in one order, the deployment's row and then the rollout's, as the API does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, DeploymentRollout, Environment, utcnow
from deckhand.server.db.session import Database
from deckhand.server.errors import Conflict, NotFound
from deckhand.server.schemas.deployments import ReplaceModel
from deckhand.server.schemas.revisions import ModelChange
from deckhand.server.schemas.rollouts import ABORTED, PROMOTED, ROLLED_BACK, RUNNING, RolloutOut
from deckhand.server.services import revisions
from deckhand.server.services.deployments import change_model, check_compatible, record_change
from deckhand.server.services.lookup import find_deployment, find_package
from deckhand.server.services.monitoring import models
from deckhand.server.services.traffic import running_rollout, traffic_of

log = logging.getLogger(__name__)

# Who the controller's changes are recorded as (events, revisions).
CONTROLLER = Principal(token_id="", name="rollout-controller", role="admin")
# What each gate reads, and how it is written in messages.
GATE_UNITS = {"maxErrorRate": "error rate", "maxP99Ms": "p99 latency (ms)", "maxPsi": "prediction PSI"}


# -- judging a step (pure) -------------------------------------------------------------------


class MonitoringReader(Protocol):
    """The two reads the gates need (`deckhand.server.services.monitoring.models`)."""

    def model_health(self, session: Session, deployment_id: str, start: datetime, end: datetime) -> Mapping[str, Any]:
        """Model id -> its health (`requests`, `error_rate`, `p99_ms`, ...) in [start, end)."""
        ...

    def prediction_psi(
        self,
        session: Session,
        deployment_id: str,
        model_id: str,
        reference_model_id: str,
        start: datetime,
        end: datetime,
    ) -> float | None: ...


class MonitoringModels:
    """The real reader: the monitoring service's per-model queries."""

    def model_health(self, session: Session, deployment_id: str, start: datetime, end: datetime) -> Mapping[str, Any]:
        return models.model_health(session, deployment_id, start, end)

    def prediction_psi(
        self,
        session: Session,
        deployment_id: str,
        model_id: str,
        reference_model_id: str,
        start: datetime,
        end: datetime,
    ) -> float | None:
        psi = models.prediction_psi(session, deployment_id, model_id, reference_model_id, start, end)
        return None if psi is None else float(psi)


@dataclass(frozen=True)
class Health:
    """What the gates read of the candidate in the step's window."""

    requests: int = 0
    error_rate: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of(cls, found: Any) -> Health:
        """From the monitoring service's `ModelHealth` (None: the candidate had no traffic)."""
        if found is None:
            return cls()
        requests = int(getattr(found, "requests", 0) or 0)
        return cls(requests, getattr(found, "error_rate", None), getattr(found, "p99_ms", None))


@dataclass(frozen=True)
class Step:
    """A running rollout as the controller read it (no ORM object outlives its session)."""

    id: str
    deployment_id: str
    candidate: str
    champion: str
    percent: int
    step: int
    interval_seconds: int
    gates: Mapping[str, Any]
    started: datetime

    @property
    def due(self) -> datetime:
        return self.started + timedelta(seconds=self.interval_seconds)

    @property
    def gated(self) -> bool:
        return bool(self.gates)


@dataclass(frozen=True)
class Decision:
    kind: Literal["hold", "step", "promote", "roll_back"]
    percent: int  # the candidate's share after the decision
    outcome: str  # why (stored on the rollout, and in the event's message)
    report: dict[str, Any] | None = None  # the values and verdicts, stored as `last_gates`


def evaluate_gates(gates: Mapping[str, Any], health: Health, psi: float | None) -> dict[str, dict[str, Any]]:
    """Each set gate's value, limit and verdict: pass, fail, or unknown (no data to judge)."""
    values = {"maxErrorRate": health.error_rate, "maxP99Ms": health.p99_ms, "maxPsi": psi}
    verdicts = {}
    for gate, value in values.items():
        if gate not in gates:
            continue
        limit = float(gates[gate])
        verdict = "unknown" if value is None else ("fail" if value > limit else "pass")
        verdicts[gate] = {"value": value, "limit": limit, "verdict": verdict}
    return verdicts


def _figure(gate: str, value: float) -> str:
    return f"{value:.2%}" if gate == "maxErrorRate" else f"{value:g}"


def decide(step: Step, health: Health | None, psi: float | None, start: datetime, end: datetime) -> Decision:
    """What to do with a step that has lasted its interval. `health` is None for a rollout
    without gates (nothing was read): it steps on time alone."""
    up = min(100, step.percent + step.step)
    if health is None:
        if up >= 100:
            return Decision("promote", 100, "reached 100 % (no gates)")
        return Decision("step", up, f"stepped to {up} % (no gates)")
    verdicts = evaluate_gates(step.gates, health, psi)
    report = {
        "evaluatedAt": end.isoformat(),
        "windowStart": start.isoformat(),
        "windowEnd": end.isoformat(),
        "requests": health.requests,
        "gates": verdicts,
    }
    needed = int(step.gates.get("minRequests", 1))
    if health.requests < needed:
        outcome = (
            f"holding at {step.percent} %: waiting for traffic, {health.requests} of {needed} candidate "
            f"requests since {start:%Y-%m-%d %H:%M:%S} UTC"
        )
        return Decision("hold", step.percent, outcome, report)
    failed = [(g, v) for g, v in verdicts.items() if v["verdict"] == "fail"]
    if failed:
        what = "; ".join(
            f"{g} failed: {GATE_UNITS[g]} {_figure(g, v['value'])} > limit {_figure(g, v['limit'])}" for g, v in failed
        )
        return Decision("roll_back", 0, f"rolled back at {step.percent} %: {what}", report)
    unknown = [g for g, v in verdicts.items() if v["verdict"] == "unknown"]
    if unknown:
        outcome = f"holding at {step.percent} %: no data yet for {', '.join(unknown)}"
        return Decision("hold", step.percent, outcome, report)
    passed = ", ".join(f"{g} {_figure(g, v['value'])} <= {_figure(g, v['limit'])}" for g, v in verdicts.items())
    if up >= 100:
        return Decision("promote", 100, f"reached 100 % with gates passing ({passed})", report)
    return Decision("step", up, f"stepped to {up} % with gates passing ({passed})", report)


# -- transitions ------------------------------------------------------------------------------


def _transition(session: Session, rollout_id: str, expect_percent: int | None, **values: Any) -> bool:
    """Move a running rollout on, if it still runs (at `expect_percent`, when given)."""
    statement = update(DeploymentRollout).where(DeploymentRollout.id == rollout_id, DeploymentRollout.state == RUNNING)
    if expect_percent is not None:
        statement = statement.where(DeploymentRollout.percent == expect_percent)
    result = session.execute(
        statement.values(updated_at=utcnow(), **values).execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def _promote(
    session: Session,
    principal: Principal,
    dep: Deployment,
    rollout: DeploymentRollout,
    outcome: str,
    expect_percent: int | None = None,
    report: dict[str, Any] | None = None,
) -> bool:
    """The candidate becomes the champion as the deployment's next revision, made as any
    replacement is (`change_model`), with the reason and note given to `replace`."""
    now = utcnow()
    extra = {} if report is None else {"last_gates": report}
    if not _transition(
        session, rollout.id, expect_percent, state=PROMOTED, percent=100, ended_at=now, outcome=outcome, **extra
    ):
        return False
    package = find_package(session, rollout.model_package_id)
    change = ModelChange(reason=rollout.reason, note=rollout.note or None, force=rollout.force)  # type: ignore[arg-type]
    message = change_model(session, principal, dep, package, change, field="modelPackageId", what="promoted the canary")
    record_change(session, principal, dep, "deployment.rollout.promoted", f"{message}; {outcome}")
    return True


def apply(session: Session, step: Step, decision: Decision) -> str | None:
    """Apply the controller's decision, if the rollout is still where it was judged; returns
    the environment whose desired state changed, if any."""
    if decision.kind == "hold":
        _transition(session, step.id, step.percent, last_gates=decision.report, outcome=decision.outcome)
        return None
    dep = session.get(Deployment, step.deployment_id)
    if dep is None or dep.deleted_at is not None:
        return None
    revisions.lock_deployment(session, dep)
    rollout = session.get(DeploymentRollout, step.id)
    if rollout is None:
        return None
    changed = False
    if decision.kind == "promote":
        changed = _promote(session, CONTROLLER, dep, rollout, decision.outcome, step.percent, decision.report)
    elif decision.kind == "step":
        changed = _transition(
            session, step.id, step.percent, percent=decision.percent, step_started_at=utcnow(),
            last_gates=decision.report, outcome="",
        )  # fmt: skip
        if changed:
            record_change(session, CONTROLLER, dep, "deployment.rollout.stepped",
                          f"canary of {step.candidate} on deployment {dep.name!r}: {decision.outcome}")  # fmt: skip
    else:
        changed = _transition(
            session, step.id, step.percent, state=ROLLED_BACK, ended_at=utcnow(),
            last_gates=decision.report, outcome=decision.outcome,
        )  # fmt: skip
        if changed:
            message = f"canary of {step.candidate} on deployment {dep.name!r}: {decision.outcome}; " \
                f"the champion {step.champion} takes all traffic again"  # fmt: skip
            record_change(session, CONTROLLER, dep, "deployment.rollout.rolledBack", message, result="failing")
    return dep.environment_id if changed else None


def due_steps(session: Session, now: datetime) -> list[Step]:
    """Running rollouts of live deployments whose step has lasted its interval."""
    rows = session.scalars(
        select(DeploymentRollout)
        .join(Deployment, Deployment.id == DeploymentRollout.deployment_id)
        .where(DeploymentRollout.state == RUNNING, Deployment.deleted_at.is_(None))
    )
    steps = [
        Step(r.id, r.deployment_id, r.model_package_id, r.from_package_id, r.percent, r.step,
             r.interval_seconds, dict(r.gates or {}), r.step_started_at)
        for r in rows
    ]  # fmt: skip
    return [s for s in steps if s.due <= now]


def judge(session: Session, reader: MonitoringReader, step: Step, now: datetime) -> Decision:
    """Read the candidate's monitoring for the step's window and decide (reads only)."""
    if not step.gated:
        return decide(step, None, None, step.started, now)
    found = reader.model_health(session, step.deployment_id, step.started, now)
    health = Health.of(found.get(step.candidate))
    psi = None
    if "maxPsi" in step.gates and health.requests >= int(step.gates.get("minRequests", 1)):
        psi = reader.prediction_psi(session, step.deployment_id, step.candidate, step.champion, step.started, now)
    return decide(step, health, psi, step.started, now)


def tick(db: Database, reader: MonitoringReader, now: datetime | None = None) -> set[str]:
    """One round of the controller; returns the environments whose desired state changed.
    A rollout whose judgement fails (e.g. monitoring cannot be read) is logged and left as
    it is, to be judged again next round."""
    now = now or utcnow()
    with db.reading() as session:
        steps = due_steps(session, now)
    changed: set[str] = set()
    for step in steps:
        try:
            with db.reading() as session:
                decision = judge(session, reader, step, now)
            with db.writing() as session:
                environment_id = apply(session, step, decision)
        except Exception:
            log.exception("rollout step not judged rollout=%s deployment=%s", step.id, step.deployment_id)
            continue
        log.info("rollout step rollout=%s deployment=%s decision=%s percent=%d applied=%s",
                 step.id, step.deployment_id, decision.kind, decision.percent, environment_id is not None)  # fmt: skip
        if environment_id:
            changed.add(environment_id)
    return changed


# -- the API ----------------------------------------------------------------------------------


def start_canary(session: Session, principal: Principal, ref: str, body: ReplaceModel) -> Deployment:
    """`replace` with a `canary`: nothing is replaced yet; the candidate takes its first share."""
    assert body.canary is not None
    canary = body.canary
    dep = find_deployment(session, ref)
    package = find_package(session, body.model_package_id)
    revisions.lock_deployment(session, dep)
    if package.id == dep.model_package_id:
        raise Conflict(
            f"modelPackageId: deployment {dep.name!r} already runs model package {package.id}; "
            "a canary needs another package"
        )
    running = running_rollout(session, dep.id)
    if running is not None:
        raise Conflict(
            f"canary: deployment {dep.name!r} already has a canary of model package {running.model_package_id} "
            f"running ({running.percent} %); promote it (`deckhand deployments promote {dep.id}`) or abort it "
            f"(`deckhand deployments abort {dep.id}`) first"
        )
    traffic = traffic_of(session, Deployment.id == dep.id).get(dep.id)
    if traffic and any(c["modelId"] == package.id for c in traffic.challengers):
        raise Conflict(
            f"modelPackageId: model package {package.id} is a challenger of deployment {dep.name!r}; remove it "
            f"(`deckhand deployments challenger-remove {dep.id} {package.id}`) first, or promote it directly "
            "(`deckhand deployments challenger-promote`)"
        )
    gates = canary.gates.limits()
    env = session.get(Environment, dep.environment_id)
    if gates and env is not None and not env.monitoring_enabled:
        raise Conflict(
            f"canary.gates: environment {env.name!r} has monitoring disabled, and the gates read the candidate's "
            "monitoring; enable it (PATCH the environment with monitoringEnabled: true) or start the canary "
            "without gates"
        )
    found = check_compatible(session, dep, package, body.force, field="modelPackageId")
    now = utcnow()
    rollout = DeploymentRollout(
        deployment_id=dep.id, model_package_id=package.id, from_package_id=dep.model_package_id, state=RUNNING,
        percent=canary.percent, step=canary.step, interval_seconds=canary.interval_seconds, gates=gates,
        sticky=None if canary.sticky is None else canary.sticky.as_dict(), reason=body.reason, note=body.note or "",
        force=body.force, outcome="", created_by=principal.name, started_at=now, step_started_at=now, updated_at=now,
    )  # fmt: skip
    session.add(rollout)
    session.flush()
    message = (
        f"started a canary of model package {package.name!r} ({package.id}) on deployment {dep.name!r} at "
        f"{canary.percent} %, +{canary.step} every {canary.interval_seconds} s"
        + (f", gates {gates}" if gates else ", no gates")
        + (f", sticky {rollout.sticky}" if rollout.sticky else "")
        + (f" (forced past: {'; '.join(d.message for d in found)})" if found else "")
    )
    record_change(session, principal, dep, "deployment.rollout.started", message)
    return dep


def _running_or_409(session: Session, dep: Deployment, verb: str) -> DeploymentRollout:
    rollout = running_rollout(session, dep.id)
    if rollout is None:
        raise Conflict(
            f"deployment: {dep.name!r} has no running canary to {verb}; start one with "
            f"`deckhand deployments replace {dep.id} PACKAGE --canary 10`"
        )
    return rollout


def promote(session: Session, principal: Principal, ref: str) -> Deployment:
    """Promote now, whatever the share: the candidate becomes the next revision."""
    dep = find_deployment(session, ref)
    revisions.lock_deployment(session, dep)
    rollout = _running_or_409(session, dep, "promote")
    _promote(session, principal, dep, rollout, f"promoted by {principal.name} at {rollout.percent} %")
    return dep


def abort(session: Session, principal: Principal, ref: str) -> Deployment:
    """End the canary; the champion keeps (or takes back) all traffic."""
    dep = find_deployment(session, ref)
    revisions.lock_deployment(session, dep)
    rollout = _running_or_409(session, dep, "abort")
    outcome = f"aborted by {principal.name} at {rollout.percent} %"
    _transition(session, rollout.id, None, state=ABORTED, ended_at=utcnow(), outcome=outcome)
    record_change(
        session, principal, dep, "deployment.rollout.aborted",
        f"canary of {rollout.model_package_id} on deployment {dep.name!r}: {outcome}; "
        f"the champion {dep.model_package_id} takes all traffic again",
    )  # fmt: skip
    return dep


def rollout_out(row: DeploymentRollout) -> RolloutOut:
    running = row.state == RUNNING
    next_step = row.step_started_at + timedelta(seconds=row.interval_seconds) if running else None
    return RolloutOut.from_row(row, next_step_at=next_step)


def history(session: Session, deployment_id: str) -> list[DeploymentRollout]:
    """The deployment's rollouts, newest first."""
    return list(
        session.scalars(
            select(DeploymentRollout)
            .where(DeploymentRollout.deployment_id == deployment_id)
            .order_by(DeploymentRollout.started_at.desc(), DeploymentRollout.id)
        )
    )


def latest(session: Session, dep: Deployment) -> DeploymentRollout:
    """The running rollout, else the last one."""
    rows = history(session, dep.id)
    if not rows:
        raise NotFound(
            f"rollout: deployment {dep.name!r} has had no canary; start one with "
            f"`deckhand deployments replace {dep.id} PACKAGE --canary 10`"
        )
    return next((r for r in rows if r.state == RUNNING), rows[0])
