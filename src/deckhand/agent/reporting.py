"""What the agent tells the control plane: an event per action (action, result, duration,
message) and the observed state of every deployment, both masked for secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from deckhand.agent.clock import Clock
from deckhand.agent.model import DesiredState, ObservedDeployment
from deckhand.plugin.action_status import ActionStatusInfo
from deckhand.plugin.constants import DeploymentState
from deckhand.secrets import mask

log = logging.getLogger("deckhand.agent")

REPORT_MIN_INTERVAL = 0.25  # seconds between two status reports to the control plane
HEARTBEAT_INTERVAL = 60.0  # an unchanged status is posted again this often


class ReportSink(Protocol):
    async def post_events(self, env_id: str, events: list[dict[str, Any]]) -> None: ...

    async def report_status(self, env_id: str, payload: dict[str, Any]) -> None: ...


class ClientSink:
    """The (blocking) control plane client as a sink: each call in a worker thread."""

    def __init__(self, client: Any):
        self._client = client

    async def post_events(self, env_id: str, events: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._client.post_events, env_id, events)

    async def report_status(self, env_id: str, payload: dict[str, Any]) -> None:
        await asyncio.to_thread(self._client.report_status, env_id, payload)


def status_payload(
    desired: DesiredState,
    observed: Mapping[str, ObservedDeployment],
    running: Collection[str],
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    """The status report: every desired deployment, and deleted ones until they are really
    stopped (so the control plane purges a deleted deployment only once it is gone)."""
    deployments = []
    for want in desired.deployments:
        seen = observed.get(want.id) or ObservedDeployment(want.id, DeploymentState.STOPPED, message="not started yet")
        deployments.append(_entry(seen))
    wanted = {d.id for d in desired.deployments}
    for dep_id, seen in observed.items():
        if dep_id not in wanted and (seen.state != DeploymentState.STOPPED or dep_id in running):
            deployments.append(_entry(seen))
    return {"environment": dict(environment), "deployments": deployments}


def _entry(seen: ObservedDeployment) -> dict[str, Any]:
    return {
        "id": seen.id,
        "state": seen.state,
        "modelId": seen.model_id,
        "predictionUrl": seen.prediction_url,
        "message": mask(seen.message or ""),
        "oldModelInUse": bool(seen.old_model_in_use),
    }


class Reporter:
    """Events queue as actions end and go out with the next report; the status goes out
    when it changed, at most every REPORT_MIN_INTERVAL (while many actions finish, each
    pass would otherwise post every deployment again) and at least every
    HEARTBEAT_INTERVAL. Without a sink (file mode) events are dropped."""

    def __init__(self, sink: ReportSink | None, clock: Clock):
        self.sink = sink
        self.due_at: float | None = None  # a throttled report waits until then
        self._clock = clock
        self._events: list[dict[str, Any]] = []
        self._last_payload: dict[str, Any] | None = None
        self._last_report_at: float | None = None
        self._last_status_at: float | None = None

    def event(self, deployment_id: str | None, action: str, status: ActionStatusInfo) -> None:
        self._events.append(
            {
                "deploymentId": deployment_id,
                "action": action,
                "result": status.status,
                "durationSeconds": status.duration,
                "message": mask(status.msg or ""),
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )

    async def report(self, env_id: str, payload: Callable[[], dict[str, Any]]) -> None:
        if self.sink is None:
            self._events.clear()
            return
        now = self._clock.now()
        if self._last_report_at is not None and now - self._last_report_at < REPORT_MIN_INTERVAL:
            self.due_at = self._last_report_at + REPORT_MIN_INTERVAL
            return
        self.due_at = None
        events, self._events = self._events, []
        status = payload()
        try:
            if events:
                await self.sink.post_events(env_id, events)
                self._last_report_at = now
            stale = self._last_status_at is None or now - self._last_status_at > HEARTBEAT_INTERVAL
            if status != self._last_payload or stale:
                await self.sink.report_status(env_id, status)
                self._last_payload, self._last_report_at, self._last_status_at = status, now, now
        except Exception as exc:
            if _refused_for_good(exc):  # resending the same batch would be refused again, forever
                log.warning("report refused by the control plane, %d events dropped: %s", len(events), mask(str(exc)))
            else:
                self._events = events + self._events  # sent with the next report
                log.warning("report to control plane failed: %s", mask(str(exc)))


def _refused_for_good(exc: Exception) -> bool:
    """A 4xx other than an expired token, a timeout or throttling: the batch itself is wrong."""
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500 and status not in (401, 408, 429)
