"""The Kubernetes plugin against the real test environment (real node, real Kaniko):
start -> Kaniko Job builds and pushes the model image -> Deployment/Service/Ingress ready ->
a prediction through the Ingress (and only the public routes: no upload, no delete) ->
replace model -> rollout -> stop -> nothing left; and the failures users meet: registry
unreachable during the build, a model that crashes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.plugins.kubernetes.helpers import wait_for

from deckhand.plugin import ActionStatus, DeploymentInfo, DeploymentState, PEInfo
from deckhand.plugins.kubernetes.plugin import KubernetesPlugin

pytestmark = pytest.mark.timeout(1500)
IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
TIMINGS: dict[str, float] = {}


def plugin_config(env, images, cp, namespace: str, **extra: Any) -> dict[str, Any]:
    import yaml

    context = yaml.safe_load(open(env.kubeconfig))["current-context"]
    return {
        "kubeConfigContext": context,
        "kubeConfigFile": env.kubeconfig,
        "kubeNamespace": namespace,
        "outfacingPredictionURLPrefix": f"http://{env.ingress_http}/deployments/",
        "ingressClass": "nginx",
        "ppsBaseImage": images.pps,
        "kanikoImage": images.kaniko,
        "generatedImageRepo": f"{images.registry}/deckhand/models-{namespace}",
        "insecureRegistries": [images.registry],
        "mlopsUrl": cp.url,
        "modelPackageTokenSecret": "api-token",
        "MLOPS_BOSUN_PRED_ENV_ID": "pe-k8s",
        "readyTimeoutSeconds": 180,
        **extra,
    }


def make_plugin(config: dict[str, Any], deployments: list[str] | None = None) -> KubernetesPlugin:
    return KubernetesPlugin(config, None, PEInfo({"id": "pe-k8s", "deployments": deployments or []}))


def info(dep_id: str, model_id: str, new_model_id: str | None = None) -> DeploymentInfo:
    values = {"id": dep_id, "modelId": model_id, "modelArtifact": "/nonexistent/model.dhpkg"}
    if new_model_id:
        values["newModelId"] = new_model_id
    return DeploymentInfo(values)


def predict(env, dep_id: str) -> httpx.Response:
    return httpx.post(
        f"http://{env.ingress_http}/deployments/{dep_id}/predictions",
        content=IRIS_CSV,
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )


def predict_when_routed(env, dep_id: str, timeout: float = 30) -> httpx.Response:
    """The first prediction through the Ingress. "ready" means the pods are ready; the
    ingress controller picks the new route up on its own watch, a moment later (Traefik
    answers 503 "no available server" until then)."""
    started = time.monotonic()
    resp = wait_for(f"the Ingress routing to {dep_id}", lambda: (r := predict(env, dep_id)).status_code != 503 and r,
                    timeout=timeout)  # fmt: skip
    TIMINGS[f"ingress_route_after_ready_{dep_id}_s"] = time.monotonic() - started
    return resp


def served_model(env, dep_id: str) -> str | None:
    resp = httpx.get(f"http://{env.ingress_http}/deployments/{dep_id}/info", timeout=10)
    return resp.json().get("modelId") if resp.status_code == 200 else None


# What Traefik itself answers when no Ingress path matches (the server's own 404s are JSON).
TRAEFIK_NOT_FOUND = (404, "404 page not found\n")


def pods_state(env, k8s_api, namespace: str, dep_id: str) -> dict[str, Any]:
    """What an upload or a delete reaching the server would change: the deployment's pods
    (uid, restarts) and the files of the models directory each one serves."""
    from kubernetes import client

    from deckhand.plugins.kubernetes import manifests

    pods = client.CoreV1Api(k8s_api).list_namespaced_pod(
        namespace, label_selector=f"deckhand.io/deployment-id={dep_id}"
    )
    state: dict[str, Any] = {}
    for pod in pods.items:
        if pod.metadata.deletion_timestamp is not None:
            continue
        listing = (
            f"find {manifests.MODELS_DIR} -type f -exec sha256sum {{}} +; "
            f"find {manifests.MODELS_DIR} -exec ls -ld --time-style=full-iso {{}} +"
        )
        files = subprocess.run(
            ["kubectl", f"--kubeconfig={env.kubeconfig}", "-n", namespace, "exec", pod.metadata.name,
             "-c", manifests.CONTAINER, "--", "sh", "-c", listing],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert files.returncode == 0, files.stderr
        restarts = {c.name: c.restart_count for c in pod.status.container_statuses or []}
        state[pod.metadata.uid] = {"restarts": restarts, "files": sorted(files.stdout.splitlines())}
    assert state, f"no running pod of {dep_id}"
    return state


def check_only_public_routes(env, k8s_api, namespace: str, dep_id: str, model_id: str, package: Path) -> None:
    """Through the real Ingress: predictions and info reach the model; an upload (`POST
    /deployments/<id>` with a package as the body) and a delete do not change it. The Ingress
    has only Exact public paths, but it cannot match on the method: those two reach the server
    through the `GET /deployments/<id>` path, and the server refuses them on its public
    listener (405). Any other path under the deployment's is not routed at all (Traefik's 404)."""
    base = f"http://{env.ingress_http}/deployments/{dep_id}"
    before = pods_state(env, k8s_api, namespace, dep_id)
    for path in ("/predictions", "/predict"):
        resp = httpx.post(f"{base}{path}", content=IRIS_CSV, headers={"Content-Type": "text/csv"}, timeout=10)
        assert resp.status_code == 200 and len(resp.json()["data"]) == 2, (path, resp.status_code, resp.text)
    for url in (f"{base}/info", base):
        resp = httpx.get(url, timeout=10)
        assert resp.status_code == 200 and resp.json()["modelId"] == model_id, (url, resp.status_code, resp.text)

    upload = httpx.post(base, content=package.read_bytes(), headers={"Content-Type": "application/octet-stream"},
                        timeout=30)  # fmt: skip
    delete = httpx.delete(base, timeout=10)
    not_routed = {
        f"{method} {path}": httpx.request(method, f"http://{env.ingress_http}{path}", timeout=10)
        for method, path in (
            ("GET", f"/deployments/{dep_id}/"),
            ("DELETE", f"/deployments/{dep_id}/files"),
            ("POST", f"/deployments/{dep_id}/predictions/x"),
            ("GET", "/deployments"),
            ("GET", "/ping"),
            ("GET", "/metrics"),
        )
    }
    print(
        f"\nthrough the Ingress: upload {upload.status_code} {upload.text.strip()[:160]!r}, "
        f"delete {delete.status_code}, not routed { ({k: r.status_code for k, r in not_routed.items()}) }"
    )
    assert (upload.status_code, delete.status_code) == (405, 405), (upload.text, delete.text)
    assert {
        k: (r.status_code, r.text) for k, r in not_routed.items() if (r.status_code, r.text) != TRAEFIK_NOT_FOUND
    } == {}

    # The model still serves, from the same pods, with the same files.
    assert predict(env, dep_id).status_code == 200
    assert served_model(env, dep_id) == model_id
    assert pods_state(env, k8s_api, namespace, dep_id) == before


def leftovers(k8s_api, namespace: str, dep_id: str) -> list[str]:
    from kubernetes import client

    selector = f"deckhand.io/deployment-id={dep_id}"
    found = []
    for kind, lister in (
        ("Deployment", client.AppsV1Api(k8s_api).list_namespaced_deployment),
        ("ReplicaSet", client.AppsV1Api(k8s_api).list_namespaced_replica_set),
        ("Pod", client.CoreV1Api(k8s_api).list_namespaced_pod),
        ("Service", client.CoreV1Api(k8s_api).list_namespaced_service),
        ("Ingress", client.NetworkingV1Api(k8s_api).list_namespaced_ingress),
        ("HPA", client.AutoscalingV2Api(k8s_api).list_namespaced_horizontal_pod_autoscaler),
        ("PDB", client.PolicyV1Api(k8s_api).list_namespaced_pod_disruption_budget),
    ):
        found += [f"{kind}/{o.metadata.name}" for o in lister(namespace, label_selector=selector).items]
    return found


def test_build_serve_replace_stop(
    real_cluster, cluster_images, control_plane, k8s_api, namespace, second_package
) -> None:
    env, cp = real_cluster, control_plane
    model_a, model_b = cp.packages["a"], cp.packages["b"]
    config = plugin_config(env, cluster_images, cp, namespace, hpa={"min": 1, "max": 2}, pdb={"minAvailable": 1})
    p = make_plugin(config, ["d1", "d2"])
    started = p.invoke("plugin_start")
    assert started.status == ActionStatus.OK, started.msg

    # 1. first start: the image is missing, so a Kaniko Job builds and pushes it
    t0 = time.monotonic()
    result = p.invoke("deployment_start", info("d1", model_a))
    TIMINGS["start_with_kaniko_build_s"] = time.monotonic() - t0
    assert result.status == ActionStatus.OK, result.msg
    assert result.state == DeploymentState.READY
    assert "built and pushed" in result.msg
    assert result.data["currentModelId"] == model_a
    assert result.data["predictionUrl"] == f"http://{env.ingress_http}/deployments/d1/predictions"
    resp = predict_when_routed(env, "d1")
    assert resp.status_code == 200, resp.text
    assert [row["prediction"] for row in resp.json()["data"]] == ["setosa", "virginica"]

    # 2. a second deployment of the same model: the image exists, no build
    t0 = time.monotonic()
    second = p.invoke("deployment_start", info("d2", model_a))
    TIMINGS["start_image_exists_s"] = time.monotonic() - t0
    assert second.status == ActionStatus.OK and "built" not in second.msg, second.msg
    assert TIMINGS["start_image_exists_s"] <= 60, TIMINGS
    assert predict_when_routed(env, "d2").status_code == 200
    again = p.invoke("deployment_start", info("d2", model_a))  # idempotent: nothing changes
    assert again.status == ActionStatus.OK and again.state == DeploymentState.READY
    # only the public routes pass the Ingress: a package uploaded to it changes nothing
    t0 = time.monotonic()
    check_only_public_routes(env, k8s_api, namespace, "d2", model_a, second_package)
    TIMINGS["public_routes_check_s"] = time.monotonic() - t0

    listed = p.invoke("deployment_list")
    assert set(listed.data) == {"d1", "d2"}
    assert all(s["state"] == DeploymentState.READY for s in listed.data.values())
    pe = p.invoke("pe_status")
    assert pe.status == ActionStatus.OK, pe.msg
    assert set(pe.data["deploymentsStatus"]) == {"d1", "d2"}

    # 3. replace the model of d1: built, rolled out, the new model answers
    t0 = time.monotonic()
    replaced = p.invoke("deployment_replace_model", info("d1", model_a, new_model_id=model_b))
    TIMINGS["replace_with_build_s"] = time.monotonic() - t0
    assert replaced.status == ActionStatus.OK, replaced.msg
    assert replaced.data["currentModelId"] == model_b and not replaced.data.get("oldModelInUse")
    assert wait_for("model b served through the Ingress", lambda: served_model(env, "d1") == model_b)
    status = p.invoke("deployment_status", info("d1", model_b))
    assert status.state == DeploymentState.READY and status.data["currentModelId"] == model_b

    # 4. stop: nothing of either deployment is left
    for dep_id in ("d1", "d2"):
        stopped = p.invoke("deployment_stop", info(dep_id, model_b))
        assert stopped.status == ActionStatus.OK and stopped.state == DeploymentState.STOPPED, stopped.msg
        assert leftovers(k8s_api, namespace, dep_id) == []
    assert p.invoke("deployment_list").data == {}
    gone = p.invoke("deployment_status", info("d1", model_b))
    assert gone.state == DeploymentState.STOPPED
    print("\nkubernetes plugin timings:", {k: round(v, 1) for k, v in TIMINGS.items()})


def test_registry_unreachable_during_the_build(real_cluster, cluster_images, control_plane, namespace) -> None:
    closed = f"{real_cluster.registry_in_cluster.split(':')[0]}:1"  # nothing listens on port 1
    config = plugin_config(
        real_cluster, cluster_images, control_plane, namespace,
        generatedImageRepo=f"{closed}/deckhand/models",
        insecureRegistries=[cluster_images.registry, closed],
        kanikoExtraArgs=["--push-retry=0"],
        buildRetries=0,
    )  # fmt: skip
    result = make_plugin(config).invoke("deployment_start", info("d-noreg", control_plane.packages["a"]))
    assert result.status == ActionStatus.ERROR
    assert result.state == DeploymentState.ERROR
    assert "image build Job dh-build-m-" in result.msg
    assert "container kaniko exited" in result.msg
    assert "connection refused" in result.msg.lower() or closed in result.msg, result.msg


def test_a_crashing_model_is_reported_and_the_old_one_keeps_serving(
    real_cluster, cluster_images, control_plane, namespace, file_server
) -> None:
    url, directory = file_server
    (directory / "broken.dhpkg").write_bytes(b"this is not a model package")
    env, cp = real_cluster, control_plane
    good = make_plugin(plugin_config(env, cluster_images, cp, namespace))
    ready = good.invoke("deployment_start", info("d-crash", cp.packages["a"]))
    assert ready.status == ActionStatus.OK, ready.msg

    broken_config = plugin_config(
        env, cluster_images, cp, namespace, modelPackageUrl=f"{url}/broken.dhpkg", readyTimeoutSeconds=150
    )
    result = make_plugin(broken_config).invoke(
        "deployment_replace_model", info("d-crash", cp.packages["a"], new_model_id="broken-1")
    )
    assert result.status == ActionStatus.ERROR
    assert result.state == DeploymentState.READY  # the old model still serves
    assert result.data["oldModelInUse"] is True and result.data["currentModelId"] == cp.packages["a"]
    assert "CrashLoopBackOff" in result.msg or "keeps crashing" in result.msg or "exited" in result.msg, result.msg
    assert predict(env, "d-crash").status_code == 200
    assert served_model(env, "d-crash") == cp.packages["a"]
    # a fresh deployment of the broken model: errored, with the crash loop named
    fresh = make_plugin({**broken_config, "readyTimeoutSeconds": 120}).invoke(
        "deployment_start", info("d-crash2", "broken-1")
    )
    assert fresh.status == ActionStatus.ERROR and fresh.state == DeploymentState.ERROR
    assert "CrashLoopBackOff" in fresh.msg or "exited" in fresh.msg, fresh.msg
    for dep_id in ("d-crash", "d-crash2"):
        assert good.invoke("deployment_stop", info(dep_id, "x")).state == DeploymentState.STOPPED


@pytest.mark.skipif(
    os.environ.get("DECKHAND_TEST_K8S_API_RESTART") != "1",
    reason="stops and restarts the test cluster's API server, which breaks any other session using the same "
    "environment; runs where the machine is not shared: set DECKHAND_TEST_K8S_API_RESTART=1 (.ci/run does)",
)
def test_api_server_restart(real_cluster, cluster_images, control_plane, namespace) -> None:
    """The API server goes away under a running deployment: status says so plainly, the
    deployment keeps serving, and the same plugin instance reports ready once it is back."""
    from k8s_testenv.cluster import Cluster

    env, cp = real_cluster, control_plane
    p = make_plugin(plugin_config(env, cluster_images, cp, namespace), ["d-api"])
    assert p.invoke("deployment_start", info("d-api", cp.packages["a"])).status == ActionStatus.OK
    assert predict_when_routed(env, "d-api").status_code == 200
    cluster = Cluster()
    entry = next(e for e in cluster.procs._load() if e["name"] == "kube-apiserver")
    cluster.procs.stop("kube-apiserver")
    try:
        down = p.invoke("deployment_status", info("d-api", cp.packages["a"]))
        assert down.status == ActionStatus.ERROR
        assert "cannot reach the Kubernetes API" in down.msg, down.msg
        pe = p.invoke("pe_status")
        assert pe.status == ActionStatus.ERROR and "cluster not usable" in pe.msg
        assert predict(env, "d-api").status_code == 200  # the data plane does not need the API server
    finally:
        cluster.procs.start("kube-apiserver", entry["argv"])
        wait_for("the API server back", lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).strip() == "ok",
                 timeout=120)  # fmt: skip
    back = wait_for(
        "ready again",
        lambda: (
            (s := p.invoke("deployment_status", info("d-api", cp.packages["a"]))).state == DeploymentState.READY and s
        ),
        timeout=60,
    )
    assert back.data["currentModelId"] == cp.packages["a"]
    assert p.invoke("deployment_stop", info("d-api", "x")).state == DeploymentState.STOPPED
