"""deckhand-proxy (Traefik): routes to labelled containers and follows them as they come
and go, without a restart (the Docker provider, as the Docker plugin uses it)."""

from __future__ import annotations

import pytest

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
