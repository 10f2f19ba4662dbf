"""The reconciler loop and the per-deployment slots, over a fake driver and a fake clock:
no plugin, no process, no sleep — time moves only when the test advances it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from deckhand.agent.model import Action
from deckhand.agent.slots import Slot, SlotState
from deckhand.plugin.action_status import ActionStatus, ActionStatusInfo
from deckhand.plugin.constants import BosunPluginActions, DeploymentState

from .fakes import FakeClock, FakeDriver, FakeProcessDriver, deployment, fake_agent

FAILED = ActionStatusInfo(ActionStatus.ERROR, msg="image pull failed", state=DeploymentState.ERROR)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run `scenario` and check it left no task behind."""

    async def checked() -> None:
        await scenario()
        assert asyncio.all_tasks() == {asyncio.current_task()}, asyncio.all_tasks()

    asyncio.run(checked())


def test_slot_states_and_backoff() -> None:
    slot = Slot("d1")
    assert slot.state(0) is SlotState.IDLE
    task = object()
    slot.begin(Action(BosunPluginActions.DEPLOYMENT_START, "d1", None, None, "test"), task)  # type: ignore[arg-type]
    assert slot.state(0) is SlotState.RUNNING
    slot.overrunning = True
    assert slot.state(0) is SlotState.OVERRUNNING
    assert slot.record(False, now=10, retry_base=0.5, retry_max=1.5) == 0.5
    slot.end()
    assert slot.state(10.4) is SlotState.BACKOFF and slot.state(10.5) is SlotState.IDLE
    assert [slot.record(False, now=10, retry_base=0.5, retry_max=1.5) for _ in range(3)] == [1.0, 1.5, 1.5]
    assert slot.record(True, now=20, retry_base=0.5, retry_max=1.5) is None
    assert slot.failures == 0 and slot.state(20) is SlotState.IDLE


def test_timed_out_thread_keeps_its_slot_and_is_retried_only_after_it_returned() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeDriver(clock)
        agent, _, sink = fake_agent(driver, clock, deployment("d1"))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(0.1)
        assert [(c.action, c.deployment_id) for c in driver.calls] == [(BosunPluginActions.DEPLOYMENT_START, "d1")]

        await clock.advance(5)  # five timeouts' worth: the old code started it again every 1.5 s
        assert len(driver.calls) == 1
        slot = agent.slots.get("d1")
        assert slot.state(clock.now()) is SlotState.OVERRUNNING
        assert "timed out, still running" in agent.observed["d1"].message
        reported = agent.status_payload()["deployments"][0]
        assert reported["state"] == DeploymentState.LAUNCHING and "timed out, still running" in reported["message"]
        assert any(e["result"] == ActionStatus.WARN and "still running" in e["message"] for e in sink.events)

        driver.calls[0].end(FAILED)  # the thread returns, failed, at t=5.1
        returned_at = clock.now()
        await clock.advance(0.4)
        assert len(driver.calls) == 1 and slot.state(clock.now()) is SlotState.BACKOFF
        await clock.advance(0.2)
        assert [c.action for c in driver.calls] == [
            BosunPluginActions.DEPLOYMENT_START,
            BosunPluginActions.DEPLOYMENT_RELAUNCH,
        ]
        assert driver.calls[1].started_at >= returned_at + 0.5
        assert driver.most_per_deployment == {"d1": 1}

        driver.calls[1].end()
        await clock.advance(0.1)
        assert agent.observed["d1"].state == DeploymentState.READY and slot.failures == 0
        stop.set()
        await clock.advance(0.1)
        await task

    run(scenario)


def test_a_late_result_is_recorded_and_planned_from() -> None:
    """Decision: a thread's late result is recorded, not discarded — the observed state says
    what the plugin did; the next pass compares it with the desired state of that moment."""

    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeDriver(clock)
        agent, source, sink = fake_agent(driver, clock, deployment("d1"))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(2)
        source.push(deployment("d1", active=False))  # deactivated while its start overruns
        await clock.advance(2)
        assert len(driver.calls) == 1, "nothing may start on the deployment before its thread returned"

        driver.calls[0].end()
        await clock.advance(0.1)
        assert [c.action for c in driver.calls] == [
            BosunPluginActions.DEPLOYMENT_START,
            BosunPluginActions.DEPLOYMENT_STOP,
        ]
        late = [
            e
            for e in sink.events
            if e["action"] == BosunPluginActions.DEPLOYMENT_START and e["result"] == ActionStatus.OK
        ]
        assert late and "returned after its 1 s timeout" in late[0]["message"]
        driver.calls[1].end()
        await clock.advance(0.1)
        assert agent.observed["d1"].state == DeploymentState.STOPPED
        stop.set()
        await clock.advance(0.1)
        await task

    run(scenario)


def test_parallelism_is_never_exceeded_with_timed_out_threads_holding_permits() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeDriver(clock)
        names = [f"d{i:02}" for i in range(12)]
        agent, _, _ = fake_agent(driver, clock, *(deployment(n) for n in names), parallelism=3)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(0.1)
        assert len(driver.live()) == 3
        await clock.advance(5)  # all three time out: they keep their permits
        assert len(driver.calls) == 3 and agent.slots.permits.locked()
        assert sum(s.overrunning for s in agent.slots) == 3

        step = 0
        while driver.live():
            driver.live()[0].end()
            step += 1
            await clock.advance(0.3 if step % 2 else 1.7)  # some end within the timeout, some after
            assert len(driver.live()) <= 3
        assert driver.most_at_once == 3
        assert len(driver.calls) == len(names) and set(driver.most_per_deployment.values()) == {1}
        assert all(agent.observed[n].state == DeploymentState.READY for n in names)
        stop.set()
        await clock.advance(0.1)
        await task

    run(scenario)


def test_shutdown_cancels_queued_work_and_waits_for_a_running_thread() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeDriver(clock)
        agent, _, _ = fake_agent(driver, clock, deployment("d1"), deployment("d2"), parallelism=1)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(2)  # d1 overruns in its thread; d2 waits for the permit
        assert [c.deployment_id for c in driver.calls] == ["d1"]
        assert agent.slots.get("d2").state(clock.now()) is SlotState.RUNNING

        stop.set()
        await clock.advance(3)
        assert not task.done(), "the shutdown must wait for the thread (within the grace)"
        assert BosunPluginActions.PLUGIN_STOP not in driver.env_calls
        driver.calls[0].end()
        await clock.advance(0.1)
        assert task.done()
        await task
        assert [c.deployment_id for c in driver.calls] == ["d1"], "queued work must not start during a shutdown"
        assert driver.env_calls[-1] == BosunPluginActions.PLUGIN_STOP

    run(scenario)


def test_shutdown_leaves_a_hung_thread_after_the_grace_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "deckhand.agent")

    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeDriver(clock)
        agent, _, _ = fake_agent(driver, clock, deployment("d1"), shutdown_grace=5)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(2)
        stop.set()
        await clock.advance(4.8)
        assert not task.done()
        await clock.advance(0.4)
        assert task.done()
        await task
        assert driver.live(), "the fake thread never returned"
        assert driver.env_calls[-1] == BosunPluginActions.PLUGIN_STOP

    run(scenario)
    assert "waiting up to 5 s for 1 plugin thread(s): deployment_start:d1" in caplog.text
    assert "1 plugin thread(s) still running after 5 s, left behind: deployment_start:d1" in caplog.text


def test_a_timed_out_process_is_killed_and_reaped_before_its_slot_frees(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeProcessDriver(tmp_path)
        agent, _, sink = fake_agent(driver, clock, deployment("d1"), deployment("d2"), parallelism=1)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(0.5)
        first = driver.processes["d1"]
        assert driver.killed == [] and set(driver.processes) == {"d1"}

        await clock.advance(1)  # past the 1 s timeout
        assert driver.killed == [first.pid]
        slot = agent.slots.get("d1")
        assert slot.state(clock.now()) is SlotState.RUNNING, "killed but not reaped: the slot stays busy"
        assert set(driver.processes) == {"d1"}, "and its permit stays taken"

        first.exit(-9)  # reaped
        await clock.advance(0.1)
        assert slot.state(clock.now()) is SlotState.BACKOFF
        assert agent.observed["d1"].state == DeploymentState.ERROR
        assert "plugin process killed" in agent.observed["d1"].message
        assert any(e["result"] == ActionStatus.ERROR and "plugin process killed" in e["message"] for e in sink.events)
        assert set(driver.processes) == {"d1", "d2"}
        assert [d.name for d in tmp_path.iterdir()] == [f"deployment_start-d2-{driver.processes['d2'].pid}"], (
            "an action's temp dir is removed once its process is reaped"
        )

        stop.set()  # d2's process runs: the shutdown kills it and waits until it is reaped
        await clock.advance(0.1)
        assert driver.killed == [first.pid, driver.processes["d2"].pid]
        assert not task.done()
        driver.processes["d2"].exit(-9)
        await clock.advance(0.1)
        await task

    run(scenario)


def test_an_overrunning_listing_is_not_started_again_until_it_returns() -> None:
    """The environment's own calls follow the same rule: one at a time, even past a timeout."""

    async def scenario() -> None:
        clock = FakeClock()
        driver = FakeDriver(clock, hold=frozenset({BosunPluginActions.DEPLOYMENT_LIST}))
        agent, _, _ = fake_agent(driver, clock, resync_interval=2)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await clock.advance(10)  # five resyncs
        assert driver.env_calls.count(BosunPluginActions.DEPLOYMENT_LIST) == 1
        assert agent.env_status["status"] == ActionStatus.ERROR
        assert "still running" in agent.env_status["message"]

        driver.held[0].end()
        for _ in range(30):  # the next resync lists again
            await clock.advance(0.1)
            if len(driver.held) == 2:
                break
        assert driver.env_calls.count(BosunPluginActions.DEPLOYMENT_LIST) == 2
        driver.held[1].end()  # within its timeout this time
        await clock.advance(0.1)
        assert agent.env_status["status"] == ActionStatus.OK
        stop.set()
        await clock.advance(0.1)
        await task

    run(scenario)
