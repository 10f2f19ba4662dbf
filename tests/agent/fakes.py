"""Fakes for driving EnvironmentAgent without plugins, processes or real time: a clock the
test advances, a driver whose actions run until the test ends them, a fake runner process,
a desired-state source the test feeds and a report sink that records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deckhand.agent import drivers
from deckhand.agent.artifacts import ArtifactCache
from deckhand.agent.config import AgentSettings
from deckhand.agent.model import DesiredDeployment, DesiredState, EnvironmentInfo
from deckhand.agent.platform_setup import Platform
from deckhand.agent.runtime import EnvironmentAgent
from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo
from deckhand.plugin.constants import BosunPluginActions, DeploymentState

ENV = EnvironmentInfo("fake-env", platform="fake")


async def settle(rounds: int = 200) -> None:
    """Let every task run until it waits on something (no threads, no I/O here)."""
    for _ in range(rounds):
        await asyncio.sleep(0)  # a yield to the loop, no time passes


class _Timer:
    def __init__(self, when: float, callback: Callable[[], Any]):
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time moves only in `advance`, firing timers in order and letting tasks run between."""

    def __init__(self) -> None:
        self.t = 0.0
        self._timers: list[_Timer] = []

    def now(self) -> float:
        return self.t

    def call_at(self, when: float, callback: Callable[[], Any]) -> Any:
        if when <= self.t:
            return asyncio.get_running_loop().call_soon(callback)
        timer = _Timer(when, callback)
        self._timers.append(timer)
        return timer

    async def advance(self, seconds: float) -> None:
        target = self.t + seconds
        await settle()
        for _ in range(100_000):
            self._timers = [t for t in self._timers if not t.cancelled]
            due = [t for t in self._timers if t.when <= target]
            if not due:
                break
            self.t = max(self.t, min(t.when for t in due))
            for timer in [t for t in due if t.when <= self.t]:
                self._timers.remove(timer)
                timer.callback()
            await settle()
        else:
            raise AssertionError("timers keep firing: a busy loop?")
        self.t = target
        await settle()


class FakeCall:
    """A plugin action that runs until the test calls `end()` (the thread returns, or the
    process is reaped). `killable` says which of the two it stands for."""

    def __init__(self, driver: FakeDriver, action: str, deployment_id: str, status: ActionStatusInfo, at: float):
        self.driver, self.action, self.deployment_id, self.status, self.started_at = (
            driver,
            action,
            deployment_id,
            status,
            at,
        )
        self.killable = driver.killable
        self.killed = False
        self._ended = asyncio.Event()

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    async def wait(self) -> ActionStatusInfo:
        await self._ended.wait()
        return self.status

    def kill(self) -> None:
        self.killed = True

    def end(self, status: ActionStatusInfo | None = None) -> None:
        assert self.running, f"{self.action}:{self.deployment_id} already ended"
        self.status = status or self.status
        self.driver._ended(self)
        self._ended.set()


class _Done:
    killable = False

    def __init__(self, status: ActionStatusInfo):
        self.status = status

    async def wait(self) -> ActionStatusInfo:
        return self.status

    def kill(self) -> None:
        pass


class FakeDriver:
    """Environment-level actions answer at once (deployment_list lists what the ended
    actions left running); deployment actions are FakeCalls the test ends. Counts how many
    run at once, in all and per deployment."""

    def __init__(self, clock: FakeClock, killable: bool = False, hold: frozenset[str] = frozenset()):
        self.clock = clock
        self.killable = killable
        self.hold = hold  # environment-level actions that run until the test ends them too
        self.calls: list[FakeCall] = []
        self.env_calls: list[str] = []
        self.held: list[FakeCall] = []
        self.world: dict[str, str] = {}  # deployment id -> model id, as the plugin would list it
        self.most_at_once = 0
        self.most_per_deployment: dict[str, int] = {}

    async def start(self, action: str, config: dict[str, Any]) -> drivers.PluginCall:
        info = config.get("deploymentInfo")
        if info is None:
            self.env_calls.append(action)
            if action not in self.hold:
                return _Done(self._env_status(action))
            held = FakeCall(self, action, "", self._env_status(action), self.clock.now())
            self.held.append(held)
            return held
        call = FakeCall(self, action, info["id"], _ok(action, info), self.clock.now())
        self.calls.append(call)
        self.most_at_once = max(self.most_at_once, len(self.live()))
        mine = len(self.live(info["id"]))
        self.most_per_deployment[info["id"]] = max(self.most_per_deployment.get(info["id"], 0), mine)
        return call

    def live(self, deployment_id: str | None = None) -> list[FakeCall]:
        return [c for c in self.calls if c.running and deployment_id in (None, c.deployment_id)]

    def _ended(self, call: FakeCall) -> None:
        if call.status.status != ActionStatus.OK or call in self.held:
            return
        if call.action == BosunPluginActions.DEPLOYMENT_STOP:
            self.world.pop(call.deployment_id, None)
        else:
            self.world[call.deployment_id] = (call.status.data or {})[ActionDataFields.CURRENT_MODEL_ID]

    def _env_status(self, action: str) -> ActionStatusInfo:
        if action != BosunPluginActions.DEPLOYMENT_LIST:
            return ActionStatusInfo(ActionStatus.OK, msg=f"{action} done")
        listing = {
            dep: {
                "status": ActionStatus.OK,
                "state": DeploymentState.READY,
                "data": {ActionDataFields.CURRENT_MODEL_ID: model},
            }
            for dep, model in self.world.items()
        }
        return ActionStatusInfo(ActionStatus.OK, msg="listed", data=listing)


def _ok(action: str, info: dict[str, Any]) -> ActionStatusInfo:
    if action == BosunPluginActions.DEPLOYMENT_STOP:
        return ActionStatusInfo(ActionStatus.OK, msg="stopped", state=DeploymentState.STOPPED)
    model = info.get("newModelId") or info["modelId"]
    return ActionStatusInfo(
        ActionStatus.OK,
        msg=f"{action} done",
        state=DeploymentState.READY,
        data={ActionDataFields.CURRENT_MODEL_ID: model, ActionDataFields.PREDICTION_URL: f"http://x/{info['id']}"},
    )


class FakeProcess:
    """What SubprocessCall needs of an asyncio process; it exits when the test says."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    async def communicate(self) -> tuple[bytes, bytes]:
        await self._exited.wait()
        return b"", b"Killed"

    def exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()


class FakeProcessDriver:
    """Each deployment action is a real SubprocessCall over a FakeProcess; `kill_group`
    only records the process group it was asked to kill."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.processes: dict[str, FakeProcess] = {}  # deployment id -> its latest process
        self.killed: list[int] = []
        self.env_calls: list[str] = []

    async def start(self, action: str, config: dict[str, Any]) -> drivers.PluginCall:
        info = config.get("deploymentInfo")
        if info is None:
            self.env_calls.append(action)
            data = {} if action == BosunPluginActions.DEPLOYMENT_LIST else None
            return _Done(ActionStatusInfo(ActionStatus.OK, msg=f"{action} done", data=data))
        proc = self.processes[info["id"]] = FakeProcess(1000 + len(self.killed) + len(self.processes))
        work = self.tmp / f"{action}-{info['id']}-{proc.pid}"
        work.mkdir(parents=True)
        return drivers.SubprocessCall(action, proc, work, kill_group=self.killed.append)


class FakeSource:
    """The first desired state at once, later ones when the test pushes them."""

    def __init__(self, state: DesiredState):
        self.state = state
        self._changed = asyncio.Event()

    def push(self, *deployments: DesiredDeployment) -> None:
        self.state = DesiredState(self.state.revision + 1, self.state.environment, deployments)
        self._changed.set()

    async def next_state(self, current: DesiredState | None, timeout: float) -> DesiredState:
        if current is None or current.revision != self.state.revision:
            return self.state
        self._changed.clear()
        await self._changed.wait()
        return self.state


class FakeSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []

    async def post_events(self, env_id: str, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)

    async def report_status(self, env_id: str, payload: dict[str, Any]) -> None:
        self.statuses.append(payload)


def deployment(dep_id: str, model: str = "m1", active: bool = True) -> DesiredDeployment:
    return DesiredDeployment(dep_id, model, active=active, artifact_path=f"/packages/{model}.dhpkg")


def fake_agent(
    driver: Any, clock: FakeClock, *deployments: DesiredDeployment, **settings: Any
) -> tuple[EnvironmentAgent, FakeSource, FakeSink]:
    """An agent over fakes: 1 s action timeout, 0.5 s first retry, no resync unless asked."""
    values: dict[str, Any] = {
        "work_dir": Path("/nonexistent/agent"),
        "action_timeout": 1.0,
        "retry_base": 0.5,
        "retry_max": 4.0,
        "resync_interval": 3600.0,
        "shutdown_grace": 5.0,
        **settings,
    }
    source = FakeSource(DesiredState(1, ENV, tuple(deployments)))
    sink = FakeSink()
    platform = Platform(driver, ArtifactCache(Path("/nonexistent/packages")))

    async def set_up(env: EnvironmentInfo) -> Platform:
        return platform

    agent = EnvironmentAgent(AgentSettings(**values), source, set_up=set_up, sink=sink, clock=clock)
    return agent, source, sink
