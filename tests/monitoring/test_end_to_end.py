"""Prediction server (monitoring on) -> channel -> tracking agent -> control plane queries,
and the local platform's wiring (the agent runs the tracking agent beside the server)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from deckhand.client.control_plane import ControlPlaneClient
from deckhand.monitoring.testing import TrackingAgentProcess
from deckhand.packages.demo import sample_rows
from deckhand.testing import GiveUp, free_port, wait_until, wait_until_async

from .conftest import ADMIN_TOKEN, wait_for_requests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _serve(models_dir: Path, port: int, spec: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deckhand.cli", "serve", "--models-dir", str(models_dir),
             "--host", "127.0.0.1", "--port", str(port), "--monitoring", spec],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def answering() -> bool:
        if proc.poll() is not None:
            raise GiveUp(f"the prediction server exited with {proc.returncode}:\n{log.read_text()}")
        return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200

    try:
        wait_until(answering, 60, what=f"the prediction server to answer /ping (see {log})")
    except BaseException:
        proc.kill()
        raise
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.mark.parametrize("channel", ["spool", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def test_prediction_server_to_control_plane(
    channel: str, tmp_path: Path, request, control_plane, cp_deployment, demo_package
) -> None:  # type: ignore[no-untyped-def]
    from deckhand import deployment_dirs

    dep = cp_deployment["id"]
    spec = f"spool:{tmp_path / 'spool'}"
    if channel == "amqp":
        spec = request.getfixturevalue("rabbitmq").spec(queue=f"e2e-{dep}")
    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, dep, dep, "iris-model", demo_package)
    port = free_port()
    server = _serve(models, port, spec, tmp_path / "serve.log")
    try:
        with TrackingAgentProcess(spec, control_plane.url, ADMIN_TOKEN, tmp_path / "agent.log", flush_interval=0.2):
            url = f"http://127.0.0.1:{port}/deployments/{dep}/predictions"
            rows = sample_rows(40, seed=3)
            with httpx.Client(timeout=10) as http:
                for i in range(150):
                    assert http.post(url, json=[rows[i % 40]]).status_code == 200
                for _ in range(3):
                    assert http.post(url, json=rows[:5]).status_code == 200
                for _ in range(10):  # bad input: user errors
                    assert http.post(url, json=[{"sepal_length": "wide"}]).status_code in (400, 422)
            totals = wait_for_requests(control_plane.url, dep, 163)
        with ControlPlaneClient(control_plane.url, ADMIN_TOKEN) as client:
            predictions = client.prediction_distribution(dep)
            drift = client.feature_drift(dep)
    finally:
        _stop(server)
    assert totals["requests"] == 163 and totals["userErrors"] == 10 and totals["systemErrors"] == 0
    assert totals["rows"] == 165  # 150 one-row + 3 five-row requests; a refused body has no rows
    assert totals["latencyP50Ms"] is not None and totals["latencyP50Ms"] > 0
    assert predictions["targetType"] == "multiclass"
    assert sum(c["count"] for c in predictions["classes"]) == 165
    assert drift["baseline"] == "package"
    names = {f["name"] for f in drift["features"]}
    assert names == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert all(f["status"] in ("ok", "warning", "drift") for f in drift["features"])


def test_local_platform_runs_and_restarts_a_tracking_agent(tmp_path: Path, control_plane, demo_package) -> None:  # type: ignore[no-untyped-def]
    """What the quickstart relies on: a local environment gets live service health."""
    from deckhand.agent.config import AgentSettings, EnvironmentSettings
    from deckhand.agent.runtime import EnvironmentAgent
    from deckhand.agent.sources import ControlPlaneSource

    client = ControlPlaneClient(control_plane.url, ADMIN_TOKEN)
    env = client.create_environment(name="local-mon", platform="local")
    package = client.upload_package(demo_package)
    settings = AgentSettings(
        url=control_plane.url, token=ADMIN_TOKEN, work_dir=tmp_path / "agent", long_poll_timeout=5, resync_interval=5
    )

    async def scenario() -> tuple[dict, dict, int]:
        agent = EnvironmentAgent(
            settings,
            ControlPlaneSource(client, env["id"]),
            env_settings=EnvironmentSettings(id=env["id"]),
            client=client,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            dep = await asyncio.to_thread(
                client.create_deployment, name="iris", environment_id=env["id"], model_package_id=package["id"]
            )

            async def ready_url() -> str | None:
                observed = (await asyncio.to_thread(client.get_deployment, dep["id"])).get("observed") or {}
                return observed.get("predictionUrl") if observed.get("state") == "ready" else None

            url = await wait_until_async(ready_url, 90, 0.2, what="the deployment ready")
            assert agent.tracker is not None and agent.tracker.pid is not None
            rows = sample_rows(5)
            async with httpx.AsyncClient(timeout=10) as http:
                for i in range(25):
                    assert (await http.post(url, json=[rows[i % 5]])).status_code == 200
            first = await asyncio.to_thread(wait_for_requests, control_plane.url, dep["id"], 25, 60.0)
            # the supervisor restarts a tracking agent that dies
            old_pid = agent.tracker.pid
            import os
            import signal

            os.kill(old_pid, signal.SIGKILL)
            async with httpx.AsyncClient(timeout=10) as http:
                for i in range(10):
                    assert (await http.post(url, json=[rows[i % 5]])).status_code == 200
            second = await asyncio.to_thread(wait_for_requests, control_plane.url, dep["id"], 35, 60.0)
            return first, second, agent.tracker.restarts
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    first, second, restarts = asyncio.run(scenario())
    client.close()
    assert first["requests"] == 25
    assert second["requests"] == 35
    assert restarts >= 1


def test_models_of_a_deployment_through_a_spool_and_the_tracking_agent(
    tmp_path: Path, control_plane, cp_deployment
) -> None:  # type: ignore[no-untyped-def]
    """Champion, canary and a challenger (shadow) of one deployment: the prediction server's
    reporter and a producer's raw records (folded into blocks) go through a real spool to
    the real tracking agent; the deployment counts what clients got, each model its own."""
    import time

    from deckhand.monitoring import MonitoringReporter
    from deckhand.monitoring.channels import channel_from_spec
    from deckhand.monitoring.records import data_record, stats_record

    dep, champion = cp_deployment["id"], cp_deployment["modelPackageId"]
    spec = f"spool:{tmp_path / 'spool'}"
    reporter = MonitoringReporter(spec, flush_interval=0.05)
    now = time.time()
    for i in range(30):  # what the prediction server counts: the champion and the canary answer...
        reporter.count_request(dep, champion if i % 3 else "canary", now, 1, 2.0, None, ["setosa"])
    for i in range(12):  # ...and a challenger scores copies, compared with the champion's answers
        reporter.count_request(
            dep, "challenger", now, 1, 3.0, None, ["virginica"], shadow=True, comparison=(1, int(i < 9), 0.0)
        )
    assert reporter.flush(10)
    reporter.close()
    producer = channel_from_spec(spec)
    raw = []
    for i in range(6):  # raw records: 6 more canary requests (one failed), 4 more challenger copies
        raw.append(stats_record(dep, "canary", 2, 5.0, system_errors=int(i == 0), timestamp=now))
    for _ in range(4):
        record = stats_record(dep, "challenger", 1, 3.0, timestamp=now)
        record.update(data_record(dep, "challenger", None, ["virginica"], timestamp=now))
        record.update(shadow=True, comparedRows=1, agreedRows=1, absDiffSum=0.0)
        raw.append(record)
    producer.publish(raw)
    producer.close()
    with TrackingAgentProcess(spec, control_plane.url, ADMIN_TOKEN, tmp_path / "agent.log", flush_interval=0.2):
        totals = wait_for_requests(control_plane.url, dep, 36)
    with ControlPlaneClient(control_plane.url, ADMIN_TOKEN) as client:
        found = {m["modelId"]: m for m in client.model_monitoring(dep)["models"]}
    assert totals["requests"] == 36 and totals["systemErrors"] == 1  # no shadow request
    assert set(found) == {champion, "canary", "challenger"}
    assert (found[champion]["requests"], found[champion]["champion"]) == (20, True)
    assert (found["canary"]["requests"], found["canary"]["systemErrors"], found["canary"]["shadow"]) == (16, 1, False)
    challenger = found["challenger"]
    assert (challenger["requests"], challenger["shadow"], challenger["compared"], challenger["agreed"]) == (
        16,
        True,
        16,
        13,
    )
    assert challenger["psiVsChampion"] is None  # 16 predictions each side: too few for a PSI
