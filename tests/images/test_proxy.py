"""deckhand-proxy (Traefik): routes to labelled containers and follows them as they come
and go, without a restart (the Docker provider, as the Docker plugin uses it); the Docker
plugin's rule routes a deployment's public routes and nothing else."""

from __future__ import annotations

import json

import pytest

from deckhand.plugins import public_routes
from deckhand.plugins.docker import names

from .conftest import Engine, http, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

# A backend that answers every GET with its own name.
BACKEND = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['NAME'].encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
)


# A backend that answers every method on every path with "<method> <path>".
ECHO_BACKEND = (
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def answer(self):\n"
    "        length = int(self.headers.get('Content-Length') or 0)\n"
    "        self.rfile.read(length)\n"
    "        body = f'{self.command} {self.path}'.encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
)


def _proxy(engine: Engine, engine_host: str, proxy_image: str, net: str) -> tuple[str, int, int]:
    """A deckhand-proxy on `net` with the Docker provider; returns (container, web port, API port)."""
    socket_path = engine_host.removeprefix("unix://")
    proxy = engine.run(
        proxy_image,
        "--entrypoints.web.address=:80",
        "--entrypoints.traefik.address=:8080",
        "--api.insecure=true",
        "--ping=true",
        "--providers.docker=true",
        "--providers.docker.exposedbydefault=false",
        f"--providers.docker.network={net}",
        name=engine.name("traefik"),
        options=(
            "--network",
            net,
            "-v",
            f"{socket_path}:/var/run/docker.sock:ro",
            "-p",
            "127.0.0.1::80",
            "-p",
            "127.0.0.1::8080",
        ),
    )
    web = engine.host_port(proxy, 80)
    api = engine.host_port(proxy, 8080)
    wait_for(f"http://127.0.0.1:{api}/ping", timeout=30)
    return proxy, web, api


def _backend(engine: Engine, base: str, net: str, route: str) -> str:
    labels = {
        "traefik.enable": "true",
        f"traefik.http.routers.{route}.rule": f"PathPrefix(`/{route}`)",
        f"traefik.http.routers.{route}.entrypoints": "web",
        f"traefik.http.services.{route}.loadbalancer.server.port": "8080",
    }
    options = ["--network", net, "-e", f"NAME={route}"]
    for key, value in labels.items():
        options += ["--label", f"{key}={value}"]
    return engine.run(base, "python3", "-c", BACKEND, name=engine.name(route), options=tuple(options))


def test_proxy_follows_labelled_containers(engine: Engine, engine_host: str, image) -> None:
    proxy_image = image("proxy")
    base = image("base")
    net = engine.network("proxy")
    proxy, web, _ = _proxy(engine, engine_host, proxy_image, net)

    _backend(engine, base, net, "alpha")
    took = wait_for(f"http://127.0.0.1:{web}/alpha/predict", timeout=30)
    assert http("GET", f"http://127.0.0.1:{web}/alpha/predict") == (200, b"alpha")
    print(f"deckhand-proxy: new route served {took:.1f} s after docker run")

    # A second deployment appears: routed without touching the proxy.
    beta = _backend(engine, base, net, "beta")
    wait_for(f"http://127.0.0.1:{web}/beta/x", timeout=30)
    assert http("GET", f"http://127.0.0.1:{web}/beta/x") == (200, b"beta")
    assert http("GET", f"http://127.0.0.1:{web}/alpha/x") == (200, b"alpha")

    # It goes away: its route goes with it (requests in between may hang or fail).
    engine.docker("rm", "-f", beta)
    wait_for(f"http://127.0.0.1:{web}/beta/x", timeout=30, status=404)
    assert http("GET", f"http://127.0.0.1:{web}/alpha/x") == (200, b"alpha")
    assert engine.inspect(proxy)["State"]["Running"]


def test_the_plugin_rule_routes_only_the_public_routes(engine: Engine, engine_host: str, image) -> None:
    """The Docker plugin's labels (names.traefik_labels) on a backend that answers anything:
    through the real Traefik exactly the public routes (method and path) arrive; everything
    else, an upload (`POST /deployments/<id>`) and a delete first, gets Traefik's own 404."""
    net = engine.network("rule")
    _, web, api = _proxy(engine, engine_host, image("proxy"), net)
    options = ["--network", net]
    for key, value in names.traefik_labels("test", net, "d1", "m1", 1).items():
        options += ["--label", f"{key}={value}"]
    engine.run(image("base"), "python3", "-c", ECHO_BACKEND, name=engine.name("echo"), options=tuple(options))
    wait_for(f"http://127.0.0.1:{web}/deployments/d1/info", timeout=30)
    status, router = http("GET", f"http://127.0.0.1:{api}/api/http/routers/d-d1-m-m1@docker")
    assert status == 200 and json.loads(router)["status"] == "enabled", router  # the rule parsed

    public = {(route.method, route.path("d1")) for route in public_routes.PUBLIC_ROUTES}
    paths = [
        *sorted({path for _, path in public}),
        "/deployments/d1/",
        "/deployments/d1/predictions/",
        "/deployments/d1/predictions/x",
        "/deployments/d1/files",
        "/deployments/d10/predictions",
        "/deployments/d1x",
        "/v2/models/d10/infer",
        "/v2/models/d1/versions/m1/infer",
        "/v2/health/ready",
        "/deployments",
        "/ping",
        "/metrics",
        "/",
    ]
    seen = {}
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        for path in paths:
            body = b"PK\x03\x04 a model package" if method in ("POST", "PUT", "PATCH") else None
            seen[(method, path)] = http(method, f"http://127.0.0.1:{web}{path}", body)
    routed = {key for key, answer in seen.items() if answer[0] == 200}
    assert routed == public
    for method, path in public:
        assert seen[(method, path)] == (200, f"{method} {path}".encode())
    assert {
        key: answer for key, answer in seen.items() if key not in public and answer != (404, b"404 page not found\n")
    } == {}
