"""Smoke tests of the Kubernetes test environment: workloads progress on the node, a pod
from a locally built image (pushed to the local registry) answers through its Service
and through an Ingress, and a Job reaches the API from inside the cluster."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, utils, watch  # noqa: E402

from deckhand.testing import wait_until as _wait_until  # noqa: E402

APP = "echo"
# the first test also brings the environment up (about a minute, more on a busy machine)
pytestmark = pytest.mark.timeout(900)


def wait_until(what: str, check: Callable[[], object], timeout: float = 120) -> object:
    """deckhand.testing.wait_until, with what it waits for first (as these tests read)."""
    return _wait_until(check, timeout, 1, what)


def http_get(url: str, host: str | None = None, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def manifests(ns: str, image: str, host: str) -> list[dict]:
    labels = {"app": APP}
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP, "namespace": ns},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                      "name": APP, "image": image, "ports": [{"containerPort": 8080}],
                      "env": [{"name": "GREETING", "value": "hello from deckhand"}],
                      "readinessProbe": probe,
                      "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": APP, "namespace": ns},
         "spec": {"ingressClassName": "traefik", "rules": [{"host": host, "http": {"paths": [{
             "path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": APP, "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "seed-style", "namespace": ns},
         "spec": {"ingressClassName": "nginx", "rules": [{"host": "nginx-" + host, "http": {"paths": [{
             "path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": APP, "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": APP, "namespace": ns},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                  "minReplicas": 2, "maxReplicas": 3,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                               "target": {"type": "Utilization", "averageUtilization": 80}}}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": APP, "namespace": ns},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "apicheck", "namespace": ns},
         "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{
             "name": "apicheck", "image": image, "args": ["apicheck"]}]}}}},
    ]  # fmt: skip


def test_kubectl_from_debian_talks_to_the_cluster(k8s_env) -> None:
    env = {"KUBECONFIG": k8s_env.kubeconfig, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["kubectl", "version", "-o", "json"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["serverVersion"]["gitVersion"] == k8s_env.versions["kubernetes"]
    nodes = subprocess.run(["kubectl", "get", "nodes", "-o", "name"], env=env, capture_output=True, text=True)
    assert nodes.stdout.strip() == f"node/{k8s_env.node_name}"


def test_registry_accepts_pushes(k8s_env) -> None:
    status, body = http_get(f"http://{k8s_env.registry}/v2/_catalog")
    assert status == 200 and "deckhand/echo" in json.loads(body)["repositories"]


def test_workloads_progress_and_answer(k8s_env, k8s_api, k8s_namespace) -> None:
    ns, host = k8s_namespace, f"{k8s_namespace}.deckhand.test"
    apps, core, batch = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api), client.BatchV1Api(k8s_api)
    policy, autoscaling = client.PolicyV1Api(k8s_api), client.AutoscalingV2Api(k8s_api)
    for doc in manifests(ns, k8s_env.echo_image, host):
        utils.create_from_dict(k8s_api, doc, namespace=ns)

    # watch the Deployment until both replicas are available
    stream = watch.Watch().stream(apps.list_namespaced_deployment, ns, timeout_seconds=180)
    for event in stream:
        status = event["object"].status
        if (status.available_replicas or 0) == 2:
            break
    else:
        pytest.fail(f"Deployment never became available: {apps.read_namespaced_deployment(APP, ns).status}")

    pods = core.list_namespaced_pod(ns, label_selector=f"app={APP}").items
    assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods)
    discovery = client.DiscoveryV1Api(k8s_api)
    slices = wait_until(
        "EndpointSlice with 2 ready endpoints",
        lambda: eps if len(eps := _ready_endpoints(discovery, ns, APP)) == 2 else None,
    )
    assert len(slices) == 2
    wait_until(
        "PDB to count the healthy pods",
        lambda: (policy.read_namespaced_pod_disruption_budget(APP, ns).status.current_healthy or 0) == 2,
    )
    wait_until(
        "HPA to be processed by the controller manager",
        lambda: autoscaling.read_namespaced_horizontal_pod_autoscaler(APP, ns).status.conditions,
    )
    wait_until("Job to finish", lambda: batch.read_namespaced_job("apicheck", ns).status.succeeded,
               timeout=120)  # fmt: skip
    ingress = f"http://{k8s_env.ingress_http}/"
    if not k8s_env.real_node:
        # kwok: pods "run" without running. The Ingress is accepted, Traefik builds a
        # router for it, and its backend resolves to the (simulated) pod endpoints.
        pod_urls = {f"http://{p.status.pod_ip}:8080" for p in pods}
        for h in (host, "nginx-" + host):
            service = wait_until(f"Traefik to route {h}", lambda h=h: _routed(k8s_env, h))
            servers = wait_until(f"{service} to list the pods", lambda s=service: _servers(k8s_env, s) or None)
            assert set(servers) == pod_urls
        return

    job_pod = core.list_namespaced_pod(ns, label_selector="job-name=apicheck").items[0].metadata.name
    log = core.read_namespaced_pod_log(job_pod, ns)
    assert "-> 200" in log and k8s_env.versions["kubernetes"] in log

    pod_ip = pods[0].status.pod_ip
    status, body = http_get(f"http://{pod_ip}:8080/direct")
    assert status == 200 and json.loads(body)["greeting"] == "hello from deckhand"

    svc_ip = core.read_namespaced_service(APP, ns).spec.cluster_ip
    status, body = wait_until("the Service to answer", lambda: http_get(f"http://{svc_ip}/via-service"))
    assert status == 200 and json.loads(body)["path"] == "/via-service"
    assert json.loads(body)["hostname"] in {p.metadata.name for p in pods}

    for h in (host, "nginx-" + host):
        status, body = wait_until(f"the Ingress for {h} to answer", lambda h=h: _ok(ingress + "via-ingress", h))
        assert json.loads(body)["path"] == "/via-ingress"


def _ok(url: str, host: str) -> tuple[int, str] | None:
    try:
        status, body = http_get(url, host)
    except OSError:
        return None
    return (status, body) if status == 200 else None


def _ready_endpoints(discovery, ns: str, service: str) -> list:
    found = discovery.list_namespaced_endpoint_slice(ns, label_selector=f"kubernetes.io/service-name={service}")
    return [e for s in found.items for e in (s.endpoints or []) if e.conditions.ready]


def _routed(k8s_env, host: str) -> str | None:
    """The Traefik service behind the router for ``host``, if Traefik has one."""
    _, body = http_get(f"http://127.0.0.1:{k8s_env.ports['traefik_api']}/api/http/routers")
    for router in json.loads(body):
        if f"Host(`{host}`)" in router.get("rule", "").replace('"', "`"):
            return router["service"] + "@kubernetes"
    return None


def _servers(k8s_env, service: str) -> list[str]:
    _, body = http_get(f"http://127.0.0.1:{k8s_env.ports['traefik_api']}/api/http/services/{service}")
    return list(json.loads(body).get("serverStatus", {}))


def test_pods_reach_the_registry_by_its_in_cluster_name(k8s_env, k8s_api, k8s_namespace) -> None:
    """What in-cluster image builds (Kaniko) need: pods reach the registry, and the node
    pulls images by the name pods pushed them under."""
    if not k8s_env.real_node:
        pytest.skip("kwok node: pods do not run")
    image = k8s_env.echo_image.replace(k8s_env.registry, k8s_env.registry_in_cluster)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "registry-check"},
           "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [{
               "name": "get", "image": image,
               "args": ["get", f"http://{k8s_env.registry_in_cluster}/v2/_catalog"]}]}}}}  # fmt: skip
    utils.create_from_dict(k8s_api, job, namespace=k8s_namespace)
    batch = client.BatchV1Api(k8s_api)
    wait_until("the registry Job to succeed", lambda: _job_done(batch, k8s_namespace, "registry-check"))


def _job_done(batch, ns: str, name: str) -> bool:
    status = batch.read_namespaced_job(name, ns).status
    if status.failed:
        pytest.fail(f"Job {name} failed: {status}")
    return bool(status.succeeded)
