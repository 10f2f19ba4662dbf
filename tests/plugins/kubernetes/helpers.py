"""Helpers shared by the cluster tests of the Kubernetes plugin and the Helm charts: kubectl
and helm on the test cluster, the agent chart installed against a control plane, waiting for
a deployment, and host services made reachable from pods."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from deckhand.testing import wait_until

ROOT = Path(__file__).resolve().parents[3]
AGENT_CHART = ROOT / "charts" / "deckhand-management-agent"
IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
HOST_FROM_PODS = "10.244.0.1"  # the pod bridge's gateway: how pods reach this machine
AGENT_PODS = "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{'\\n'}{end}"


def wait_for(what: str, check: Any, timeout: float = 60, interval: float = 0.5) -> Any:
    """deckhand.testing.wait_until, with what it waits for first (as these tests read)."""
    return wait_until(check, timeout, interval, what)


def kubectl(env: Any, *args: str, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(
        ["kubectl", *args], env={"KUBECONFIG": env.kubeconfig, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def helm(env: Any, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """helm on the test cluster (HOME under test-artifacts: helm keeps its caches there)."""
    return subprocess.run(
        [env.helm, *args],
        env={"KUBECONFIG": env.kubeconfig, "PATH": "/usr/bin:/bin", "HOME": str(ROOT / "test-artifacts")},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def helm_set_args(values: dict[str, str]) -> list[str]:
    """--set for "true" and "false" (booleans), --set-string for the rest."""
    return [a for k, v in values.items() for a in ("--set" if v in ("true", "false") else "--set-string", f"{k}={v}")]


def observed(client: Any, dep_id: str) -> dict:
    return client.get_deployment(dep_id).get("observed") or {}


def only_pods_of(env: Any, ns: str, dep_id: str, model_id: str) -> bool:
    """Every pod of the deployment runs `model_id`: the replaced ones, which keep answering
    what the Ingress still sends them while it drops them (manifests.DRAIN_SECONDS), are gone."""
    from deckhand.plugins.kubernetes import manifests

    selector = f"{manifests.LABEL_DEPLOYMENT}={manifests.label_value(dep_id)}"
    key = manifests.ANNOTATION_MODEL.replace(".", "\\.")
    out = kubectl(env, "-n", ns, "get", "pods", "-l", selector, "-o",
                  f"jsonpath={{range .items[*]}}{{.metadata.annotations.{key}}}{{'\\n'}}{{end}}")  # fmt: skip
    models = set(out.split())
    return models == {model_id}


def agent_pods(env: Any, ns: str) -> list[str]:
    out = kubectl(env, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=management-agent", "-o", AGENT_PODS)
    # a terminating pod keeps phase Running: count only pods not being deleted
    return [parts[0] for parts in map(str.split, out.splitlines()) if parts[1:] == ["Running"]]


def install_agent(
    env: Any, images: Any, client: Any, pods_url: str, ns: str, name: str, release: str = "dh"
) -> tuple[dict, float, float]:
    """`helm upgrade --install` of the agent chart (tracking-agent sidecars on) following a new
    monitored kubernetes environment of the control plane `client` talks to, which pods reach
    at `pods_url`, as the docs say; then until the agent reports. Returns the environment and
    the seconds to the agent pod running and to its first report."""
    environment = client.create_environment(name=name, platform="kubernetes", monitoringEnabled=True)
    token = client.create_token(f"agent-{ns}", "agent", [environment["id"]])["token"]
    # the documented step: the API token as a secret in the agent's namespace
    kubectl(env, "-n", ns, "create", "secret", "generic", "deckhand-api-token", f"--from-literal=secret={token}")
    repo, tag = images.agent.rsplit(":", 1)
    values = {
        "deckhand.url": pods_url,
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
    t0 = time.monotonic()
    proc = helm(env, "upgrade", "--install", release, str(AGENT_CHART), "--namespace", ns, *helm_set_args(values))
    assert proc.returncode == 0, proc.stderr
    assert "deckhand management agent" in proc.stdout  # NOTES.txt
    wait_for("the agent pod running", lambda: agent_pods(env, ns), timeout=120)
    pod_ready_s = time.monotonic() - t0

    def agent_reported() -> bool:
        status = client.get_environment(environment["id"]).get("status") or {}
        return status.get("status") in ("passing", "warning")

    wait_for("the agent reporting to the control plane", agent_reported, timeout=120)
    return environment, pod_ready_s, time.monotonic() - t0


def wait_ready(client: Any, dep_id: str, timeout: float = 600) -> dict:
    """The deployment's observed status once the agent reports it ready."""
    return wait_for(
        "the deployment ready",
        lambda: observed(client, dep_id).get("state") == "ready" and observed(client, dep_id),
        timeout=timeout,
    )  # fmt: skip


def predict(url: str, timeout: float = 30) -> httpx.Response:
    """POST the iris row to a prediction URL, retrying while the Ingress has no route yet (503:
    the controller picks a route up a moment after the deployment is ready)."""
    return wait_for(
        "the Ingress routing to the deployment",
        lambda: (r := httpx.post(url, content=IRIS_CSV, headers={"Content-Type": "text/csv"},
                                 timeout=10)).status_code != 503 and r,
        timeout=timeout,
    )  # fmt: skip


@contextmanager
def reachable_from_pods(port: int, what: str) -> Iterator[str]:
    """A TCP forwarder (k8s_testenv.forward) from the pod-bridge gateway to 127.0.0.1:port, for
    a host service bound to 127.0.0.1 (PostgreSQL, S3); yields "HOST_FROM_PODS:<port>"."""
    with socket.socket() as probe:  # a free port on the gateway (the forwarder binds it next)
        probe.bind((HOST_FROM_PODS, 0))
        listen = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8s_testenv.forward", f"{HOST_FROM_PODS}:{listen}", f"127.0.0.1:{port}"],
        env={"PYTHONPATH": str(ROOT / "scripts"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "forwarding ..." once it listens
        assert line.startswith("forwarding"), f"the forwarder for {what} did not start: {line}"
        yield f"{HOST_FROM_PODS}:{listen}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
