"""The agent with a desired-state file and the local platform: real prediction server,
real filesystem plugin, real HTTP — start, replace, deactivate, restart adoption."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import yaml

from deckhand.agent.config import AgentSettings
from deckhand.agent.runtime import EnvironmentAgent
from deckhand.agent.sources import FileSource
from deckhand.packages.demo import sample_rows, train_demo_package
from deckhand.testing import wait_until_async

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pkgs")
    return {
        "a": _package(root / "a.dhpkg", seed=0),
        "b": _package(root / "b.dhpkg", seed=1),
    }


def _package(path: Path, seed: int) -> Path:
    train_demo_package(path, seed=seed)
    return path


def write_state(path: Path, deployments: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        yaml.safe_dump({"environment": {"id": "local-test", "platform": "local"}, "deployments": deployments})
    )
    tmp.replace(path)


def test_file_driven_agent_converges(tmp_path, packages):
    state = tmp_path / "deployments.yaml"
    write_state(state, [{"id": "d1", "modelPackage": str(packages["a"]), "modelId": "model-a"}])
    settings = AgentSettings(work_dir=tmp_path / "agent", resync_interval=1.0)

    async def scenario():
        stop = asyncio.Event()
        agent = EnvironmentAgent(settings, FileSource(state, poll_interval=0.1))
        task = asyncio.create_task(agent.run(stop))
        rows = sample_rows(3)
        async with httpx.AsyncClient() as http:

            async def observed(dep, state_name, model=None):
                seen = agent.observed.get(dep)
                return seen if seen and seen.state == state_name and (model is None or seen.model_id == model) else None

            async def stopped(dep):
                seen = agent.observed.get(dep)
                return seen is None or seen.state == "stopped"

            seen = await wait_until_async(lambda: observed("d1", "ready", "model-a"), 20, what="d1 ready with model-a")
            response = await http.post(seen.prediction_url, json=rows)
            assert response.status_code == 200 and len(response.json()["data"]) == 3

            # Replace the model while requests keep flowing: none may fail.
            failures = 0
            write_state(state, [{"id": "d1", "modelPackage": str(packages["b"]), "modelId": "model-b"}])
            loop = asyncio.get_running_loop()
            end = loop.time() + 20
            while loop.time() < end:
                r = await http.post(seen.prediction_url, json=rows)
                failures += r.status_code != 200
                if agent.observed["d1"].model_id == "model-b" and agent.observed["d1"].state == "ready":
                    break
            assert failures == 0
            info = (await http.get(f"{agent.server.url}/deployments/d1/info")).json()
            assert info["modelId"] == "model-b"

            # Deactivate: the directory and the route go away.
            write_state(state, [{"id": "d1", "modelPackage": str(packages["b"]), "active": False}])
            # "stopped" shows until the next listing, which no longer has the deployment:
            # gone from there is stopped too (what the agent reports upstream)
            await wait_until_async(lambda: stopped("d1"), 20, what="d1 stopped")
            assert not (tmp_path / "agent" / "local-test" / "deployments" / "d1").exists()
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(scenario())


def test_prediction_server_is_restarted_if_it_dies(tmp_path, packages):
    import os
    import signal

    state = tmp_path / "deployments.yaml"
    write_state(state, [{"id": "d1", "modelPackage": str(packages["a"])}])
    settings = AgentSettings(work_dir=tmp_path / "agent", resync_interval=1.0)

    async def scenario():
        stop = asyncio.Event()
        agent = EnvironmentAgent(settings, FileSource(state, poll_interval=0.1))
        task = asyncio.create_task(agent.run(stop))
        await wait_until_async(lambda: _ready(agent, "d1"), 20, what="d1 ready")
        os.killpg(agent.server.pid, signal.SIGKILL)
        async with httpx.AsyncClient() as http:

            async def answers():
                try:
                    r = await http.post(agent.observed["d1"].prediction_url, json=sample_rows(1))
                    return r.status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until_async(answers, 30, what="the restarted prediction server answering")
        assert agent.server.restarts == 1
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(scenario())


async def _ready(agent, dep):
    seen = agent.observed.get(dep)
    return seen is not None and seen.state == "ready"


def test_a_write_while_the_file_is_read_is_not_missed(tmp_path, packages, monkeypatch):
    """The desired-state file changes while the source reads it: the next poll loads the
    new content (the mtime recorded is the one of what was read)."""
    from deckhand.plugin import action_config

    state = tmp_path / "deployments.yaml"
    write_state(state, [{"id": "d1", "modelPackage": str(packages["a"]), "modelId": "model-a"}])
    source = FileSource(state, poll_interval=0.01)
    read = action_config.load_mapping_file

    def read_then_edit(*args, **kwargs):
        content = read(*args, **kwargs)
        monkeypatch.setattr(action_config, "load_mapping_file", read)  # only once
        time.sleep(0.02)  # a later mtime, whatever the clock's granularity
        write_state(state, [{"id": "d1", "modelPackage": str(packages["b"]), "modelId": "model-b"}])
        return content

    monkeypatch.setattr(action_config, "load_mapping_file", read_then_edit)
    first = source.load()
    assert first.deployments[0].model_id == "model-a"
    second = asyncio.run(source.next_state(first, timeout=2))
    assert second.deployments[0].model_id == "model-b"
