"""One prediction environment's control loop: follow the desired state, observe the
plugin, run the reconciler's actions (one per deployment at a time, a bounded number in
parallel, each with a timeout and retries with backoff), and report back."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deckhand.agent import drivers, platforms
from deckhand.agent.artifacts import ArtifactCache
from deckhand.agent.config import AgentSettings, EnvironmentSettings
from deckhand.agent.model import Action, DesiredState, ObservedDeployment
from deckhand.agent.reconcile import plan
from deckhand.agent.sources import DesiredStateSource
from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo
from deckhand.plugin.constants import BosunPluginActions as A
from deckhand.plugin.constants import DeploymentState as S
from deckhand.secrets import mask

log = logging.getLogger("deckhand.agent")

REPORT_MIN_INTERVAL = 0.25  # seconds between two status reports to the control plane

NEEDS_ARTIFACT = {A.DEPLOYMENT_START, A.DEPLOYMENT_REPLACE_MODEL, A.DEPLOYMENT_RELAUNCH}


class EnvironmentAgent:
    def __init__(
        self,
        settings: AgentSettings,
        source: DesiredStateSource,
        *,
        env_settings: EnvironmentSettings | None = None,
        client: Any | None = None,
    ):
        self.settings = settings
        self.source = source
        self.env_settings = env_settings or EnvironmentSettings(id="file")
        self.client = client
        self.desired: DesiredState | None = None
        self.observed: dict[str, ObservedDeployment] = {}
        self.in_flight: set[str] = set()
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.env_status: dict[str, Any] = {"status": ActionStatus.UNKNOWN, "message": "starting"}
        self.server: platforms.PredictionServerSupervisor | None = None
        self.tracker: platforms.TrackingAgentSupervisor | None = None
        self._events: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._desired_changed = True
        self._last_report: Any = None
        self._last_report_at = 0.0
        self._report_due_at: float | None = None
        self._last_status_at = 0.0
        self._sem = asyncio.Semaphore(settings.parallelism)
        self._driver: drivers.PluginDriver | None = None
        self._plugin_overrides: dict[str, Any] = {}
        self.ready = asyncio.Event()

    # ----- set-up ------------------------------------------------------------------------
    async def _setup(self) -> None:
        assert self.desired is not None
        env = self.desired.environment
        work = self.settings.work_dir / _safe(env.id)
        self.cache = ArtifactCache(self.settings.work_dir / "packages", self.client)
        overrides = dict(self.env_settings.plugin_config)
        if env.platform == "local":
            base = work / "deployments"
            port = int(env.plugin_config.get("port") or overrides.get("port") or 0) or None  # None: stable free port
            # Monitoring (docs/monitoring.md): the server spools records, a tracking agent sends them.
            url = self.settings.resolved_url()
            monitored = platforms.local_monitoring_enabled(
                overrides, {platforms.MONITORING_KEY: env.monitoring_enabled}
            )
            spool = work / "spool" if url and monitored else None
            self.server = platforms.PredictionServerSupervisor(
                base,
                port,
                work / "prediction-server.log",
                workers=self.settings.server_workers,
                env={"DECKHAND_MONITORING": f"spool:{spool}"} if spool else None,
            )
            await self.server.start()
            overrides.update(platforms.local_plugin_config(base, self.server.url))
            if spool and url:
                self.tracker = platforms.TrackingAgentSupervisor(
                    spool, url, self.settings.resolved_token(), work / "tracking-agent.log"
                )
                await self.tracker.start()
        if env.platform == "docker":
            # The tracking agent the plugin runs reports to this control plane as this agent.
            overrides.setdefault("mlopsUrl", self.settings.resolved_url())
            if not self.env_settings.command:  # a runner gets it as MLOPS_API_TOKEN instead
                overrides.setdefault("mlopsApiToken", self.settings.resolved_token())
        self._plugin_overrides = overrides
        if self.env_settings.command:
            token_env = {"MLOPS_API_TOKEN": self.settings.resolved_token() or ""}
            self._driver = drivers.SubprocessDriver(self.env_settings.command, work / "actions", token_env)
        else:
            plugin = self.env_settings.plugin or env.plugin or platforms.DEFAULT_PLUGINS.get(env.platform)
            if not plugin:
                raise RuntimeError(
                    f"environment {env.id}: platform {env.platform!r} has no built-in plugin; set `command` "
                    "or `plugin` for it in the agent config"
                )
            self._driver = drivers.InProcessDriver(plugin, self.env_settings.private_config)
        status = await self._run_plugin(A.PLUGIN_START, None)
        self._event(None, A.PLUGIN_START, status)
        self.env_status = {"status": status.status, "message": status.msg}

    # ----- the loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.desired = await self.source.next_state(None, 0)
        await self._setup()
        env = self.desired.environment
        log.info("environment=%s platform=%s started revision=%s", env.id, env.platform, self.desired.revision)
        follower = asyncio.create_task(self._follow_desired(stop), name="desired-state")
        last_resync = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                # A new desired state is planned against the observed state held here, which
                # every action's result keeps current; the plugin is asked again (a full
                # deployment_list + pe_status) only at each resync. Observing on every change
                # made 1,000 deployments created at once cost 1,000 full listings.
                self._desired_changed = False
                if now - last_resync >= self.settings.resync_interval:
                    last_resync = now
                    await self._observe()
                self._launch(plan(self.desired.by_id(), self.observed, self._busy()))
                await self._report()
                self.ready.set()
                await self._sleep_until_needed(stop, last_resync)
        finally:
            follower.cancel()
            await self._shutdown()

    async def _sleep_until_needed(self, stop: asyncio.Event, last_resync: float) -> None:
        now = time.monotonic()
        wake_at = last_resync + self.settings.resync_interval
        if self._report_due_at is not None:
            wake_at = min(wake_at, self._report_due_at)
        if self.retry_at:
            wake_at = min(wake_at, min(self.retry_at.values()))
        self._wake.clear()
        stopper = asyncio.ensure_future(stop.wait())
        waker = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait({stopper, waker}, timeout=max(0.0, wake_at - now), return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        waker.cancel()
        await asyncio.sleep(0.01)  # coalesce bursts of completions into one pass

    async def _follow_desired(self, stop: asyncio.Event) -> None:
        backoff = self.settings.retry_base
        while not stop.is_set():
            try:
                state = await self.source.next_state(self.desired, self.settings.long_poll_timeout)
                backoff = self.settings.retry_base
            except Exception as exc:  # control plane down: keep what we have, retry
                log.warning("desired state fetch failed: %s", mask(str(exc)))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.retry_max)
                continue
            if self.desired is None or state.revision != self.desired.revision:
                log.info("desired state revision=%s deployments=%d", state.revision, len(state.deployments))
                self.desired = state
                self._desired_changed = True
                self._wake.set()

    def _busy(self) -> set[str]:
        now = time.monotonic()
        for dep_id in [d for d, t in self.retry_at.items() if t <= now]:
            del self.retry_at[dep_id]
        return self.in_flight | set(self.retry_at)

    # ----- observing ---------------------------------------------------------------------
    async def _observe(self) -> None:
        listed = await self._run_plugin(A.DEPLOYMENT_LIST, None)
        if listed.status != ActionStatus.OK or not isinstance(listed.data, dict):
            self.env_status = {"status": listed.status, "message": f"deployment_list: {listed.msg}"}
            return
        fresh: dict[str, ObservedDeployment] = {}
        for dep_id, raw in listed.data.items():
            if dep_id in self.in_flight and dep_id in self.observed:
                fresh[dep_id] = self.observed[dep_id]
                continue
            fresh[str(dep_id)] = _observed_from_status(str(dep_id), raw or {}, self.observed.get(str(dep_id)))
        for dep_id in self.in_flight:
            if dep_id in self.observed and dep_id not in fresh:
                fresh[dep_id] = self.observed[dep_id]
        self.observed = fresh
        pe = await self._run_plugin(A.PE_STATUS, None)
        self.env_status = {"status": pe.status, "message": pe.msg}

    # ----- acting ------------------------------------------------------------------------
    def _launch(self, actions: list[Action]) -> None:
        for action in actions:
            self.in_flight.add(action.deployment_id)
            asyncio.create_task(self._execute(action), name=f"{action.kind}:{action.deployment_id}")

    async def _execute(self, action: Action) -> None:
        try:
            async with self._sem:  # bounds plugin work; waiting for the server below does not count
                log.info("action=%s deployment=%s reason=%r", action.kind, action.deployment_id, action.reason)
                self.observed[action.deployment_id] = _transient(action)
                artifact = None
                if action.kind in NEEDS_ARTIFACT and action.desired is not None:
                    try:
                        artifact = await self.cache.path_for(action.desired)
                    except Exception as exc:
                        status = drivers.failing(action.kind, f"model package {action.desired.model_id}: {exc}")
                        self._finish(action, status)
                        return
                status = await self._run_plugin(action.kind, action, artifact)
            if self.server is not None and status.status == ActionStatus.OK:
                status = await self._confirm_with_server(action, status)
            self._finish(action, status)
        except Exception as exc:  # never lose the loop to one action
            log.exception("action %s failed", action.kind)
            self._finish(action, drivers.failing(action.kind, f"agent error: {exc}"))
        finally:
            self.in_flight.discard(action.deployment_id)
            self._wake.set()

    async def _confirm_with_server(self, action: Action, status: ActionStatusInfo) -> ActionStatusInfo:
        """Local platform: ready means the prediction server answers with this model, and
        stopped means it no longer answers for the deployment."""
        assert self.server is not None
        problem = None
        if action.kind in NEEDS_ARTIFACT and action.desired is not None:
            problem = await self.server.wait_model_loaded(action.deployment_id, action.desired.model_id)
        elif action.kind == A.DEPLOYMENT_STOP:
            problem = await self.server.wait_model_unloaded(action.deployment_id)
        return drivers.failing(action.kind, problem) if problem else status

    def _finish(self, action: Action, status: ActionStatusInfo) -> None:
        dep_id = action.deployment_id
        previous = self.observed.get(dep_id)
        if (
            action.observed is not None
            and previous is not None
            and previous.state in (S.LAUNCHING, S.REPLACING_MODEL, S.SHUTTING_DOWN)
        ):
            previous = action.observed
        observed = _observed_from_status(dep_id, status.to_dict(), previous)
        if status.status == ActionStatus.OK and action.kind in NEEDS_ARTIFACT and action.desired is not None:
            data = status.data or {}
            observed = ObservedDeployment(
                dep_id,
                status.state or S.READY,
                data.get(ActionDataFields.CURRENT_MODEL_ID) or action.desired.model_id,
                data.get(ActionDataFields.PREDICTION_URL) or (previous.prediction_url if previous else None),
                status.msg,
            )
        if action.kind == A.DEPLOYMENT_STOP and status.status == ActionStatus.OK:
            observed = ObservedDeployment(dep_id, S.STOPPED, None, None, status.msg)
        self.observed[dep_id] = observed
        if status.status in (ActionStatus.OK, ActionStatus.WARN):
            self.failures.pop(dep_id, None)
            self.retry_at.pop(dep_id, None)
        else:
            count = self.failures[dep_id] = self.failures.get(dep_id, 0) + 1
            delay = min(self.settings.retry_base * 2 ** (count - 1), self.settings.retry_max)
            self.retry_at[dep_id] = time.monotonic() + delay
            log.warning(
                "action=%s deployment=%s failed (%d): %s; retry in %.1fs",
                action.kind,
                dep_id,
                count,
                mask(status.msg or ""),
                delay,
            )
        self._event(dep_id, action.kind, status)

    async def _run_plugin(self, kind: str, action: Action | None, artifact: Path | None = None) -> ActionStatusInfo:
        assert self.desired is not None and self._driver is not None
        env = self.desired.environment
        deployment = None
        if action is not None:
            deployment = drivers.deployment_info(
                action.desired,
                action.observed,
                action.deployment_id,
                artifact,
                replacing=kind == A.DEPLOYMENT_REPLACE_MODEL,
            )
        pe_deployments = (
            [
                drivers.deployment_info(d, self.observed.get(d.id), d.id, None)
                for d in self.desired.deployments
                if d.active
            ]
            if kind == A.PE_STATUS
            else []
        )
        config = drivers.action_config(
            env, drivers.plugin_config_for(env, self._plugin_overrides), pe_deployments, deployment
        )
        return await self._driver.run(kind, config, self.settings.action_timeout)

    # ----- reporting ---------------------------------------------------------------------
    def _event(self, dep_id: str | None, action: str, status: ActionStatusInfo) -> None:
        self._events.append(
            {
                "deploymentId": dep_id,
                "action": action,
                "result": status.status,
                "durationSeconds": status.duration,
                "message": mask(status.msg or ""),
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )

    def status_payload(self) -> dict[str, Any]:
        assert self.desired is not None
        deployments = []
        for desired in self.desired.deployments:
            seen = self.observed.get(desired.id)
            deployments.append(
                {
                    "id": desired.id,
                    "state": seen.state if seen else S.STOPPED,
                    "modelId": seen.model_id if seen else None,
                    "predictionUrl": seen.prediction_url if seen else None,
                    "message": mask(seen.message or "") if seen else "not started yet",
                    "oldModelInUse": bool(seen.old_model_in_use) if seen else False,
                }
            )
        # Deleted in the control plane but still running here: reported until stopped, so
        # the control plane purges a deleted deployment only once it is really gone.
        wanted = {d.id for d in self.desired.deployments}
        for dep_id, seen in self.observed.items():
            if dep_id not in wanted and (seen.state != S.STOPPED or dep_id in self.in_flight):
                deployments.append(
                    {
                        "id": dep_id,
                        "state": seen.state,
                        "modelId": seen.model_id,
                        "predictionUrl": seen.prediction_url,
                        "message": mask(seen.message or ""),
                        "oldModelInUse": bool(seen.old_model_in_use),
                    }
                )
        return {"environment": dict(self.env_status), "deployments": deployments}

    async def _report(self) -> None:
        if self.client is None or self.desired is None:
            self._events.clear()
            return
        # At most one report per REPORT_MIN_INTERVAL: while many actions finish, each pass
        # would otherwise post every deployment's status again.
        now = time.monotonic()
        if now - self._last_report_at < REPORT_MIN_INTERVAL:
            self._report_due_at = self._last_report_at + REPORT_MIN_INTERVAL
            return
        self._report_due_at = None
        env_id = self.desired.environment.id
        events, self._events = self._events, []
        payload = self.status_payload()
        try:
            if events:
                await asyncio.to_thread(self.client.post_events, env_id, events)
                self._last_report_at = now
            if payload != self._last_report or now - self._last_status_at > 60:  # also a heartbeat
                await asyncio.to_thread(self.client.report_status, env_id, payload)
                self._last_report, self._last_report_at, self._last_status_at = payload, now, now
        except Exception as exc:
            self._events = events + self._events  # keep them for the next pass
            log.warning("report to control plane failed: %s", mask(str(exc)))

    async def _shutdown(self) -> None:
        try:
            if self._driver is not None and self.desired is not None:
                await self._run_plugin(A.PLUGIN_STOP, None)
        finally:
            if self.server is not None:
                await self.server.stop()
            if self.tracker is not None:  # after the server, so it can send what the server spooled last
                await self.tracker.stop()


def _observed_from_status(dep_id: str, raw: dict[str, Any], previous: ObservedDeployment | None) -> ObservedDeployment:
    data = raw.get("data") or {}
    state = raw.get("state") or (S.READY if raw.get("status") == ActionStatus.OK else S.UNKNOWN)
    return ObservedDeployment(
        dep_id,
        state,
        data.get(ActionDataFields.CURRENT_MODEL_ID) or (previous.model_id if previous else None),
        data.get(ActionDataFields.PREDICTION_URL) or (previous.prediction_url if previous else None),
        raw.get("msg"),
        bool(data.get(ActionDataFields.OLD_MODEL_IN_USE)),
    )


def _transient(action: Action) -> ObservedDeployment:
    state = {A.DEPLOYMENT_STOP: S.SHUTTING_DOWN, A.DEPLOYMENT_REPLACE_MODEL: S.REPLACING_MODEL}.get(
        action.kind, S.LAUNCHING
    )
    prev = action.observed
    return ObservedDeployment(
        action.deployment_id,
        state,
        prev.model_id if prev else None,
        prev.prediction_url if prev else None,
        action.reason,
    )


def _safe(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value) or "env"
