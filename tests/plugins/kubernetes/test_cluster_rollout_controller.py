"""Canaries judged by the control plane's rollout controller on the real test cluster
(docs/rollouts.md), driven only through the control plane: the agent chart installed by
Helm with tracking-agent sidecars, which carry each model pod's per-model monitoring back
to the control plane, where the controller reads it every tick.

- a canary (50 %, one step of 50) that passes its gates is promoted by the controller; the
  deployment then rolls back to revision 1;
- a canary that raises on some rows fails its error-rate gate and is rolled back by the
  controller, while the champion answers for it.

A client loop sends requests through the Ingress all along: none may fail, and each
answer's `x-deckhand-model-id` must name one of the models of that scenario. Every share
change is a `deployment_replace_model` of the deployment's mix (a Kaniko build of the mix).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from tests.plugins.kubernetes.helpers import install_agent, kubectl, only_pods_of, wait_for
from tests.request_loop import RequestLoop

from deckhand.packages.demo import sample_rows
from deckhand.plugin.constants import BosunPluginActions

pytestmark = pytest.mark.timeout(2400)
ROWS = sample_rows(200, seed=7)  # about a third have petal_length > 5: the flaky package raises on them
RATE = 20.0  # client requests per second through the Ingress
STEP = {"percent": 50, "step": 50, "intervalSeconds": 10}


def _served(cp: Any, dep_id: str) -> bool:
    """The agent reports the model the control plane says the deployment serves."""
    dep = cp.client.get_deployment(dep_id)
    seen = dep.get("observed") or {}
    return seen.get("state") == "ready" and seen.get("modelId") == dep["servedModelId"]


def _verdict(cp: Any, dep_id: str) -> dict[str, Any] | None:
    rollout = cp.client.get_rollout(dep_id)
    return rollout if rollout["state"] != "running" else None


def _after(load: RequestLoop, more: int = 20) -> None:
    """Until the loop has had `more` answers since now (the new model's, through the Ingress)."""
    seen = load.ok
    wait_for("requests after the change", lambda: load.ok > seen + more, timeout=60)


def _replacements(cp: Any, dep_id: str) -> list[str]:
    events = cp.client.list_events(deployment_id=dep_id)
    found = sorted(
        (e for e in events if e["action"] == BosunPluginActions.DEPLOYMENT_REPLACE_MODEL), key=lambda e: e["timestamp"]
    )
    return [f"{float(e.get('durationSeconds') or 0):.1f} s: {(e.get('message') or '')[:120]}" for e in found]


def test_the_controller_promotes_a_good_canary_and_rolls_back_a_failing_one(
    real_cluster, cluster_images, control_plane, k8s_namespace, flaky_package
) -> None:
    env, cp, ns = real_cluster, control_plane, k8s_namespace
    environment, _, agent_ready_s = install_agent(env, cluster_images, cp.client, cp.url, ns, f"rollouts-{ns}")
    v1, v2 = cp.packages["a"], cp.packages["b"]
    flaky = cp.client.upload_package(flaky_package)["id"]
    dep_id = cp.client.create_deployment("iris-rollouts", environment["id"], v1)["id"]
    wait_for("the deployment ready", lambda: _served(cp, dep_id), timeout=600)
    host, port = env.ingress_http.rsplit(":", 1)
    path = f"/deployments/{dep_id}/predictions"
    wait_for(
        "the Ingress routing to the deployment",
        lambda: httpx.post(f"http://{env.ingress_http}{path}", json=ROWS[:2], timeout=10).status_code == 200,
        timeout=60,
    )
    timings = {"agent_ready_s": agent_ready_s}

    # 1. A canary that passes its gates: promoted by the controller, then back to revision 1.
    with RequestLoop(host, int(port), path, rate=RATE, threads=4, rows=ROWS) as good:
        began = time.monotonic()
        gates = {"maxErrorRate": 0.05, "minRequests": 5}
        cp.client.start_canary(dep_id, v2, {**STEP, "gates": gates}, reason="scheduled_refresh", note="weekly")
        promoted = wait_for("the canary's verdict", lambda: _verdict(cp, dep_id), timeout=900)
        timings["canary_to_verdict_s"] = time.monotonic() - began
        wait_for("the promoted model serving alone", lambda: _served(cp, dep_id), timeout=600)
        timings["canary_to_promoted_alone_s"] = time.monotonic() - began
        _after(good)
        began = time.monotonic()
        back = cp.client.rollback(dep_id, revision=1, reason="accuracy", note="v2 scores worse")
        wait_for("revision 1's model serving again", lambda: _served(cp, dep_id), timeout=600)
        timings["rollback_s"] = time.monotonic() - began
        _after(good)
        # v2's pod answers what the Ingress still sends it while it drains: not in scenario 2
        wait_for("v2's pods gone", lambda: only_pods_of(env, ns, dep_id, v1), timeout=120)
    print(f"\ngood canary: {good.ok + good.failed} requests, {good.failed} failed, by {dict(good.answered_by)}")
    assert promoted["state"] == "promoted", promoted
    assert good.failed == 0, good.errors
    assert set(good.answered_by) == {v1, v2}, good.answered_by  # the header came through the Ingress every time
    assert (back["revision"]["number"], back["revision"]["modelPackageId"]) == (3, v1)
    revisions = [(r["number"], r["modelPackageId"], r["reason"]) for r in cp.client.list_revisions(dep_id)]
    assert revisions == [(3, v1, "accuracy"), (2, v2, "scheduled_refresh"), (1, v1, None)]

    # 2. A canary that raises on some rows: the champion answers for it, the error-rate gate
    #    fails and the controller rolls it back.
    with RequestLoop(host, int(port), path, rate=RATE, threads=4, rows=ROWS) as bad:
        began = time.monotonic()
        gates = {"maxErrorRate": 0.01, "minRequests": 5}
        cp.client.start_canary(dep_id, flaky, {**STEP, "gates": gates})
        rolled_back = wait_for("the canary's verdict", lambda: _verdict(cp, dep_id), timeout=900)
        timings["flaky_canary_to_verdict_s"] = time.monotonic() - began
        wait_for("the champion serving alone again", lambda: _served(cp, dep_id), timeout=600)
        timings["flaky_canary_to_champion_alone_s"] = time.monotonic() - began
        _after(bad)
    print(f"flaky canary: {bad.ok + bad.failed} requests, {bad.failed} failed, by {dict(bad.answered_by)}")
    print(f"outcome: {rolled_back['outcome']}")
    print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    for line in _replacements(cp, dep_id):
        print(f"  deployment_replace_model {line}")
    assert rolled_back["state"] == "rolled_back", rolled_back
    assert "maxErrorRate" in rolled_back["outcome"], rolled_back["outcome"]
    assert bad.failed == 0, bad.errors
    assert set(bad.answered_by) <= {v1, flaky} and bad.answered_by[v1] > 0, bad.answered_by
    assert cp.client.get_deployment(dep_id)["modelPackageId"] == v1
    events = cp.client.list_events(deployment_id=dep_id)
    rolled = [e for e in events if e["action"] == "deployment.rollout.rolledBack"]
    assert len(rolled) == 1 and "maxErrorRate" in rolled[0]["message"], rolled
    by_model = {m["modelId"]: m for m in cp.client.model_monitoring(dep_id)["models"]}
    assert by_model[flaky]["systemErrors"] + by_model[flaky]["userErrors"] > 0, by_model  # from the sidecar

    cp.client.delete_deployment(dep_id)

    def nothing_left() -> bool:
        out = kubectl(env, "-n", ns, "get", "deployments,services,ingresses,pods", "-l",
                      f"deckhand.io/deployment-id={dep_id}", "-o", "name")  # fmt: skip
        return out.strip() == ""

    wait_for("every object of the deployment to be gone", nothing_left, timeout=180)
