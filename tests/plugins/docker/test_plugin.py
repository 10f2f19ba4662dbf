"""The Docker plugin against deckhand's real engine: start, predict through Traefik,
replace the model under a 200 requests/s loop, adopt after a restart, stop, clean up."""

from __future__ import annotations

import os
import time

import pytest
from tests.docker_fixtures import http

from deckhand.plugin.action_status import ActionStatus
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugins.docker import names

from .conftest import RequestLoop, get_json, predict, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


def info(dep: str, model: str, artifact, new_model: str | None = None) -> DeploymentInfo:
    values = {"id": dep, "modelId": model, "modelArtifact": str(artifact)}
    if new_model:
        values["newModelId"] = new_model
    return DeploymentInfo(values)


def test_lifecycle_start_predict_replace_under_load_stop(denv, packages, client) -> None:
    # Model ids new to the engine, so the model images are built (and timed) here.
    model_a, model_b = f"model-a-{denv.env_id}", f"model-b-{denv.env_id}"
    plugin = denv.plugin()
    started = plugin.invoke("plugin_start")
    assert started.status == ActionStatus.OK, started.msg
    assert denv.networks(), "plugin_start creates the dockerNetwork"

    # The model image is built first (what "its image exists" means), then timed to serving.
    begin = time.monotonic()
    status = plugin.invoke("deployment_start", info("d1", model_a, packages["a"]))
    total = time.monotonic() - begin
    assert status.status == ActionStatus.OK, status.msg
    assert status.state == "ready"
    url = status.data["predictionUrl"]
    assert url == f"http://localhost:{denv.web_port}/deployments/d1/predictions"
    timings = status.data["timings"]
    print(f"\ndeployment_start: {total:.2f} s total, timings {timings}")
    serving = timings["healthy_seconds"] + timings["route_seconds"]
    # Target: 10 s. Nearly all of it is the prediction server's own start (imports, model
    # load), which a machine with more runnable processes than cores stretches: there the
    # bound is looser, and the figure is printed either way.
    load_per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    bound = 10 if load_per_core < 1.5 else 30
    assert serving <= bound, (
        f"served {serving:.1f} s after its image existed (target 10 s, load/core {load_per_core:.1f})"
    )
    assert timings["image_built"] == 1.0
    assert timings["image_seconds"] <= 30, f"model image took {timings['image_seconds']:.1f} s (target 30 s)"

    code, body = predict(f"{denv.url}/deployments/d1/predictions")
    assert code == 200 and len(body["data"]) == 2

    container = client.containers.get(names.container_name(denv.prefix, "d1", model_a))
    assert container.labels[names.LABEL_DEPLOYMENT] == "d1"
    assert container.labels[names.LABEL_MODEL] == model_a
    assert container.labels[names.LABEL_MANAGED] == names.MANAGED_VALUE

    # Idempotent: starting again keeps the same container.
    again = plugin.invoke("deployment_start", info("d1", model_a, packages["a"]))
    assert again.status == ActionStatus.OK, again.msg
    assert client.containers.get(container.name).id == container.id

    # Replace while ~200 requests/s flow through the proxy: not one may fail.
    with RequestLoop("127.0.0.1", denv.web_port, "/deployments/d1/predictions", rate=200) as load:
        time.sleep(2)  # load on before and after the replacement, not a wait for anything
        replaced = plugin.invoke("deployment_replace_model", info("d1", model_a, packages["b"], model_b))
        time.sleep(3)
    print(
        f"replacement under load: {load.ok} ok, {load.failed} failed in {load.seconds:.1f} s "
        f"({load.rate:.0f} req/s); replace took {replaced.duration:.2f} s; timings {replaced.data.get('timings')}"
    )
    assert replaced.status == ActionStatus.OK, replaced.msg
    assert replaced.data["currentModelId"] == model_b
    assert load.failed == 0, load.errors
    # The loop must come near its 200 req/s for the test to mean something; a machine far
    # over its cores (other work) slows the client too.
    floor = 150 if os.getloadavg()[0] / (os.cpu_count() or 1) < 2.5 else 100
    assert load.rate >= floor, f"the loop only reached {load.rate:.0f} req/s"
    ours = {c.name for c in denv.containers() if c.labels.get(names.LABEL_ROLE) == names.ROLE_MODEL}
    assert ours == {names.container_name(denv.prefix, "d1", model_b)}

    # A fresh plugin instance (a restarted agent) sees what runs, from the engine alone.
    fresh = denv.plugin(pe_deployments=["d1"])
    listed = fresh.invoke("deployment_list")
    assert listed.status == ActionStatus.OK
    assert listed.data["d1"]["state"] == "ready"
    assert listed.data["d1"]["data"]["currentModelId"] == model_b
    pe = fresh.invoke("pe_status")
    assert pe.status == ActionStatus.OK, pe.msg
    assert pe.data["deploymentsStatus"]["d1"]["state"] == "ready"

    # Stop: container and route go; plugin_stop then removes the proxy and the network.
    stopped = fresh.invoke("deployment_stop", DeploymentInfo({"id": "d1"}))
    assert stopped.status == ActionStatus.OK and stopped.state == "stopped", stopped.msg
    assert fresh.invoke("deployment_status", DeploymentInfo({"id": "d1"})).state == "stopped"
    wait_until(lambda: not [r for r in denv.routers() if r.startswith("d-d1-")], 10, what="route removed")
    code, _ = predict(f"{denv.url}/deployments/d1/predictions")
    assert code == 404
    assert fresh.invoke("deployment_stop", DeploymentInfo({"id": "d1"})).status == ActionStatus.OK  # idempotent
    done = fresh.invoke("plugin_stop")
    assert done.status == ActionStatus.OK, done.msg
    assert denv.containers() == []
    assert denv.networks() == []


# What Traefik itself answers when no router matches (the server's own 404s are JSON).
TRAEFIK_NOT_FOUND = (404, b"404 page not found\n")


def _container_state(container) -> dict:
    """What an upload or a delete reaching the server would change: the container itself, its
    files (changes against its image) and the model package it serves."""
    container.reload()
    code, out = container.exec_run(["sha256sum", names.MODEL_PACKAGE_PATH])
    assert code == 0, out
    state = container.attrs["State"]
    return {
        "id": container.id,
        "started": state["StartedAt"],
        "restarts": container.attrs["RestartCount"],
        "status": container.status,
        "files": sorted((change["Kind"], change["Path"]) for change in container.diff() or []),
        "package": out.split()[0],
    }


def test_the_proxy_routes_only_the_public_routes(denv, packages, client) -> None:
    """Through the real Traefik: predictions and info reach the model; an upload (`POST
    /deployments/<id>` with a package as the body) and a delete match no router, so Traefik
    answers 404 itself, and the container, its files and the model it serves are unchanged."""
    plugin = denv.plugin()
    started = plugin.invoke("deployment_start", info("d1", "model-a", packages["a"]))
    assert started.status == ActionStatus.OK, started.msg
    base = f"{denv.url}/deployments/d1"
    container = client.containers.get(names.container_name(denv.prefix, "d1", "model-a"))
    before = _container_state(container)
    assert before["status"] == "running"

    for path in ("/predictions", "/predict"):
        code, body = predict(f"{base}{path}")
        assert code == 200 and len(body["data"]) == 2, (path, code, body)
    for url in (f"{base}/info", base):
        code, body = get_json(url)
        assert code == 200 and body["modelId"] == "model-a", (url, code, body)

    refused = {
        "upload": http("POST", base, packages["b"].read_bytes(), {"Content-Type": "application/octet-stream"}),
        "delete": http("DELETE", base),
        # nothing else under the deployment's path, nor the server's own routes
        "PUT": http("PUT", base, b"{}"),
        "GET predictions": http("GET", f"{base}/predictions"),
        "DELETE info": http("DELETE", f"{base}/info"),
        "trailing slash": http("GET", f"{base}/"),
        "sub-path": http("POST", f"{base}/predictions/x", b"{}"),
        "list": http("GET", f"{denv.url}/deployments"),
        "ping": http("GET", f"{denv.url}/ping"),
        "metrics": http("GET", f"{denv.url}/metrics"),
    }
    print(f"\nthrough the proxy: { {what: answer[0] for what, answer in refused.items()} }")
    assert {what: answer for what, answer in refused.items() if answer != TRAEFIK_NOT_FOUND} == {}

    # The model still serves, from the same container, with the same files.
    code, body = predict(f"{base}/predictions")
    assert code == 200 and len(body["data"]) == 2
    assert get_json(f"{base}/info")[1]["modelId"] == "model-a"
    assert _container_state(container) == before
    stopped = plugin.invoke("deployment_stop", DeploymentInfo({"id": "d1"}))
    assert stopped.status == ActionStatus.OK, stopped.msg


def test_two_deployments_share_the_proxy_and_a_model_image(denv, packages, client) -> None:
    plugin = denv.plugin()
    for dep in ("d1", "d2"):
        status = plugin.invoke("deployment_start", info(dep, "model-a", packages["a"]))
        assert status.status == ActionStatus.OK, status.msg
    # One image per model: the second start reused it.
    assert status.data["timings"]["image_built"] == 0.0
    for dep in ("d1", "d2"):
        code, body = predict(f"{denv.url}/deployments/{dep}/predictions")
        assert code == 200, body
    plugin.invoke("deployment_stop", DeploymentInfo({"id": "d1"}))
    # plugin_stop leaves the proxy while a deployment still runs, so it keeps serving.
    kept = plugin.invoke("plugin_stop")
    assert kept.status == ActionStatus.OK and "still have containers" in kept.msg
    assert predict(f"{denv.url}/deployments/d2/predictions")[0] == 200
    plugin.invoke("deployment_stop", DeploymentInfo({"id": "d2"}))
    plugin.invoke("plugin_stop")
    assert denv.containers() == [] and denv.networks() == []


def test_dry_run_changes_nothing(denv, packages) -> None:
    from deckhand.plugins.docker.plugin import DockerPlugin

    plugin = DockerPlugin(denv.config(), pe_info={"id": denv.env_id}, dry_run=True)
    status = plugin.invoke("deployment_start", info("d1", "model-a", packages["a"]))
    assert status.status == ActionStatus.OK and status.msg.startswith("dry run")
    assert plugin.invoke("plugin_start").msg.startswith("dry run")
    assert denv.containers() == [] and denv.networks() == []


def test_parallel_first_starts_share_one_network_and_proxy(denv, packages) -> None:
    """The agent runs actions for different deployments in parallel: two first starts race to
    create the network and the proxy, and both succeed."""
    from concurrent.futures import ThreadPoolExecutor

    def start(dep: str):
        return denv.plugin().invoke("deployment_start", info(dep, "model-a", packages["a"]))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(start, ["p1", "p2"]))
    for result in results:
        assert result.status == ActionStatus.OK, result.msg
    proxies = [c for c in denv.containers() if c.labels[names.LABEL_ROLE] == names.ROLE_PROXY]
    assert len(proxies) == 1 and len(denv.networks()) == 1
    for dep in ("p1", "p2"):
        assert predict(f"{denv.url}/deployments/{dep}/predictions")[0] == 200
