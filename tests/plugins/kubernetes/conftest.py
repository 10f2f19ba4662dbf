"""Fixtures for the Kubernetes plugin against the real test environment (scripts/k8s-testenv):
the cluster, deckhand's images pushed to its registry, and a control plane the pods reach."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))

from k8s_testenv.pytest_plugin import k8s_api, k8s_env, k8s_namespace  # noqa: E402,F401
from tests.plugins.kubernetes.helpers import HOST_FROM_PODS  # noqa: E402

ADMIN_TOKEN = "k8s-admin-token-0123456789"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents and Path(item.fspath).name.startswith("test_cluster"):
            item.add_marker(pytest.mark.k8s)
            item.add_marker(pytest.mark.slow)


@dataclass
class Images:
    pps: str
    kaniko: str
    agent: str
    tracking_agent: str
    control_plane: str
    registry: str  # as pods and the node see it (registry_in_cluster)
    push_seconds: float


@pytest.fixture(scope="session")
def real_cluster(k8s_env):  # noqa: F811
    if not k8s_env.real_node:
        pytest.skip(
            "the Kubernetes test environment runs kwok nodes here: Kaniko builds and serving pods need the "
            "real node (see scripts/k8s-testenv check for what is missing)"
        )
    return k8s_env


@pytest.fixture(scope="session")
def cluster_images(real_cluster, registry_images) -> Images:
    return registry_images


@pytest.fixture(scope="session")
def registry_images(k8s_env, build_image, engine_host) -> Images:  # noqa: F811
    """deckhand-pps, -kaniko, -agent, -tracking-agent and -control-plane built on deckhand's Docker
    engine and pushed to the test registry (the node and Kaniko pull them as registry_in_cluster/...)."""
    in_cluster = k8s_env.registry_in_cluster or k8s_env.registry
    env = {"DOCKER_HOST": engine_host, "PATH": "/usr/bin:/bin:/usr/local/bin"}
    started = time.monotonic()
    refs = {}
    for name in ("pps", "kaniko", "agent", "tracking-agent", "control-plane"):
        local = build_image(name, allow_existing=True)
        tag = local.split(":", 1)[1]
        pushed = f"{k8s_env.registry}/deckhand/{name}:{tag}"
        for cmd in (["docker", "tag", local, pushed], ["docker", "push", "-q", pushed]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr}"
        refs[name] = f"{in_cluster}/deckhand/{name}:{tag}"
    return Images(refs["pps"], refs["kaniko"], refs["agent"], refs["tracking-agent"], refs["control-plane"],
                  in_cluster, time.monotonic() - started)  # fmt: skip


@dataclass
class ControlPlane:
    url: str
    client: object
    packages: dict[str, str]  # fixture name -> package id


@pytest.fixture(scope="session")
def control_plane(real_cluster, tmp_path_factory, demo_package, second_package) -> Iterator[ControlPlane]:
    """A real control plane bound to the pod-bridge gateway, so build pods and the agent
    pod reach it (nothing but the bridge and this host can: see docs/k8s-testenv.md)."""
    from deckhand.client.control_plane import ControlPlaneClient
    from deckhand.server.settings import ServerSettings
    from deckhand.server.testing import ThreadedServer

    data = tmp_path_factory.mktemp("control-plane")
    server = ThreadedServer(
        ServerSettings(data_dir=data, bootstrap_token=ADMIN_TOKEN, host=HOST_FROM_PODS, port=0)
    ).start()
    client = ControlPlaneClient(server.url, ADMIN_TOKEN)
    try:
        packages = {
            "a": client.upload_package(demo_package)["id"],
            "b": client.upload_package(second_package)["id"],
        }
        yield ControlPlane(server.url, client, packages)
    finally:
        client.close()
        server.stop()


@pytest.fixture
def namespace(k8s_api, k8s_namespace: str) -> str:  # noqa: F811
    """A fresh namespace holding the `api-token` secret (the admin token) the plugin's
    Kaniko Jobs download packages with (`modelPackageTokenSecret`)."""
    from kubernetes import client

    client.CoreV1Api(k8s_api).create_namespaced_secret(
        k8s_namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="api-token"), string_data={"secret": ADMIN_TOKEN}),
    )
    return k8s_namespace


@pytest.fixture
def file_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on the pod-bridge gateway serving tmp_path (for packages the control
    plane would refuse, e.g. a corrupt one)."""
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer((HOST_FROM_PODS, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST_FROM_PODS}:{httpd.server_address[1]}", tmp_path
    finally:
        httpd.shutdown()
        httpd.server_close()
