"""`helm upgrade --install` of charts/deckhand-management-agent into the real test cluster,
with the agent (deckhand-agent image, Kubernetes plugin in-process) following a control
plane on this host. Then, driven only through the control plane: create a deployment ->
Kaniko Job (or the existing image) -> Deployment/Service/Ingress -> ready -> a prediction
through the Ingress -> replace the model -> delete -> nothing left. And the agent pod
deleted mid-action converges."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.plugins.kubernetes.helpers import agent_pods, install_agent, kubectl, observed, predict, wait_for, wait_ready

pytestmark = pytest.mark.timeout(1500)


def test_helm_install_then_deploy_through_the_control_plane(
    real_cluster, cluster_images, control_plane, k8s_namespace
) -> None:
    env, cp, ns = real_cluster, control_plane, k8s_namespace
    environment, pod_ready_s, agent_ready_s = install_agent(env, cluster_images, cp.client, cp.url, ns, f"k8s-{ns}")
    print(f"\nhelm install -> agent pod running {pod_ready_s:.1f} s, agent reporting {agent_ready_s:.1f} s")
    assert agent_ready_s <= 90, f"helm install to agent ready took {agent_ready_s:.0f} s (target 90 s)"

    # a deployment created through the control plane becomes ready in the cluster
    t0 = time.monotonic()
    dep = cp.client.create_deployment("iris", environment["id"], cp.packages["a"])
    ready = wait_ready(cp.client, dep["id"])
    print(f"deployment ready through the control plane in {time.monotonic() - t0:.1f} s")
    assert ready["predictionUrl"] == f"http://{env.ingress_http}/deployments/{dep['id']}/predictions"
    resp = predict(ready["predictionUrl"])
    assert resp.status_code == 200, resp.text

    # monitoring: the tracking-agent sidecar ships the pod's spool to the control plane
    def monitored() -> int:
        return cp.client.service_health(dep["id"])["totals"]["requests"]

    wait_for("the prediction to show up in the control plane's service health", monitored, timeout=120)
    jobs = kubectl(env, "-n", ns, "get", "jobs", "-l", "app.kubernetes.io/component=image-builder", "-o", "name")
    assert "dh-build-m-" in jobs  # the image was built in the cluster, by Kaniko

    # the agent pod is deleted in the middle of a model replacement: the next one converges
    cp.client.replace_model(dep["id"], cp.packages["b"])
    time.sleep(3)  # not an event: the pod is deleted a few seconds into the replacement
    old_pods = agent_pods(env, ns)
    kubectl(env, "-n", ns, "delete", "pod", *old_pods, "--wait=false")

    def replaced() -> bool:
        obs = observed(cp.client, dep["id"])
        return obs.get("state") == "ready" and obs.get("modelId") == cp.packages["b"]

    wait_for("the replacement to converge after the agent pod was deleted", replaced, timeout=600)
    assert not set(agent_pods(env, ns)) & set(old_pods)

    def new_model_served() -> bool:  # the ingress drops the old pod's endpoint a moment later
        resp = httpx.get(f"http://{env.ingress_http}/deployments/{dep['id']}/info", timeout=10)
        return resp.status_code == 200 and resp.json()["modelId"] == cp.packages["b"]

    wait_for("the new model answering through the Ingress", new_model_served, timeout=30)

    # delete through the control plane: nothing of the deployment is left
    cp.client.delete_deployment(dep["id"])

    def nothing_left() -> bool:
        out = kubectl(env, "-n", ns, "get", "deployments,services,ingresses,pods", "-l",
                      f"deckhand.io/deployment-id={dep['id']}", "-o", "name")  # fmt: skip
        return out.strip() == ""

    wait_for("every object of the deployment to be gone", nothing_left, timeout=180)
