"""`deckhand serve --models-dir`: many deployments, picked up and swapped while serving."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import httpx
import pytest

from deckhand import deployment_dirs
from deckhand.packages.demo import sample_rows
from deckhand.serving.admin import token_sha256
from deckhand.serving.config import ServeConfig
from deckhand.testing import wait_until

PREFIX = "deployment_"


def _predict(client: httpx.Client, url: str, ref: str, task: str = "multiclass") -> httpx.Response:
    return client.post(f"{url}/deployments/{ref}/predictions", json=sample_rows(2, task=task))


def test_new_replaced_and_removed_deployments_are_followed(
    serve, demo_package: Path, binary_package: Path, tmp_path: Path, client: httpx.Client
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, f"{PREFIX}d1", "d1", "model-a", demo_package)
    (models / "not_a_deployment").mkdir()  # ignored: no prefix
    config = ServeConfig(models_dir=models, deployment_dir_prefix=PREFIX, poll_interval_s=0.1)
    with serve(config) as (url, _app):
        # loaded before the server accepted traffic; reachable by dir name and by id
        assert _predict(client, url, f"{PREFIX}d1").status_code == 200
        assert _predict(client, url, "d1").status_code == 200
        listed = client.get(f"{url}/deployments").json()["data"]
        assert [(d["directory"], d["deploymentId"], d["state"]) for d in listed] == [(f"{PREFIX}d1", "d1", "ready")]

        # a new deployment appears within 1 s
        deployment_dirs.install(models, f"{PREFIX}d2", "d2", "model-b", binary_package)
        start = time.monotonic()
        wait_until(lambda: _predict(client, url, "d2", "binary").status_code == 200, 5, 0.02, what="d2 served")
        assert time.monotonic() - start < 1.0

        # replace d1's model: the old one serves until the new one is up
        deployment_dirs.install(models, f"{PREFIX}d1", "d1", "model-c", binary_package)
        wait_until(
            lambda: client.get(f"{url}/deployments/d1/info").json().get("modelId") == "model-c",
            5,
            0.02,
            what="d1 serving model-c",
        )
        assert _predict(client, url, "d1", "binary").json()["data"][0]["predictionThreshold"] == 0.5

        # a broken replacement keeps the old model and reports the error
        broken = tmp_path / "broken.dhpkg"
        data = demo_package.read_bytes()
        broken.write_bytes(data[: len(data) // 2])
        deployment_dirs.install(models, f"{PREFIX}d1", "d1", "model-bad", broken)
        wait_until(
            lambda: client.get(f"{url}/deployments/d1/info").json()["lastError"] is not None,
            5,
            0.02,
            what="d1 reporting the broken replacement",
        )
        info = client.get(f"{url}/deployments/d1/info").json()
        assert info["state"] == "ready" and info["modelId"] == "model-c"
        assert "truncated" in info["lastError"]
        assert _predict(client, url, "d1", "binary").status_code == 200

        # removing the directory unloads the deployment
        deployment_dirs.remove(models, f"{PREFIX}d2")
        wait_until(lambda: _predict(client, url, "d2", "binary").status_code == 404, 5, 0.02, what="d2 unloaded")
        assert "no deployment 'd2'" in _predict(client, url, "d2").json()["message"]


def test_a_deployment_that_never_loaded_is_errored(serve, tmp_path: Path, client: httpx.Client) -> None:
    models = tmp_path / "models"
    bad = tmp_path / "bad.dhpkg"
    bad.write_text("not a package")
    models.mkdir()
    deployment_dirs.install(models, "x1", "x1", "m", bad)
    with serve(ServeConfig(models_dir=models)) as (url, _app):
        info = client.get(f"{url}/deployments/x1/info").json()
        assert info["state"] == "errored" and "unknown format" in info["lastError"]
        response = _predict(client, url, "x1")
        assert response.status_code == 503 and "unknown format" in response.json()["message"]
        assert client.get(f"{url}/ping").status_code == 200


def test_upload_and_delete_over_the_admin_listener(
    serve, demo_package: Path, tmp_path: Path, client: httpx.Client
) -> None:
    models = tmp_path / "models"
    token = secrets.token_urlsafe(32)
    config = ServeConfig(
        models_dir=models, deployment_dir_prefix=PREFIX, admin_port=0, admin_token_sha256=token_sha256(token)
    )
    with serve(config) as (url, app):
        admin = f"http://127.0.0.1:{app.config.admin_port}"
        auth = {"authorization": f"Bearer {token}"}
        created = client.post(
            f"{admin}/deployments/up1?modelId=m-9",
            content=demo_package.read_bytes(),
            headers={"content-type": "application/octet-stream", **auth},
        )
        assert created.status_code == 201, created.text
        assert created.json()["modelId"] == "m-9" and created.json()["directory"] == f"{PREFIX}up1"
        assert (models / f"{PREFIX}up1" / "config.yml").is_file()
        assert _predict(client, url, "up1").status_code == 200
        listed = client.get(f"{admin}/deployments", headers=auth).json()["data"]
        assert [d["directory"] for d in listed] == [f"{PREFIX}up1"]

        rejected = client.post(f"{admin}/deployments/up2", content=b"garbage", headers=auth)
        assert rejected.status_code == 400 and "unknown format" in rejected.json()["message"]
        assert not (models / f"{PREFIX}up2").exists()

        assert client.delete(f"{admin}/deployments/up1", headers=auth).status_code == 200
        assert not (models / f"{PREFIX}up1").exists()
        assert _predict(client, url, "up1").status_code == 404
        # predictions are not served on the admin listener
        assert client.post(f"{admin}/deployments/up1/predictions", json=[], headers=auth).status_code == 404


WRONG_METHODS = {
    "public": [
        ("GET", "/deployments/d1/predictions", "POST"),
        ("PUT", "/deployments/d1/predict/", "POST"),
        ("POST", "/deployments/d1/info", "GET"),
        ("DELETE", "/deployments/d1", "GET"),
        ("POST", "/deployments", "GET"),
        ("POST", "/ping", "GET"),
        ("HEAD", "/metrics", "GET"),
        ("GET", "/predictions", "POST"),
        ("DELETE", "/info", "GET"),
    ],
    "admin": [
        ("GET", "/deployments/d1", "DELETE, POST"),
        ("PUT", "/deployments/d1", "DELETE, POST"),
        ("DELETE", "/deployments", "GET"),
        ("POST", "/ping", "GET"),
    ],
}


@pytest.mark.parametrize("listener", sorted(WRONG_METHODS))
def test_a_served_path_with_a_wrong_method_is_a_405_naming_the_allowed_methods(
    serve, demo_package: Path, tmp_path: Path, client: httpx.Client, listener: str
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, "d1", "d1", "m-1", demo_package)
    token = secrets.token_urlsafe(32)
    config = ServeConfig(models_dir=models, admin_port=0, admin_token_sha256=token_sha256(token))
    with serve(config) as (url, app):
        auth = {"authorization": f"Bearer {token}"}
        base, headers = (url, {}) if listener == "public" else (f"http://127.0.0.1:{app.config.admin_port}", auth)
        for method, path, allow in WRONG_METHODS[listener]:
            response = client.request(method, base + path, headers=headers)
            assert (response.status_code, response.headers.get("allow")) == (405, allow), (method, path)
            if method != "HEAD":
                assert response.json()["message"].startswith(f"{method} /"), response.text
        for method, path in (("GET", "/deployments/d1/nothing"), ("POST", "/nothing"), ("GET", "/deploymentsx")):
            response = client.request(method, base + path, headers=headers)
            assert response.status_code == 404 and "allow" not in response.headers, (method, path)
        if listener == "admin":  # the token is checked before routing: no route is revealed without it
            assert client.get(f"{base}/deployments/d1").status_code == 401


def test_single_model_mode_refuses_uploads(serve, demo_package: Path, client: httpx.Client) -> None:
    with serve(ServeConfig(package=demo_package)) as (url, _app):
        response = client.post(f"{url}/deployments/x", content=demo_package.read_bytes())
        assert response.status_code == 405 and "--admin-port" in response.json()["message"]
        assert response.headers["allow"] == "GET"
        # the one model is also reachable as a deployment
        assert _predict(client, url, "default").status_code == 200


def test_ambiguous_deployment_id_needs_the_directory_name(
    serve, demo_package: Path, tmp_path: Path, client: httpx.Client
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, "a", "same", "m1", demo_package)
    deployment_dirs.install(models, "b", "same", "m2", demo_package)
    with serve(ServeConfig(models_dir=models)) as (url, _app):
        assert _predict(client, url, "same").status_code == 404
        assert _predict(client, url, "a").status_code == 200
    shutil.rmtree(models)


def test_every_public_route_the_plugins_expose_is_served(
    serve, demo_package: Path, tmp_path: Path, client: httpx.Client
) -> None:
    """The Docker proxy and the Ingress route exactly deckhand.plugins.public_routes: each
    must be a route of the public listener."""
    from deckhand.plugins import public_routes

    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, "d1", "d1", "m-1", demo_package)
    with serve(ServeConfig(models_dir=models)) as (url, app):
        row = sample_rows(1)
        v2_request = {
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": list(row[0].values())}]
        }
        for route in public_routes.PUBLIC_ROUTES:
            body = (v2_request if route.template.startswith("/v2/") else row) if route.method == "POST" else None
            response = client.request(route.method, url + route.path("d1"), json=body)
            assert response.status_code == 200, (route, response.text)
        # and the other way round: a per-deployment route the proxies do not expose is unreachable,
        # except the Open Inference Protocol's versioned forms (public_routes says why)
        served = {
            (r.method, r.pattern)
            for r in app.public.routes.routes
            if r.pattern.startswith(public_routes.DEPLOYMENT_PREFIXES) and "/versions/" not in r.pattern
        }
        assert served == {(r.method, r.template) for r in public_routes.PUBLIC_ROUTES}
