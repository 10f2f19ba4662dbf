"""The Docker plugin's figures on deckhand's engine: model image build time (cached base
layers), seconds from the image existing to the deployment serving through the proxy, and
failed requests during a model replacement under a fixed request rate.

    eval "$(scripts/docker-engine env)" && make -C images pps proxy
    python bench/docker_plugin.py [--runs 5] [--rate 200]

Each run deploys a model id new to the engine (so its image is really built), checks a
prediction through Traefik, and removes it; one replacement then runs under the request
loop. Everything is created under a unique environment id and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from deckhand.packages.demo import sample_rows, train_demo_package
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugins.docker import names
from deckhand.plugins.docker.plugin import DockerPlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.plugins.docker.conftest import RequestLoop  # noqa: E402 - the tests' request loop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()

    env_id = f"dh-bench-{secrets.token_hex(3)}"
    web, api = free_port(), free_port()
    config = {
        "MLOPS_BOSUN_PRED_ENV_ID": env_id,
        "dockerHost": os.environ.get("DOCKER_HOST", "unix:///run/deckhand-docker/docker.sock"),
        "dockerNetwork": f"{env_id}-net",
        "containerNamePrefix": f"{env_id}_",
        "generatedImagePrefix": "dh-bench-model",
        "traefikPortMapping": {80: web, 8080: api},
    }
    plugin = DockerPlugin(config, pe_info={"id": env_id})
    work = Path(tempfile.mkdtemp(prefix="dh-bench-"))
    package_a, package_b = work / "a.dhpkg", work / "b.dhpkg"
    train_demo_package(package_a, seed=0)
    train_demo_package(package_b, seed=1)
    body = json.dumps(sample_rows(2)).encode()
    builds, serving = [], []
    try:
        started = plugin.invoke("plugin_start")
        assert started.status == "passing", started.msg
        for run in range(args.runs):
            model = f"bench-{secrets.token_hex(4)}"
            began = time.monotonic()
            status = plugin.invoke("deployment_start", DeploymentInfo(
                {"id": f"d{run}", "modelId": model, "modelArtifact": str(package_a)}
            ))  # fmt: skip
            total = time.monotonic() - began
            assert status.status == "passing", status.msg
            request = urllib.request.Request(
                f"http://127.0.0.1:{web}/deployments/d{run}/predictions",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            timings = status.data["timings"]
            builds.append(timings["image_seconds"])
            serving.append(total - timings["image_seconds"])
            print(f"run {run}: image built in {builds[-1]:.2f} s, serving {serving[-1]:.2f} s after that", flush=True)
            plugin.invoke("deployment_stop", DeploymentInfo({"id": f"d{run}"}))

        plugin.invoke(
            "deployment_start", DeploymentInfo({"id": "r", "modelId": "bench-a", "modelArtifact": str(package_a)})
        )
        with RequestLoop("127.0.0.1", web, "/deployments/r/predictions", rate=args.rate) as load:
            time.sleep(2)
            replaced = plugin.invoke("deployment_replace_model", DeploymentInfo(
                {"id": "r", "modelId": "bench-a", "newModelId": f"bench-{secrets.token_hex(4)}",
                 "modelArtifact": str(package_b)}
            ))  # fmt: skip
            time.sleep(2)
        assert replaced.status == "passing", replaced.msg
        plugin.invoke("deployment_stop", DeploymentInfo({"id": "r"}))
    finally:
        plugin.invoke("plugin_stop")
        import docker

        client = docker.DockerClient(base_url=config["dockerHost"])
        for container in client.containers.list(all=True, filters={"label": names.label_filter(env_id)}):
            container.remove(force=True)
        for image in client.images.list(name="dh-bench-model"):
            client.images.remove(image.id, force=True)
        client.close()

    print()
    print("| figure | median | max | target |")
    print("| --- | --- | --- | --- |")
    print(f"| model image build, cached base (s) | {statistics.median(builds):.2f} | {max(builds):.2f} | <= 30 |")
    print(f"| image exists -> serving via proxy (s) | {statistics.median(serving):.2f} | {max(serving):.2f} | <= 10 |")
    print(
        f"| failed requests during replacement | {load.failed} of {load.ok + load.failed} "
        f"at {load.rate:.0f} req/s | | 0 at 200 req/s |"
    )
    return 0 if load.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
