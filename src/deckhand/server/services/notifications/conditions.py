"""The conditions a policy watches, each read from the aggregates the control plane already
keeps (per-minute buckets, agents' last reports, events): never from raw rows. One query
per policy covers every deployment it watches, except drift, which compares each
deployment's feature distributions with its baseline.

`observe(session, policy, now)` returns the subjects whose condition holds now, each with
its value and a sentence for the message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.monitoring import sketch
from deckhand.server.db.models import (
    AccuracyBucket,
    Deployment,
    Environment,
    Event,
    MonitoringServiceBucket,
    NotificationPolicy,
)
from deckhand.server.services.accuracy.metrics import Sums, combine, metrics
from deckhand.server.services.monitoring import queries as monitoring_queries

SERVICE_HEALTH = "service_health"
DRIFT = "drift"
ACCURACY = "accuracy"
AGENT = "agent"
DEPLOYMENT_ACTION = "deployment_action"
KINDS = (SERVICE_HEALTH, DRIFT, ACCURACY, AGENT, DEPLOYMENT_ACTION)
# accuracy metrics where lower is better: the policy fires when they rise above the threshold
LOWER_IS_BETTER = frozenset(("rmse", "mae", "logLoss"))


@dataclass(frozen=True)
class Observation:
    subject: str  # a deployment id, or an environment id (agent policies)
    value: float | None
    text: str
    deployment_id: str | None = None
    environment_id: str | None = None


def _deployments(session: Session, policy: NotificationPolicy) -> dict[str, Deployment]:
    query = select(Deployment).where(Deployment.deleted_at.is_(None))
    if policy.deployment_id:
        query = query.where(Deployment.id == policy.deployment_id)
    return {dep.id: dep for dep in session.scalars(query)}


def _window(policy: NotificationPolicy, now: float, default_minutes: int) -> tuple[int, int]:
    minutes = int(policy.settings.get("windowMinutes") or default_minutes)
    end = int(now // 60 * 60) + 60  # the current minute, whole
    return end - minutes * 60, end


def _service_health(session: Session, policy: NotificationPolicy, now: float) -> list[Observation]:
    settings = policy.settings
    metric, threshold = settings.get("metric", "errorRate"), float(settings["threshold"])
    min_requests = int(settings.get("minRequests", 10))
    deps = _deployments(session, policy)
    start, end = _window(policy, now, 5)
    totals: dict[str, dict[str, Any]] = {}
    for row in session.execute(
        select(
            MonitoringServiceBucket.deployment_id,
            MonitoringServiceBucket.requests,
            MonitoringServiceBucket.user_errors,
            MonitoringServiceBucket.system_errors,
            MonitoringServiceBucket.latency,
        ).where(
            MonitoringServiceBucket.deployment_id.in_(list(deps)),
            MonitoringServiceBucket.minute >= start,
            MonitoringServiceBucket.minute < end,
        )
    ):
        total = totals.setdefault(row.deployment_id, {"requests": 0, "errors": 0, "latency": {}})
        total["requests"] += row.requests
        total["errors"] += row.user_errors + row.system_errors
        sketch.merge(total["latency"], row.latency or {})
    found = []
    for dep_id, total in totals.items():
        if total["requests"] < min_requests:
            continue
        if metric == "p99Ms":
            value = sketch.quantile(total["latency"], 0.99)
            text = f"p99 latency {value:.1f} ms > {threshold:g} ms" if value is not None else ""
        else:
            value = total["errors"] / total["requests"]
            text = f"error rate {100 * value:.2f}% > {100 * threshold:.2f}% ({total['errors']} of {total['requests']})"
        if value is not None and value > threshold:
            found.append(_about(deps[dep_id], value, f"{text} over the last {(end - start) // 60} min"))
    return found


def _drift(session: Session, policy: NotificationPolicy, now: float) -> list[Observation]:
    threshold = float(policy.settings.get("threshold", 0.2))
    chosen = set(policy.settings.get("features") or ())
    start, end = _window(policy, now, 60)
    found = []
    for dep in _deployments(session, policy).values():
        report = monitoring_queries.drift(session, dep, start, end)
        drifted = [f for f in report.features if (not chosen or f.name in chosen) and f.psi > threshold]
        if drifted:
            worst = max(drifted, key=lambda f: f.psi)
            names = ", ".join(f"{f.name} {f.psi:.3f}" for f in sorted(drifted, key=lambda f: -f.psi)[:5])
            text = f"data drift: PSI > {threshold:g} on {len(drifted)} feature(s): {names}"
            found.append(_about(dep, worst.psi, text))
    return found


def _accuracy(session: Session, policy: NotificationPolicy, now: float) -> list[Observation]:
    settings = policy.settings
    metric, threshold = settings.get("metric", "accuracy"), float(settings["threshold"])
    min_matched = int(settings.get("minMatched", 10))
    deps = _deployments(session, policy)
    start, end = _window(policy, now, 24 * 60)
    by_model: dict[tuple[str, str], tuple[str, Sums]] = {}
    for dep_id, model_id, kind, bucket in session.execute(
        select(AccuracyBucket.deployment_id, AccuracyBucket.model_id, AccuracyBucket.kind, AccuracyBucket.sums).where(
            AccuracyBucket.deployment_id.in_(list(deps)), AccuracyBucket.minute >= start, AccuracyBucket.minute < end
        )
    ):
        combine(by_model.setdefault((dep_id, model_id), (kind, {}))[1], bucket)
    # the champion's (the model that answers); for a model reported under another id (the
    # MLOps library's own ids), the one with the most matched predictions
    per_deployment: dict[str, dict[str, tuple[str, Sums]]] = {}
    for (dep_id, model_id), found_sums in by_model.items():
        per_deployment.setdefault(dep_id, {})[model_id] = found_sums
    sums = {
        dep_id: models.get(deps[dep_id].model_package_id) or max(models.values(), key=lambda m: m[1].get("n", 0))
        for dep_id, models in per_deployment.items()
    }
    found = []
    lower_is_better = metric in LOWER_IS_BETTER
    for dep_id, (kind, total) in sums.items():
        if total.get("n", 0) < min_matched:
            continue
        value = metrics(kind, total).get(metric)
        if value is None:
            continue
        worse = value > threshold if lower_is_better else value < threshold
        if worse:
            sign = ">" if lower_is_better else "<"
            text = f"accuracy: {metric} {value:.4f} {sign} {threshold:g} over {total['n']} matched predictions"
            found.append(_about(deps[dep_id], value, text))
    return found


def _agent(session: Session, policy: NotificationPolicy, now: float) -> list[Observation]:
    silent = float(policy.settings.get("silentMinutes", 10))
    query = select(Environment.id, Environment.name, Environment.status_updated_at).where(
        Environment.status_updated_at.is_not(None)
    )
    if policy.settings.get("environmentId"):
        query = query.where(Environment.id == policy.settings["environmentId"])
    found = []
    for env_id, name, last in session.execute(query):
        minutes = (now - last.timestamp()) / 60
        if minutes > silent:
            text = f"the agent of environment {name!r} has not reported for {minutes:.0f} min (limit {silent:g})"
            found.append(Observation(env_id, minutes, text, environment_id=env_id))
    return found


def _deployment_action(session: Session, policy: NotificationPolicy, now: float) -> list[Observation]:
    """Failed actions since the policy last looked (its `event_cursor`, moved on here)."""
    query = select(Event).where(Event.result == "failing").order_by(Event.id)
    if policy.event_cursor is None:  # a new policy starts from now, not from history
        policy.event_cursor = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
        return []
    query = query.where(Event.id > policy.event_cursor)
    if policy.deployment_id:
        query = query.where(Event.deployment_id == policy.deployment_id)
    found: dict[str, Observation] = {}
    for event in session.scalars(query.limit(1000)):
        policy.event_cursor = max(policy.event_cursor or 0, event.id)
        subject = event.deployment_id or event.environment_id or "control-plane"
        text = f"{event.action} failed: {event.message[:500]}"
        found[subject] = Observation(subject, None, text, event.deployment_id, event.environment_id)
    return list(found.values())


def _about(dep: Deployment, value: float, text: str) -> Observation:
    return Observation(dep.id, value, f"deployment {dep.name!r}: {text}", dep.id, dep.environment_id)


OBSERVERS = {
    SERVICE_HEALTH: _service_health,
    DRIFT: _drift,
    ACCURACY: _accuracy,
    AGENT: _agent,
    DEPLOYMENT_ACTION: _deployment_action,
}


def observe(session: Session, policy: NotificationPolicy, now: float | None = None) -> list[Observation]:
    return OBSERVERS[policy.kind](session, policy, time.time() if now is None else now)
