"""The prediction-server image serves models from a mounted models dir or baked into a
model image built FROM it (what the Docker plugin does)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from deckhand.testing import wait_until

from .conftest import VERSION, Engine, http, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

CSV = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
# Targets from the issue, with head-room for a busy 2-core machine; the measured
# times are printed (pytest -s) for the record.
SERVE_LIMIT_S = 30
MODEL_IMAGE_LIMIT_S = 60


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = pytest.importorskip("deckhand.packages.demo")
    deployment_dirs = pytest.importorskip("deckhand.deployment_dirs")
    work = tmp_path_factory.mktemp("pps")
    package = work / "iris.dhpkg"
    demo.train_demo_package(package)
    models = work / "models"
    models.mkdir()
    deployment_dirs.install(models, "deployment_d1", "d1", "m1", package)
    # The container runs as the unprivileged `deckhand` user: let it read the files.
    for path in [models, *models.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return models


def _predict(port: int, ref: str) -> list[dict]:
    status, body = http(
        "POST",
        f"http://127.0.0.1:{port}/deployments/{ref}/predictions",
        CSV,
        {"Content-Type": "text/csv"},
    )
    assert status == 200, body
    return json.loads(body)["data"]


def test_pps_serves_a_mounted_models_dir(engine: Engine, image, models_dir: Path) -> None:
    ref = image("pps")
    start = time.monotonic()
    name = engine.run(
        ref,
        name=engine.name("pps"),
        options=("-v", f"{models_dir}:/opt/deckhand/models:ro", "-p", "127.0.0.1::8080"),
    )
    port = engine.host_port(name, 8080)
    wait_for(f"http://127.0.0.1:{port}/deployments/d1/info", timeout=SERVE_LIMIT_S)
    ready = time.monotonic() - start
    print(f"deckhand-pps: serving deployment d1 {ready:.1f} s after docker run")
    assert http("GET", f"http://127.0.0.1:{port}/ping")[0] == 200
    rows = _predict(port, "d1")
    assert [r["prediction"] for r in rows] == ["setosa", "virginica"]
    assert {v["label"] for v in rows[0]["predictionValues"]} == {"setosa", "versicolor", "virginica"}
    # The HEALTHCHECK (python + /ping) turns healthy.
    wait_until(lambda: engine.inspect(name)["State"]["Health"]["Status"] == "healthy", 30, 0.5, what="healthy")


def test_model_image_from_pps_builds_fast_and_serves(
    engine: Engine, engine_host: str, image, models_dir: Path, tmp_path: Path
) -> None:
    docker = pytest.importorskip("docker")
    base = image("pps")
    context = tmp_path / "model-image"
    context.mkdir()
    (context / "deployment_d1").mkdir()
    for f in (models_dir / "deployment_d1").iterdir():
        (context / "deployment_d1" / f.name).write_bytes(f.read_bytes())
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY --chown=deckhand:deckhand deployment_d1/ /opt/deckhand/models/deployment_d1/\n"
    )
    tag = f"dh-test-model:{VERSION}-m1"
    client = docker.DockerClient(base_url=engine_host)
    try:
        start = time.monotonic()
        client.images.build(path=str(context), tag=tag, rm=True, network_mode="host")
        build_s = time.monotonic() - start
        print(f"model image {tag}: built in {build_s:.1f} s (Docker SDK, classic builder)")
        assert build_s < MODEL_IMAGE_LIMIT_S
        start = time.monotonic()
        name = engine.run(tag, name=engine.name("model"), options=("-p", "127.0.0.1::8080"))
        port = engine.host_port(name, 8080)
        wait_for(f"http://127.0.0.1:{port}/deployments/d1/info", timeout=SERVE_LIMIT_S)
        print(f"model image: serving {time.monotonic() - start:.1f} s after docker run")
        assert _predict(port, "d1")[0]["prediction"] == "setosa"
    finally:
        engine.cleanup()
        client.images.remove(tag, force=True)
        client.close()
