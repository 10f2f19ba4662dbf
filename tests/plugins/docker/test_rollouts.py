"""Rollouts end to end on the docker platform: a real control plane process (its rollout
controller ticking twice a second), a real agent with the Docker plugin, predictions through
the Traefik proxy, and monitoring carried back by RabbitMQ and the tracking agent container
(so the control plane listens on the engine's bridge address, as in test_monitoring.py).

Every change of share is a `deployment_replace_model` of the deployment's mix (a new model
image, the route moved once /ping passes), so a client loop runs through each scenario and
checks every answer: its status and which model answered it (`x-deckhand-model-id`, which
must come through the proxy):

- a canary that passes its gates is promoted (50 %, one step of 50 reaches 100 %), then the
  deployment rolls back to revision 1;
- a canary that raises on some rows fails its error-rate gate and is rolled back by the
  controller, while clients get the champion's answers and no failure;
- a challenger scores copies of live requests (in monitoring, shadow); clients only ever get
  the champion's answers.

After each, the deployment is deleted and the agent stopped: no container, network or route.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deckhand.agent.testing import AgentProcess, write_agent_config
from deckhand.client import ControlPlaneClient
from deckhand.packages.demo import sample_rows
from deckhand.plugin.constants import BosunPluginActions
from deckhand.plugins.docker import names
from deckhand.server.testing import ServerProcess

from .conftest import RequestLoop, predict, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(600)]

ADMIN = "dh_docker-rollouts-admin-token-0123456789"
BRIDGE_IP = os.environ.get("DECKHAND_DOCKER_BRIDGE_CIDR", "172.31.250.1/24").split("/")[0]
# Iris rows; about a third have petal_length > 5, on which the flaky package raises.
ROWS = sample_rows(200, seed=7)
RATE = 40.0  # client requests per second, through the proxy
SHADOW_COPIES = 20  # the challenger's scored copies to wait for in monitoring


@dataclass
class Stack:
    admin: ControlPlaneClient
    env_id: str
    agent: AgentProcess
    port: int  # the proxy's web port on 127.0.0.1


@pytest.fixture
def stack(tmp_path: Path, denv: Any, build_image: Any) -> Iterator[Stack]:
    """A control plane process on the bridge address, a monitored docker environment and an
    agent for it. At teardown the agent stops and nothing of the environment may be left."""
    build_image("rabbitmq", allow_existing=True)
    build_image("tracking-agent", allow_existing=True)
    with ServerProcess(
        tmp_path / "cp", bootstrap_token=ADMIN, host=BRIDGE_IP, extra_args=["--rollout-tick-seconds", "0.5"]
    ) as server:
        admin = ControlPlaneClient(server.url, ADMIN)
        config = {k: v for k, v in denv.config().items() if k != "MLOPS_BOSUN_PRED_ENV_ID"}
        env = admin.create_environment(name=denv.env_id, platform="docker", pluginConfig=config, monitoringEnabled=True)
        denv.labelled_id = env["id"]
        token = admin.create_token(f"agent-{env['id']}", "agent", [env["id"]])["token"]
        agent_config = write_agent_config(
            tmp_path / "agent.yaml", url=server.url, token=token, work_dir=tmp_path / "agent",
            environments=[{"id": env["id"]}],
        )  # fmt: skip
        agent = AgentProcess(agent_config, tmp_path / "agent").start()
        try:
            agent.wait_for_log("started revision=", 60)
            yield Stack(admin, env["id"], agent, denv.web_port)
        finally:
            code = agent.stop()
        assert code == 0, agent.output()[-3000:]
    # plugin_stop with nothing deployed: proxy, RabbitMQ, tracking agent and network go.
    assert denv.containers() == [], [(c.name, c.labels) for c in denv.containers()]
    assert denv.networks() == []
    assert denv.routers() == []


def _observed(admin: ControlPlaneClient, dep_id: str) -> dict[str, Any]:
    return admin.get_deployment(dep_id).get("observed") or {}


def _served(admin: ControlPlaneClient, dep_id: str) -> bool:
    """The agent reports the model the control plane says the deployment serves."""
    dep = admin.get_deployment(dep_id)
    seen = dep.get("observed") or {}
    return seen.get("state") == "ready" and seen.get("modelId") == dep["servedModelId"]


def _deploy(stack: Stack, name: str, package_id: str) -> tuple[str, str]:
    """A ready deployment: (its id, its path behind the proxy)."""
    dep = stack.admin.create_deployment(name, stack.env_id, package_id)
    try:
        wait_until(lambda: _served(stack.admin, dep["id"]), 180, 0.5, f"{name} ready")
    except AssertionError:
        print(stack.agent.output()[-3000:])
        raise
    path = f"/deployments/{dep['id']}/predictions"
    code, body = predict(f"http://127.0.0.1:{stack.port}{path}", ROWS[:2])
    assert code == 200 and len(body["data"]) == 2, (code, body)
    return dep["id"], path


def _rollout_ended(admin: ControlPlaneClient, dep_id: str) -> dict[str, Any] | None:
    rollout = admin.get_rollout(dep_id)
    return rollout if rollout["state"] != "running" else None


def _replacements(admin: ControlPlaneClient, dep_id: str) -> list[tuple[float, str]]:
    """The agent's replace events for the deployment, oldest first: (seconds, message)."""
    events = admin.list_events(deployment_id=dep_id)
    found = [e for e in events if e["action"] == BosunPluginActions.DEPLOYMENT_REPLACE_MODEL]
    found.sort(key=lambda e: e["timestamp"])
    return [(float(e.get("durationSeconds") or 0.0), e.get("message") or "") for e in found]


def _print_replacements(admin: ControlPlaneClient, dep_id: str) -> list[tuple[float, str]]:
    done = _replacements(admin, dep_id)
    for seconds, message in done:
        print(f"  deployment_replace_model {seconds:.1f} s: {message[:160]}")
    return done


def _remove(stack: Stack, denv: Any, dep_id: str) -> None:
    """Delete the deployment: its container and its route go."""
    stack.admin.delete_deployment(dep_id)
    wait_until(lambda: not [c for c in denv.containers() if c.labels[names.LABEL_ROLE] == "model"], 60,
               what="model containers removed")  # fmt: skip
    wait_until(lambda: not [r for r in denv.routers() if r.startswith("d-")], 20, what="route removed")


def test_a_canary_that_passes_its_gates_is_promoted(stack: Stack, denv, packages) -> None:
    admin = stack.admin
    v1, v2 = (admin.upload_package(packages[k])["id"] for k in ("a", "b"))
    dep_id, path = _deploy(stack, "canary-good", v1)
    gates = {"maxErrorRate": 0.05, "minRequests": 5}
    with RequestLoop("127.0.0.1", stack.port, path, rate=RATE, threads=8, rows=ROWS) as load:
        began = time.monotonic()
        admin.start_canary(
            dep_id, v2, {"percent": 50, "step": 50, "intervalSeconds": 4, "gates": gates},
            reason="scheduled_refresh", note="weekly retrain",
        )  # fmt: skip
        try:
            ended = wait_until(lambda: _rollout_ended(admin, dep_id), 300, 0.5, what="the canary's verdict")
        except AssertionError:
            print(admin.get_rollout(dep_id), stack.agent.output()[-3000:])
            raise
        verdict = time.monotonic() - began
        wait_until(lambda: _served(admin, dep_id), 180, 0.5, what="the promoted model serving alone")
        alone = time.monotonic() - began
        after = load.ok
        wait_until(lambda: load.ok > after + 20, 30, what="requests after the promotion")
        back = admin.rollback(dep_id, revision=1, reason="accuracy", note="v2 scores worse")
        wait_until(lambda: _served(admin, dep_id), 180, 0.5, what="revision 1's model serving again")
        after = load.ok
        wait_until(lambda: load.ok > after + 20, 30, what="requests after the rollback")
    print(
        f"\ncanary promoted, then rolled back to revision 1: {load.ok + load.failed} requests, {load.failed} "
        f"failed, answered by {dict(load.answered_by)}; {verdict:.1f} s from canary start to promotion, "
        f"{alone:.1f} s to the promoted model serving alone"
    )
    assert (back["revision"]["number"], back["revision"]["modelPackageId"]) == (3, v1)
    replaced = _print_replacements(admin, dep_id)
    assert ended["state"] == "promoted", ended
    assert load.failed == 0, load.errors
    # Both models answered during the canary, and the header came through the proxy every time
    # (a response without it is counted as "<none>").
    assert set(load.answered_by) == {v1, v2}, load.answered_by
    assert load.answered_by[v1] > 0 and load.answered_by[v2] > 0
    revisions = [(r["number"], r["modelPackageId"], r["reason"]) for r in admin.list_revisions(dep_id)]
    assert revisions == [(3, v1, "accuracy"), (2, v2, "scheduled_refresh"), (1, v1, None)]
    # The champion to the 50 % mix, the mix to the promoted model alone, back to revision 1's.
    assert len(replaced) >= 3, replaced
    served = {c.labels[names.LABEL_MODEL] for c in denv.containers() if c.labels[names.LABEL_ROLE] == "model"}
    assert served == {v1}
    _remove(stack, denv, dep_id)


def test_a_flaky_canary_is_rolled_back_and_no_client_sees_it(stack: Stack, denv, packages, flaky_package) -> None:
    admin = stack.admin
    v1, flaky = admin.upload_package(packages["a"])["id"], admin.upload_package(flaky_package)["id"]
    dep_id, path = _deploy(stack, "canary-flaky", v1)
    gates = {"maxErrorRate": 0.01, "minRequests": 5}
    with RequestLoop("127.0.0.1", stack.port, path, rate=RATE, threads=8, rows=ROWS) as load:
        began = time.monotonic()
        admin.start_canary(dep_id, flaky, {"percent": 50, "step": 50, "intervalSeconds": 4, "gates": gates})
        try:
            ended = wait_until(lambda: _rollout_ended(admin, dep_id), 300, 0.5, what="the canary's verdict")
        except AssertionError:
            print(admin.get_rollout(dep_id), stack.agent.output()[-3000:])
            raise
        verdict = time.monotonic() - began
        wait_until(lambda: _served(admin, dep_id), 180, 0.5, what="the champion serving alone again")
        alone = time.monotonic() - began
        after = load.ok
        wait_until(lambda: load.ok > after + 20, 30, what="requests after the rollback")
    print(
        f"\ncanary rolled back: {load.ok + load.failed} requests, {load.failed} failed, answered by "
        f"{dict(load.answered_by)}; {verdict:.1f} s from canary start to rollback, {alone:.1f} s to the "
        f"champion serving alone; outcome: {ended['outcome']}"
    )
    _print_replacements(admin, dep_id)
    assert ended["state"] == "rolled_back", ended
    assert "maxErrorRate" in ended["outcome"], ended["outcome"]
    assert load.failed == 0, load.errors
    # The canary answered the rows it could; the champion every other request.
    assert set(load.answered_by) <= {v1, flaky} and load.answered_by[v1] > 0, load.answered_by
    assert admin.get_deployment(dep_id)["modelPackageId"] == v1
    assert [r["number"] for r in admin.list_revisions(dep_id)] == [1]  # nothing was replaced
    rolled = [e for e in admin.list_events(deployment_id=dep_id) if e["action"] == "deployment.rollout.rolledBack"]
    assert len(rolled) == 1 and "maxErrorRate" in rolled[0]["message"], rolled
    by_model = {m["modelId"]: m for m in admin.model_monitoring(dep_id)["models"]}
    assert by_model[flaky]["systemErrors"] + by_model[flaky]["userErrors"] > 0, by_model
    served = {c.labels[names.LABEL_MODEL] for c in denv.containers() if c.labels[names.LABEL_ROLE] == "model"}
    assert served == {v1}
    _remove(stack, denv, dep_id)


def test_a_challenger_scores_copies_and_clients_only_get_the_champions_answers(stack: Stack, denv, packages) -> None:
    admin = stack.admin
    v1, v2 = (admin.upload_package(packages[k])["id"] for k in ("a", "b"))
    dep_id, path = _deploy(stack, "shadowed", v1)
    url = f"http://127.0.0.1:{stack.port}{path}"
    baseline = predict(url, ROWS[:20])
    began = time.monotonic()
    admin.add_challenger(dep_id, v2)
    wait_until(lambda: _served(admin, dep_id), 180, 0.5, what="the mix with the challenger serving")
    mixed = time.monotonic() - began
    with RequestLoop("127.0.0.1", stack.port, path, rate=RATE, threads=8, rows=ROWS) as load:

        def challenger_counted() -> dict[str, Any] | None:
            models = {m["modelId"]: m for m in admin.model_monitoring(dep_id)["models"]}
            shadow = models.get(v2)
            counted = shadow and shadow["requests"] >= SHADOW_COPIES and shadow.get("agreement") is not None
            return shadow if counted else None

        try:
            shadow = wait_until(challenger_counted, 180, 1.0, what="the challenger's copies in monitoring")
        except AssertionError:
            print(admin.model_monitoring(dep_id), stack.agent.output()[-3000:])
            raise
        during = predict(url, ROWS[:20])
    print(
        f"\nchallenger: mix serving {mixed:.1f} s after it was added; {load.ok + load.failed} requests, "
        f"{load.failed} failed, answered by {dict(load.answered_by)}; challenger scored {shadow['requests']} "
        f"copies, agreement {shadow['agreement']}"
    )
    _print_replacements(admin, dep_id)
    assert load.failed == 0, load.errors
    assert set(load.answered_by) == {v1}, load.answered_by
    assert during == baseline
    assert shadow["shadow"] is True and shadow["requests"] >= SHADOW_COPIES and 0.0 <= shadow["agreement"] <= 1.0

    # association ids (docs/accuracy.md): the settings reach the container in the next mix; the
    # rows' ids come back, and actuals sent for them count for the champion and the challenger
    admin.update_deployment(dep_id, association_id={"generate": True})
    wait_until(lambda: _served(admin, dep_id), 180, 0.5, what="the mix with association ids serving")
    code, body = predict(url, ROWS[:10])
    assert code == 200 and all(len(row["associationId"]) == 32 for row in body["data"]), body
    actuals = [{"associationId": row["associationId"], "actualValue": row["prediction"]} for row in body["data"]]
    admin.upload_actuals(dep_id, json.dumps({"data": actuals}).encode(), "application/json")

    def both_matched() -> dict[str, Any] | None:
        found = {m["modelId"]: m["matched"] for m in admin.accuracy(dep_id)["models"]}
        return found if found == {v1: 10, v2: 10} else None

    matched = wait_until(both_matched, 120, 1.0, what="the champion's and the challenger's rows matched")
    print(f"accuracy on docker: {matched}")
    _remove(stack, denv, dep_id)
