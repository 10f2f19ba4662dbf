"""`helm upgrade --install` of charts/deckhand-management-agent into the real test cluster,
with the agent (deckhand-agent image, Kubernetes plugin in-process) following a control
plane on this host. Then, driven only through the control plane: create a deployment ->
Kaniko Job (or the existing image) -> Deployment/Service/Ingress -> ready -> a prediction
through the Ingress -> replace the model -> delete -> nothing left. And the agent pod
deleted mid-action converges."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.plugins.kubernetes.helpers import wait_for

pytestmark = pytest.mark.timeout(1500)
ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "deckhand-management-agent"
IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
RELEASE = "dh"


def kubectl(env, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["kubectl", *args], env={"KUBECONFIG": env.kubeconfig, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def observed(cp, dep_id: str) -> dict:
    return cp.client.get_deployment(dep_id).get("observed") or {}


AGENT_PODS = "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{'\\n'}{end}"


def agent_pods(env, ns: str) -> list[str]:
    out = kubectl(env, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=management-agent", "-o", AGENT_PODS)
    # a terminating pod keeps phase Running: count only pods not being deleted
    return [parts[0] for parts in map(str.split, out.splitlines()) if parts[1:] == ["Running"]]


def install_agent(env, images, cp, ns: str, name: str) -> tuple[dict, float, float]:
    """`helm upgrade --install` of the agent chart (tracking-agent sidecars on) following a new
    monitored kubernetes environment of the control plane, as the docs say; then until the
    agent reports. Returns the environment and the seconds to the agent pod running and to
    its first report."""
    environment = cp.client.create_environment(name=name, platform="kubernetes", monitoringEnabled=True)
    token = cp.client.create_token(f"agent-{ns}", "agent", [environment["id"]])["token"]
    # the documented step: the API token as a secret in the agent's namespace
    kubectl(env, "-n", ns, "create", "secret", "generic", "deckhand-api-token", f"--from-literal=secret={token}")
    repo, tag = images.agent.rsplit(":", 1)
    values = {
        "deckhand.url": cp.url,
        "deckhand.apiSecretName": "deckhand-api-token",
        "datarobot.predictionEnvId": environment["id"],  # the documented name works too
        "predictionServer.ingressClassName": "nginx",
        "predictionServer.outfacingUrlRoot": f"http://{env.ingress_http}/deployments/",
        "managementAgent.repository": repo,
        "managementAgent.tag": tag,
        "managementAgent.logLevel": "debug",
        "trackingAgent.enabled": "true",
        "trackingAgent.image": images.tracking_agent,
        "imageBuilder.kanikoImage": images.kaniko,
        "imageBuilder.ppsImage": images.pps,
        "imageBuilder.generatedImageRepository": f"{images.registry}/deckhand/chart-models",
        "imageBuilder.insecureRegistries[0]": images.registry,
    }
    args = [a for k, v in values.items() for a in ("--set" if v == "true" else "--set-string", f"{k}={v}")]
    t0 = time.monotonic()
    proc = subprocess.run(
        [env.helm, "upgrade", "--install", RELEASE, str(CHART), "--namespace", ns, *args],
        env={"KUBECONFIG": env.kubeconfig, "PATH": "/usr/bin:/bin", "HOME": str(ROOT / "test-artifacts")},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "deckhand management agent" in proc.stdout  # NOTES.txt
    wait_for("the agent pod running", lambda: agent_pods(env, ns), timeout=120)
    pod_ready_s = time.monotonic() - t0

    def agent_reported() -> bool:
        status = cp.client.get_environment(environment["id"]).get("status") or {}
        return status.get("status") in ("passing", "warning")

    wait_for("the agent reporting to the control plane", agent_reported, timeout=120)
    return environment, pod_ready_s, time.monotonic() - t0


def test_helm_install_then_deploy_through_the_control_plane(
    real_cluster, cluster_images, control_plane, k8s_namespace
) -> None:
    env, cp, ns = real_cluster, control_plane, k8s_namespace
    environment, pod_ready_s, agent_ready_s = install_agent(env, cluster_images, cp, ns, f"k8s-{ns}")
    print(f"\nhelm install -> agent pod running {pod_ready_s:.1f} s, agent reporting {agent_ready_s:.1f} s")
    assert agent_ready_s <= 90, f"helm install to agent ready took {agent_ready_s:.0f} s (target 90 s)"

    # a deployment created through the control plane becomes ready in the cluster
    t0 = time.monotonic()
    dep = cp.client.create_deployment("iris", environment["id"], cp.packages["a"])
    ready = wait_for(
        "the deployment ready", lambda: observed(cp, dep["id"]).get("state") == "ready" and observed(cp, dep["id"]),
        timeout=600,
    )  # fmt: skip
    print(f"deployment ready through the control plane in {time.monotonic() - t0:.1f} s")
    assert ready["predictionUrl"] == f"http://{env.ingress_http}/deployments/{dep['id']}/predictions"
    resp = wait_for(
        "the Ingress routing to the deployment",  # the controller picks the route up a moment after "ready"
        lambda: (r := httpx.post(ready["predictionUrl"], content=IRIS_CSV, headers={"Content-Type": "text/csv"},
                                 timeout=10)).status_code != 503 and r,
        timeout=30,
    )  # fmt: skip
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
        obs = observed(cp, dep["id"])
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
