"""Regression: an in-process action that outlives its timeout must not be started again
on top of itself (the test plugin with launch_time_sec > actionTimeoutSeconds ran three
deployment_start calls on one deployment at once). Real threads, sub-second times."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from deckhand.agent.config import AgentSettings, EnvironmentSettings
from deckhand.agent.model import DesiredDeployment, DesiredState, EnvironmentInfo
from deckhand.agent.runtime import EnvironmentAgent
from deckhand.plugins.test.plugin import TestPlugin
from deckhand.testing import wait_until_async


class OneState:
    """A desired-state source that gives one state, then nothing new."""

    def __init__(self, state: DesiredState):
        self.state = state

    async def next_state(self, current: DesiredState | None, timeout: float) -> DesiredState:
        if current is None:
            return self.state
        await asyncio.Event().wait()  # until cancelled
        raise AssertionError("unreachable")


def test_timed_out_thread_is_not_started_again_while_it_runs(tmp_path: Path, monkeypatch) -> None:
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    starts: list[float] = []
    lock = threading.Lock()
    original = TestPlugin.deployment_start

    def counting(self, deployment_info):  # type: ignore[no-untyped-def]
        with lock:
            running[deployment_info.id] = running.get(deployment_info.id, 0) + 1
            most[deployment_info.id] = max(most.get(deployment_info.id, 0), running[deployment_info.id])
            starts.append(time.monotonic())
        try:
            return original(self, deployment_info)
        finally:
            with lock:
                running[deployment_info.id] -= 1

    monkeypatch.setattr(TestPlugin, "deployment_start", counting)
    artifact = tmp_path / "model.dhpkg"
    artifact.write_bytes(b"not read by the test plugin")
    env = EnvironmentInfo(
        "slow-env", platform="test", plugin_config={"launch_time_sec": 0.6, "tmp_dir": str(tmp_path / "state")}
    )
    state = DesiredState(1, env, (DesiredDeployment("d1", "m1", artifact_path=str(artifact)),))
    settings = AgentSettings(
        work_dir=tmp_path / "agent", action_timeout=0.1, retry_base=0.05, retry_max=0.05, resync_interval=60
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        agent = EnvironmentAgent(settings, OneState(state), env_settings=EnvironmentSettings(id="slow-env"))
        task = asyncio.create_task(agent.run(stop))

        def ready() -> bool:
            seen = agent.observed.get("d1")
            return seen is not None and seen.state == "ready"

        await wait_until_async(ready, 10, 0.02, what="d1 ready")
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert most == {"d1": 1}, f"deployment_start ran {most} times at once; starts at {starts}"
    assert len(starts) == 1, f"started again although the first start succeeded (late): {starts}"
