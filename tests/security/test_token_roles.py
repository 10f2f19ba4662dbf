"""Every route of the control plane, called with every role, answers as docs/security.md's
table "Token roles" says: the table is the contract and this test reads it from the doc.
A route missing from the table, or a row for a route that no longer exists, fails too."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from deckhand.server.app import API_ROUTERS, create_app
from deckhand.server.settings import ServerSettings
from deckhand.server.ui import UI_ROUTERS
from deckhand.server.ui.csrf import CSRF_COOKIE, form_token
from deckhand.server.ui.router import COOKIE_NAME

ADMIN = "dh_" + secrets.token_urlsafe(32)
ROLES = ("no token", "read-only", "admin", "agent of this env", "agent of another env")
DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
# Served by the app itself or the docs module, not by a router: listed here so that the
# table covers them too.
OTHER_ROUTES = [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/assets/{name}"),
                ("GET", "/ui/static/{path}")]  # fmt: skip


def app_routes() -> list[tuple[str, str]]:
    routes = {
        (method, route.path)
        for router in (*API_ROUTERS, *UI_ROUTERS)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
        if method != "HEAD"
    }
    return sorted(routes | set(OTHER_ROUTES), key=lambda r: (r[1], r[0]))


def documented() -> dict[tuple[str, str], dict[str, str]]:
    """The table under "## Token roles": `| METHOD path | cell per role |`."""
    section = DOC.read_text().split("## Token roles", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method, path = cells[0].strip("`").split(" ", 1)
        table[(method, path)] = dict(zip(ROLES, cells[1:], strict=True))
    return table


@dataclass
class World:
    """Fresh objects for one call: environment A (the route's) with a deployment, B, tokens."""

    env: str
    other_env: str
    deployment: str
    package: str
    spare_package: str
    challenger: str  # a challenger of the deployment
    spare_token: str
    channel: str  # a notification channel no policy uses (so it can be deleted)
    policy: str  # a notification policy, on a channel of its own
    tokens: dict[str, str | None]


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, demo_package: Path, second_package: Path
) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("roles")
    with TestClient(create_app(ServerSettings(data_dir=tmp / "data", bootstrap_token=ADMIN))) as api:
        api.package_bytes = [demo_package.read_bytes(), second_package.read_bytes()]  # type: ignore[attr-defined]
        yield api


def _ok(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
# Where the notification channels send: nothing listens, so a test message fails at once.
DEAD_HOOK = "http://127.0.0.1:9/hook"


def make_world(api: TestClient) -> World:
    tag = uuid.uuid4().hex[:8]

    def post(url: str, **options: Any) -> Any:
        return _ok(api.post(url, headers={**AS_ADMIN, **options.pop("headers", {})}, **options))

    octet = {"Content-Type": "application/octet-stream"}
    package = post("/api/v1/model-packages", content=api.package_bytes[0], headers=octet)["id"]  # type: ignore[attr-defined]
    spare = post("/api/v1/model-packages", content=api.package_bytes[1], headers=octet)["id"]  # type: ignore[attr-defined]
    challenger = post("/api/v1/model-packages", content=api.package_bytes[1], headers=octet)["id"]  # type: ignore[attr-defined]
    env = post("/api/v1/environments", json={"name": f"a-{tag}", "platform": "test"})["id"]
    other = post("/api/v1/environments", json={"name": f"b-{tag}", "platform": "test"})["id"]
    dep = post("/api/v1/deployments", json={"name": f"d-{tag}", "environmentId": env, "modelPackageId": package})
    tokens: dict[str, str | None] = {"no token": None, "admin": ADMIN}
    for role, name, body in (
        ("read-only", "ro", {"role": "read-only"}),
        ("agent of this env", "agent-a", {"role": "agent", "environmentIds": [env]}),
        ("agent of another env", "agent-b", {"role": "agent", "environmentIds": [other]}),
        ("spare", "spare", {"role": "read-only"}),
    ):
        tokens[role] = post("/api/v1/tokens", json={"name": f"{name}-{tag}", **body})["token"]
    listed = _ok(api.get("/api/v1/tokens", headers=AS_ADMIN))
    spare_token = next(t["id"] for t in listed if t["name"] == f"spare-{tag}")
    post(f"/api/v1/deployments/{dep['id']}/challengers", json={"modelPackageId": challenger})
    hook = {"kind": "webhook", "url": DEAD_HOOK}
    channel = post("/api/v1/notification-channels", json={"name": f"c-{tag}", **hook})
    policy_channel = post("/api/v1/notification-channels", json={"name": f"pc-{tag}", **hook})
    policy = post(
        "/api/v1/notification-policies",
        json={"name": f"p-{tag}", "kind": "deployment_action", "channelIds": [policy_channel["id"]]},
    )
    return World(env, other, dep["id"], package, spare, challenger, spare_token, channel["id"], policy["id"], tokens)


def _request(world: World, method: str, path: str, api_package: bytes) -> tuple[str, dict[str, Any]]:
    """The concrete URL and request options for a route of `world`."""
    fill = {
        "{environment_id}": world.env,
        "{package_id}": world.spare_package if method == "DELETE" else world.package,
        "{name}": "init.js",
        "{path}": "ui.css",
    }
    if path.startswith("/api/v1/environments/"):  # delete the one without deployments (else 409)
        fill["{ref}"] = world.other_env if method == "DELETE" else world.env
    elif path.startswith("/api/v1/tokens/"):
        fill["{ref}"] = world.spare_token
    elif path.startswith(("/api/v1/notification-channels/", "/ui/notifications/channels/")):
        fill["{ref}"] = world.channel
    elif path.startswith("/api/v1/notification-policies/"):
        fill["{ref}"] = world.policy
    else:
        fill["{ref}"] = world.deployment
    if "/challengers/" in path:
        fill["{package_id}"] = world.challenger
    url = path
    for key, value in fill.items():
        url = url.replace(key, value)
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/environments"): {"json": {"name": f"n-{uuid.uuid4().hex[:8]}", "platform": "test"}},
        ("PATCH", "/api/v1/environments/{ref}"): {"json": {"description": "changed"}},
        ("POST", "/api/v1/deployments"): {
            "json": {"name": f"n-{uuid.uuid4().hex[:8]}", "environmentId": world.env, "modelPackageId": world.package}
        },
        ("PATCH", "/api/v1/deployments/{ref}"): {"json": {"description": "changed"}},
        ("POST", "/api/v1/deployments/{ref}/actuals"): {"json": {"data": [{"associationId": "a", "actualValue": 1}]}},
        ("POST", "/api/v1/deployments/{ref}/replace-model"): {"json": {"modelPackageId": world.spare_package}},
        # already a challenger: a no-op, the same for every role
        ("POST", "/api/v1/deployments/{ref}/challengers"): {"json": {"modelPackageId": world.challenger}},
        # to the revision it runs: a no-op, so every role's call sees the same fresh world
        ("POST", "/api/v1/deployments/{ref}/rollback"): {"json": {"revision": 1}},
        ("POST", "/api/v1/tokens"): {"json": {"name": f"n-{uuid.uuid4().hex[:8]}", "role": "read-only"}},
        ("POST", "/api/v1/agent/environments/{environment_id}/status"): {
            "json": {"deployments": [{"id": world.deployment, "state": "ready"}]}
        },
        ("POST", "/api/v1/agent/environments/{environment_id}/events"): {
            "json": {"events": [{"deploymentId": world.deployment, "action": "deployment_start", "result": "passing"}]}
        },
        ("POST", "/api/v1/monitoring/batches"): {"json": {"batchId": uuid.uuid4().hex, "records": []}},
        ("GET", "/api/v1/agent/environments/{environment_id}/desired-state"): {"params": {"timeout": 0}},
        ("POST", "/api/v1/notification-channels"): {
            "json": {"name": f"n-{uuid.uuid4().hex[:8]}", "kind": "webhook", "url": DEAD_HOOK}
        },
        ("PATCH", "/api/v1/notification-channels/{ref}"): {"json": {"url": DEAD_HOOK + "/changed"}},
        ("POST", "/api/v1/notification-policies"): {
            "json": {"name": f"n-{uuid.uuid4().hex[:8]}", "kind": "deployment_action", "channelIds": [world.channel]}
        },
        ("PATCH", "/api/v1/notification-policies/{ref}"): {"json": {"enabled": False}},
        ("POST", "/ui/login"): {"data": {"token": "TOKEN"}},
        ("POST", "/ui/deployments/{ref}/actions/rollback"): {"data": {"revision": "1"}},
        ("POST", "/ui/deployments/{ref}/actions/challenger-copies"): {"data": {"percent": "50"}},
    }
    options = dict(bodies.get((method, path), {}))
    if (method, path) == ("POST", "/api/v1/model-packages"):
        options = {"content": api_package, "headers": {"Content-Type": "application/octet-stream"}}
    return url, options


# Routes about a running canary: one is started (as admin) before the call.
NEEDS_CANARY = {
    ("GET", "/api/v1/deployments/{ref}/rollout"),
    ("POST", "/api/v1/deployments/{ref}/rollout/abort"),
    ("POST", "/api/v1/deployments/{ref}/rollout/promote"),
    ("POST", "/ui/deployments/{ref}/actions/abort"),
    ("POST", "/ui/deployments/{ref}/actions/promote"),
}


def call(api: TestClient, world: World, method: str, path: str, role: str) -> int:
    if (method, path) in NEEDS_CANARY:
        body = {"modelPackageId": world.spare_package, "canary": {"percent": 10}}
        _ok(api.post(f"/api/v1/deployments/{world.deployment}/replace-model", json=body, headers=AS_ADMIN))
    url, options = _request(world, method, path, api.package_bytes[0])  # type: ignore[attr-defined]
    token = world.tokens[role]
    headers = options.pop("headers", {})
    api.cookies.clear()
    if token and path.startswith("/ui"):
        api.cookies.set(COOKIE_NAME, token)  # the UI takes its token from the login cookie
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    if (method, path) == ("POST", "/ui/login"):  # the UI's login form carries the token in its body
        options["data"] = {"token": token or ""}
    elif method == "POST" and ("/actions/" in path or path == "/ui/logout") and token:  # forms carry a CSRF token
        api.cookies.set(CSRF_COOKIE, "nonce")
        options["data"] = {**options.get("data", {}), "csrf": form_token("nonce", token)}
    response = api.request(method, url, headers=headers, follow_redirects=False, **options)
    api.cookies.clear()
    return response.status_code


def test_the_table_covers_every_route() -> None:
    table, routes = documented(), app_routes()
    missing = [f"{m} {p}" for m, p in routes if (m, p) not in table]
    stale = [f"{m} {p}" for m, p in table if (m, p) not in routes]
    assert not missing, f"add rows to docs/security.md 'Token roles' for {missing}"
    assert not stale, f"docs/security.md lists routes that do not exist: {stale}"


@pytest.mark.parametrize(("method", "path"), app_routes(), ids=lambda v: str(v))
def test_every_role_gets_what_the_table_says(client: TestClient, method: str, path: str) -> None:
    expected = documented().get((method, path))
    assert expected is not None, f"{method} {path} is not in docs/security.md"
    seen = {}
    for role in ROLES:
        world = make_world(client)  # fresh objects: one role's delete does not change the next call
        seen[role] = _describe(call(client, world, method, path, role))
    assert seen == expected


def _describe(status: int) -> str:
    if 200 <= status < 300:
        return "yes"
    if 300 <= status < 400:
        return f"redirect ({status})"
    return f"no ({status})"
