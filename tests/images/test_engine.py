"""The Docker engine started by scripts/docker-engine: what the Docker plugin relies on."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator

import pytest

from .conftest import ENGINE, Engine, wait_for
from .conftest import http as http_request

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]


def test_engine_answers_on_its_own_socket(engine: Engine) -> None:
    assert engine.docker_host.startswith("unix://")
    assert engine.docker("info", "--format", "{{.Driver}}") == "overlay2"
    root = engine.docker("info", "--format", "{{.DockerRootDir}}")
    assert root.endswith("/docker/data-root")
    status = subprocess.run([str(ENGINE), "status"], capture_output=True, text=True)
    assert status.returncode == 0
    assert status.stdout.strip() == f"DOCKER_HOST={engine.docker_host}"


def test_start_is_idempotent(engine: Engine) -> None:
    out = subprocess.run([str(ENGINE), "start"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"DOCKER_HOST={engine.docker_host}"


def test_user_network_name_resolution_and_published_port(engine: Engine, image) -> None:
    base = image("base")
    net = engine.network("net")
    server = engine.run(
        base,
        "python3",
        "-m",
        "http.server",
        "8000",
        name=engine.name("web"),
        options=("--network", net, "-p", "127.0.0.1::8000"),
    )
    port = engine.host_port(server, 8000)
    wait_for(f"http://127.0.0.1:{port}/", timeout=15)
    # Another container on the same network reaches it by name (embedded DNS).
    client = engine.docker(
        "run",
        "--rm",
        "--network",
        net,
        base,
        "python3",
        "-c",
        f"import urllib.request; print(urllib.request.urlopen('http://{server}:8000/').status)",
    )
    assert client == "200"
    assert http_request("GET", f"http://127.0.0.1:{port}/")[0] == 200


def test_docker_sdk_talks_to_the_engine(engine_host: str) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=engine_host)
    try:
        assert client.ping()
        assert client.version()["Os"] == "linux"
        client.images.list()  # the call the plugin makes to find model images
    finally:
        client.close()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b"control plane"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def host_server() -> Iterator[tuple[str, int]]:
    """An HTTP server on the host, bound to the engine's default bridge address."""
    gateway = os.environ.get("DECKHAND_DOCKER_BRIDGE_CIDR", "172.31.250.1/24").split("/")[0]
    server = http.server.ThreadingHTTPServer((gateway, 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_containers_reach_the_host(engine: Engine, image, host_server: tuple[str, int]) -> None:
    """A tracking agent in a container must reach the control plane on the host."""
    _, port = host_server
    net = engine.network("host-gw")
    out = engine.docker(
        "run",
        "--rm",
        "--network",
        net,
        "--add-host",
        "host.docker.internal:host-gateway",
        image("base"),
        "python3",
        "-c",
        "import urllib.request; "
        f"print(urllib.request.urlopen('http://host.docker.internal:{port}/', timeout=5).read().decode())",
    )
    assert out == "control plane"
