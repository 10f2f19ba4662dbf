"""One prediction environment's control loop: follow the desired state, observe the
plugin, plan, launch the planned actions and report back. Each deployment's action runs
in its slot (agent/slots.py: one at a time per deployment, a bounded number holding a
parallelism permit, timeouts and retries); reporting and platform set-up live in
agent/reporting.py and agent/platform_setup.py."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from deckhand.agent import drivers
from deckhand.agent.clock import Clock, MonotonicClock, sleep_until, until
from deckhand.agent.config import AgentSettings, EnvironmentSettings
from deckhand.agent.model import Action, DesiredState, ObservedDeployment
from deckhand.agent.platform_setup import Platform, SetUp, set_up_platform
from deckhand.agent.platforms import PredictionServerSupervisor, TrackingAgentSupervisor
from deckhand.agent.reconcile import plan
from deckhand.agent.reporting import ClientSink, Reporter, ReportSink, status_payload
from deckhand.agent.slots import Slot, Slots
from deckhand.agent.sources import DesiredStateSource
from deckhand.agent.tasks import TaskSet, cancel_and_wait
from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo, failing_status
from deckhand.plugin.constants import DEPLOYMENT_STATES, RUNNING, TRANSIENT_STATES, BosunPluginActions, DeploymentState
from deckhand.secrets import mask

log = logging.getLogger("deckhand.agent")

NEEDS_ARTIFACT = {
    BosunPluginActions.DEPLOYMENT_START,
    BosunPluginActions.DEPLOYMENT_REPLACE_MODEL,
    BosunPluginActions.DEPLOYMENT_RELAUNCH,
}
COALESCE_SECONDS = 0.01  # a pass waits this long after waking, so a burst of completions makes one pass


class EnvironmentAgent:
    def __init__(
        self,
        settings: AgentSettings,
        source: DesiredStateSource,
        *,
        env_settings: EnvironmentSettings | None = None,
        client: Any | None = None,
        set_up: SetUp | None = None,
        sink: ReportSink | None = None,
        clock: Clock | None = None,
    ):
        """`set_up`, `sink` and `clock` replace the real platform, control plane reports
        and time (tests pass fakes)."""
        self.settings = settings
        self.source = source
        self.env_settings = env_settings or EnvironmentSettings(id="file")
        self.clock = clock or MonotonicClock()
        self.desired: DesiredState | None = None
        self.platform: Platform | None = None
        self.slots = Slots(settings.parallelism, self.clock)
        self.reporter = Reporter(sink or (ClientSink(client) if client is not None else None), self.clock)
        self.env_status: dict[str, Any] = {"status": ActionStatus.UNKNOWN, "message": "starting"}
        self.ready = asyncio.Event()
        self._set_up = set_up or functools.partial(set_up_platform, settings, self.env_settings, client=client)
        self._tasks = TaskSet()
        self._env_overrun: asyncio.Task[Any] | None = None  # an environment-level plugin thread past its timeout
        self._wake = asyncio.Event()

    @property
    def observed(self) -> dict[str, ObservedDeployment]:
        return self.slots.observed()

    @property
    def server(self) -> PredictionServerSupervisor | None:
        return self.platform.server if self.platform else None

    @property
    def tracker(self) -> TrackingAgentSupervisor | None:
        return self.platform.tracker if self.platform else None

    def status_payload(self) -> dict[str, Any]:
        assert self.desired is not None
        return status_payload(self.desired, self.observed, self.slots.running(), self.env_status)

    # ----- the loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        try:
            self.desired = await self.source.next_state(None, 0)
            env = self.desired.environment
            self.platform = await self._set_up(env)
            status = await self._env_call(BosunPluginActions.PLUGIN_START)
            self.reporter.event(None, BosunPluginActions.PLUGIN_START, status)
            self.env_status = {"status": status.status, "message": status.msg}
            log.info("environment=%s platform=%s started revision=%s", env.id, env.platform, self.desired.revision)
            self._tasks.spawn(self._follow_desired(stop), name="desired-state")
            last_resync: float | None = None
            while not stop.is_set():
                # A new desired state is planned against the observed state held here, which
                # every action's result keeps current; the plugin is asked again (a full
                # deployment_list + pe_status) only at each resync. Observing on every change
                # made 1,000 deployments created at once cost 1,000 full listings.
                now = self.clock.now()
                if last_resync is None or now - last_resync >= self.settings.resync_interval:
                    last_resync = now
                    await self._observe()
                self._launch(plan(self.desired.by_id(), self.observed, self.slots.busy()))
                await self.reporter.report(env.id, self.status_payload)
                self.ready.set()
                await self._sleep_until_needed(stop, last_resync)
        finally:
            try:
                await self._drain()
            finally:
                await self._shutdown()

    async def _sleep_until_needed(self, stop: asyncio.Event, last_resync: float) -> None:
        wake_at = min(
            t
            for t in (last_resync + self.settings.resync_interval, self.reporter.due_at, self.slots.next_retry())
            if t is not None
        )
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await until(self.clock, waiters, wake_at)
        finally:
            await cancel_and_wait(waiters)
        await sleep_until(self.clock, self.clock.now() + COALESCE_SECONDS)

    async def _follow_desired(self, stop: asyncio.Event) -> None:
        backoff = self.settings.retry_base
        while not stop.is_set():
            try:
                state = await self.source.next_state(self.desired, self.settings.long_poll_timeout)
                backoff = self.settings.retry_base
            except Exception as exc:  # control plane down: keep what we have, retry
                log.warning("desired state fetch failed: %s", mask(str(exc)))
                await sleep_until(self.clock, self.clock.now() + backoff)
                backoff = min(backoff * 2, self.settings.retry_max)
                continue
            if self.desired is None or state.revision != self.desired.revision:
                log.info("desired state revision=%s deployments=%d", state.revision, len(state.deployments))
                self.desired = state
                self._wake.set()

    # ----- observing ---------------------------------------------------------------------
    async def _observe(self) -> None:
        listed = await self._env_call(BosunPluginActions.DEPLOYMENT_LIST)
        if listed.status != ActionStatus.OK or not isinstance(listed.data, dict):
            self.env_status = {"status": listed.status, "message": f"deployment_list: {listed.msg}"}
            return
        known = self.observed
        self.slots.refresh(
            {str(d): _observed_from_status(str(d), raw or {}, known.get(str(d))) for d, raw in listed.data.items()}
        )
        pe = await self._env_call(BosunPluginActions.PE_STATUS)
        self.env_status = {"status": pe.status, "message": pe.msg}

    # ----- acting ------------------------------------------------------------------------
    def _launch(self, actions: list[Action]) -> None:
        for action in actions:
            slot = self.slots.get(action.deployment_id)
            slot.begin(action, self._tasks.spawn(self._execute(slot, action), f"{action.kind}:{action.deployment_id}"))

    async def _execute(self, slot: Slot, action: Action) -> None:
        try:
            # The permit bounds plugin work and is held until that work has really ended,
            # past its timeout too; waiting for the prediction server below does not count.
            async with self.slots.permits:
                log.info("action=%s deployment=%s reason=%r", action.kind, action.deployment_id, action.reason)
                slot.observed = _transient(action)
                status = await self._act(slot, action)
            if self.server is not None and status.status == ActionStatus.OK:
                status = await self._confirm_with_server(action, status)
            self._finish(slot, action, status)
        except Exception as exc:  # never lose the loop to one action
            log.exception("action %s failed", action.kind)
            self._finish(slot, action, failing_status(action.kind, f"agent error: {exc}"))
        finally:
            slot.end()
            self._wake.set()

    async def _act(self, slot: Slot, action: Action) -> ActionStatusInfo:
        assert self.platform is not None
        artifact = None
        if action.kind in NEEDS_ARTIFACT and action.desired is not None:
            try:
                artifact = await self.platform.cache.path_for(action.desired)
            except Exception as exc:
                return failing_status(action.kind, f"model package {action.desired.model_id}: {exc}")
        timeout = self.settings.action_timeout
        slot.call = call = await self._start_call(action.kind, action, artifact)
        try:
            status = await drivers.run_call(call, action.kind, timeout, self.clock)
            if status is not None:
                return status
            self._overran(slot, action)
            # Its real result, whenever the thread returns: recorded, not discarded — the
            # observed state must say what the plugin did, and the next pass plans from
            # there against whatever the desired state is by then.
            status = await call.wait()
            status.msg = f"{status.msg or status.status} (returned after its {timeout:g} s timeout)"
            return status
        finally:
            slot.call = None

    def _overran(self, slot: Slot, action: Action) -> None:
        slot.overrunning = True
        message = (
            f"{action.kind} did not finish within {self.settings.action_timeout:g} s; timed out, still running "
            "(a plugin thread cannot be killed): no other action for this deployment until it returns"
        )
        slot.observed = replace(slot.observed or _transient(action), message=message)
        log.warning("action=%s deployment=%s timed out, still running", action.kind, action.deployment_id)
        self.reporter.event(action.deployment_id, action.kind, ActionStatusInfo(ActionStatus.WARN, msg=message))
        self._wake.set()  # report it now

    async def _confirm_with_server(self, action: Action, status: ActionStatusInfo) -> ActionStatusInfo:
        """Local platform: ready means the prediction server answers with this model, and
        stopped means it no longer answers for the deployment."""
        assert self.server is not None
        problem = None
        if action.kind in NEEDS_ARTIFACT and action.desired is not None:
            problem = await self.server.wait_model_loaded(action.deployment_id, action.desired.model_id)
        elif action.kind == BosunPluginActions.DEPLOYMENT_STOP:
            problem = await self.server.wait_model_unloaded(action.deployment_id)
        return failing_status(action.kind, problem) if problem else status

    def _finish(self, slot: Slot, action: Action, status: ActionStatusInfo) -> None:
        dep_id = action.deployment_id
        previous = slot.observed
        if action.observed is not None and previous is not None and previous.state in TRANSIENT_STATES:
            previous = action.observed
        observed = _observed_from_status(dep_id, status.to_dict(), previous)
        if status.status == ActionStatus.OK and action.kind in NEEDS_ARTIFACT and action.desired is not None:
            data = status.data or {}
            observed = ObservedDeployment(
                dep_id,
                status.state or DeploymentState.READY,
                data.get(ActionDataFields.CURRENT_MODEL_ID) or action.desired.model_id,
                data.get(ActionDataFields.PREDICTION_URL) or (previous.prediction_url if previous else None),
                status.msg,
            )
        if action.kind == BosunPluginActions.DEPLOYMENT_STOP and status.status == ActionStatus.OK:
            observed = ObservedDeployment(dep_id, DeploymentState.STOPPED, None, None, status.msg)
        slot.observed = observed
        ok = status.status in (ActionStatus.OK, ActionStatus.WARN)
        delay = slot.record(ok, self.clock.now(), self.settings.retry_base, self.settings.retry_max)
        if delay is not None:
            log.warning(
                "action=%s deployment=%s failed (%d): %s; retry in %.1fs",
                action.kind,
                dep_id,
                slot.failures,
                mask(status.msg or ""),
                delay,
            )
        self.reporter.event(dep_id, action.kind, status)

    # ----- calling the plugin ------------------------------------------------------------
    async def _start_call(self, kind: str, action: Action | None, artifact: Path | None = None) -> drivers.PluginCall:
        assert self.desired is not None and self.platform is not None
        env = self.desired.environment
        deployment = None
        if action is not None:
            deployment = drivers.deployment_info(
                action.desired,
                action.observed,
                action.deployment_id,
                artifact,
                replacing=kind == BosunPluginActions.DEPLOYMENT_REPLACE_MODEL,
            )
        pe_deployments = []
        if kind == BosunPluginActions.PE_STATUS:
            observed = self.observed
            pe_deployments = [
                drivers.deployment_info(d, observed.get(d.id), d.id, None) for d in self.desired.deployments if d.active
            ]
        config = drivers.action_config(
            env, drivers.plugin_config_for(env, self.platform.overrides), pe_deployments, deployment
        )
        return await self.platform.driver.start(kind, config)

    async def _env_call(self, kind: str) -> ActionStatusInfo:
        """An environment-level action (plugin_start, deployment_list, pe_status, plugin_stop),
        awaited in the loop. One past its timeout in a thread is left to finish in the
        background, and no other environment-level call starts until it has."""
        if self._env_overrun is not None:
            return failing_status(kind, f"not run: {self._env_overrun.get_name()} is still running past its timeout")
        call = await self._start_call(kind, None)
        status = await drivers.run_call(call, kind, self.settings.action_timeout, self.clock)
        if status is not None:
            return status
        log.warning("action=%s timed out, still running", kind)
        self._env_overrun = self._tasks.spawn(self._await_overrun(call), name=kind)
        return failing_status(kind, f"{kind} did not finish within {self.settings.action_timeout:g} s; still running")

    async def _await_overrun(self, call: drivers.PluginCall) -> None:
        try:
            await call.wait()
        finally:
            self._env_overrun = None

    # ----- stopping ----------------------------------------------------------------------
    async def _drain(self) -> None:
        """Leave no task behind. Plugin threads cannot be killed, so they get up to
        `shutdownGraceSeconds` to return; everything else is cancelled now (an action waiting
        for its permit never starts; a plugin process is killed and reaped)."""
        threads = {s.task for s in self.slots if s.in_thread and s.task is not None}
        if self._env_overrun is not None:
            threads.add(self._env_overrun)
        await cancel_and_wait([t for t in self._tasks if t not in threads])
        if not threads:
            return
        grace = self.settings.shutdown_grace
        names = ", ".join(sorted(t.get_name() for t in threads))
        log.info("stopping: waiting up to %g s for %d plugin thread(s): %s", grace, len(threads), names)
        everything = asyncio.ensure_future(asyncio.wait(threads))
        try:
            await until(self.clock, [everything], self.clock.now() + grace)
        finally:
            everything.cancel()
        left = [t for t in threads if not t.done()]
        if left:
            log.warning(
                "stopping: %d plugin thread(s) still running after %g s, left behind: %s",
                len(left),
                grace,
                ", ".join(sorted(t.get_name() for t in left)),
            )
        await cancel_and_wait(left)

    async def _shutdown(self) -> None:
        if self.platform is None:
            return
        try:
            if self.desired is not None:
                status = await self._env_call(BosunPluginActions.PLUGIN_STOP)
                if status.status != ActionStatus.OK:
                    log.warning("plugin_stop: %s", mask(status.msg or ""))
        finally:
            await cancel_and_wait(list(self._tasks))  # a plugin_stop thread past its timeout
            await self.platform.stop()


def _observed_from_status(dep_id: str, raw: dict[str, Any], previous: ObservedDeployment | None) -> ObservedDeployment:
    data = raw.get("data") or {}
    state = raw.get("state") or (
        DeploymentState.READY if raw.get("status") == ActionStatus.OK else DeploymentState.UNKNOWN
    )
    if state not in DEPLOYMENT_STATES:
        # The documented test plugin lists a running deployment as `state: running`.
        state = DeploymentState.READY if state == RUNNING else DeploymentState.UNKNOWN
    return ObservedDeployment(
        dep_id,
        state,
        data.get(ActionDataFields.CURRENT_MODEL_ID) or (previous.model_id if previous else None),
        data.get(ActionDataFields.PREDICTION_URL) or (previous.prediction_url if previous else None),
        raw.get("msg"),
        bool(data.get(ActionDataFields.OLD_MODEL_IN_USE)),
    )


def _transient(action: Action) -> ObservedDeployment:
    state = {
        BosunPluginActions.DEPLOYMENT_STOP: DeploymentState.SHUTTING_DOWN,
        BosunPluginActions.DEPLOYMENT_REPLACE_MODEL: DeploymentState.REPLACING_MODEL,
    }.get(action.kind, DeploymentState.LAUNCHING)
    prev = action.observed
    return ObservedDeployment(
        action.deployment_id,
        state,
        prev.model_id if prev else None,
        prev.prediction_url if prev else None,
        action.reason,
    )
