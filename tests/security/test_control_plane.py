"""The control plane's reproducers: an agent token reaching into another environment,
event times that broke a batch, plugin config secrets readable by read-only tokens, weak
bootstrap tokens, world-readable data files, and API docs that needed a CDN."""

from __future__ import annotations

import math
import os
import re
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from deckhand.cli.app import build_app
from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings

ADMIN = "dh_" + secrets.token_urlsafe(32)
REPO = Path(__file__).resolve().parents[2]
SECRETS = {"mlopsApiToken": "tok-" + "x" * 20, "registry": {"password": "hunter2-hunter2", "host": "r.example"}}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, demo_package_bytes: bytes) -> Iterator[TestClient]:
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("cp") / "data", bootstrap_token=ADMIN)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        yield client


@pytest.fixture(scope="module")
def demo_package_bytes(demo_package: Path) -> bytes:
    return demo_package.read_bytes()


def _ok(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def two_envs(api: TestClient, demo_package_bytes: bytes) -> dict[str, Any]:
    """Environments A and B with a deployment each, and an agent token for A."""
    package = _ok(
        api.post(
            "/api/v1/model-packages", content=demo_package_bytes, headers={"Content-Type": "application/octet-stream"}
        )
    )
    out: dict[str, Any] = {}
    for name in ("a", "b"):
        config = {"port": 1, **SECRETS}
        env = _ok(
            api.post("/api/v1/environments", json={"name": f"e-{name}", "platform": "test", "pluginConfig": config})
        )
        dep = {"name": f"d-{name}", "environmentId": env["id"], "modelPackageId": package["id"]}
        dep = _ok(api.post("/api/v1/deployments", json=dep))
        out[name], out[f"dep_{name}"] = env["id"], dep["id"]
    out["agent_a"] = _ok(
        api.post("/api/v1/tokens", json={"name": "agent-a", "role": "agent", "environmentIds": [out["a"]]})
    )["token"]
    out["reader"] = _ok(api.post("/api/v1/tokens", json={"name": "reader", "role": "read-only"}))["token"]
    return out


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_agent_cannot_post_events_or_reports_about_another_environment(api: TestClient, two_envs: dict) -> None:
    a, dep_b, agent = two_envs["a"], two_envs["dep_b"], _as(two_envs["agent_a"])
    events = {
        "events": [
            {"deploymentId": two_envs["dep_a"], "action": "deployment_start", "result": "passing"},
            {"deploymentId": dep_b, "action": "deployment_start", "result": "failing", "message": "forged"},
        ]
    }
    refused = api.post(f"/api/v1/agent/environments/{a}/events", json=events, headers=agent)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"].startswith(f"events.1.deploymentId: {dep_b!r} is not a deployment of")
    forged = [e for e in _ok(api.get("/api/v1/events", params={"deploymentId": dep_b})) if e["message"] == "forged"]
    assert forged == []  # not in B's timeline
    assert not [
        e for e in _ok(api.get("/api/v1/events", params={"deploymentId": two_envs["dep_a"]})) if e["kind"] == "agent"
    ]  # nothing of the batch was stored

    report = {"deployments": [{"id": dep_b, "state": "errored", "message": "forged"}]}
    refused = api.post(f"/api/v1/agent/environments/{a}/status", json=report, headers=agent)
    assert refused.status_code == 403 and "deployments.0.id" in refused.json()["detail"]
    assert _ok(api.get(f"/api/v1/deployments/{dep_b}"))["observed"] is None  # B's deployment untouched

    # its own deployment, and one the control plane does not know (an orphan on the platform), are fine
    own = {
        "events": [
            {"deploymentId": two_envs["dep_a"], "action": "deployment_start", "result": "passing"},
            {"deploymentId": "f" * 24, "action": "deployment_stop", "result": "passing"},
        ]
    }
    assert api.post(f"/api/v1/agent/environments/{a}/events", json=own, headers=agent).status_code == 204


def test_another_environment_looks_missing_to_an_agent(api: TestClient, two_envs: dict) -> None:
    agent = _as(two_envs["agent_a"])
    missing = api.get("/api/v1/deployments/" + "0" * 24, headers=agent)
    foreign = api.get(f"/api/v1/deployments/{two_envs['dep_b']}", headers=agent)
    assert (missing.status_code, foreign.status_code) == (404, 404)
    assert foreign.json()["detail"] == missing.json()["detail"].replace("0" * 24, two_envs["dep_b"])
    for url in (
        f"/api/v1/environments/{two_envs['b']}",
        f"/api/v1/agent/environments/{two_envs['b']}/desired-state",
        f"/api/v1/deployments/{two_envs['dep_b']}/monitoring/service-health",
    ):
        assert api.get(url, headers=agent).status_code == 404, url


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"timestamp": 1e20}, "timestamp"),
        ({"timestamp": -1e12}, "timestamp"),
        ({"timestamp": "9999-12-31T00:00:00Z"}, "timestamp"),
        ({"timestamp": "1969-07-20T20:17:00Z"}, "timestamp"),
        ({"durationSeconds": 1e400}, "durationSeconds"),  # JSON's overflow: infinity
    ],
)
def test_event_times_out_of_range_are_a_422_naming_the_field(
    api: TestClient, two_envs: dict, event: dict, field: str
) -> None:
    body = {
        "events": [
            {"action": "plugin_start", "result": "passing"},
            {"action": "plugin_start", "result": "passing", **event},
        ]
    }
    import json

    response = api.post(
        f"/api/v1/agent/environments/{two_envs['a']}/events",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [f"events.1.{field}"]


def test_event_times_in_seconds_milliseconds_and_iso_are_taken(api: TestClient, two_envs: dict) -> None:
    when = 1_767_225_600  # 2026-01-01T00:00:00Z
    body = {
        "events": [
            {"action": "a-seconds", "result": "passing", "timestamp": when},
            {"action": "a-millis", "result": "passing", "timestamp": when * 1000},
            {"action": "a-iso", "result": "passing", "timestamp": "2026-01-01T00:00:00Z"},
        ]
    }
    assert api.post(f"/api/v1/agent/environments/{two_envs['a']}/events", json=body).status_code == 204
    stamps = {
        e["action"]: e["timestamp"] for e in _ok(api.get("/api/v1/events", params={"environmentId": two_envs["a"]}))
    }
    assert {stamps[k][:19] for k in ("a-seconds", "a-millis", "a-iso")} == {"2026-01-01T00:00:00"}


def test_plugin_config_secrets_are_write_only(api: TestClient, two_envs: dict) -> None:
    env = two_envs["a"]
    for headers in (_as(two_envs["reader"]), _as(ADMIN)):
        config = _ok(api.get(f"/api/v1/environments/{env}", headers=headers))["pluginConfig"]
        assert config == {"port": 1, "mlopsApiToken": "****", "registry": {"password": "****", "host": "r.example"}}
        listed = _ok(api.get("/api/v1/environments", headers=headers))
        assert "hunter2" not in str(listed) and SECRETS["mlopsApiToken"] not in str(listed)
    admin_view = _ok(api.get(f"/api/v1/agent/environments/{env}/desired-state", params={"timeout": 0}))
    assert admin_view["environment"]["pluginConfig"]["mlopsApiToken"] == "****"
    # the environment's agent needs them: in the clear, for it alone
    agent_view = _ok(
        api.get(
            f"/api/v1/agent/environments/{env}/desired-state", params={"timeout": 0}, headers=_as(two_envs["agent_a"])
        )
    )
    assert agent_view["environment"]["pluginConfig"] == {"port": 1, **SECRETS}
    # the UI shows what the API shows its token
    api.cookies.set("deckhand_ui_token", two_envs["reader"])
    page = api.get("/ui/environments", headers={"Authorization": ""})
    api.cookies.clear()
    assert page.status_code == 200 and "hunter2" not in page.text and SECRETS["mlopsApiToken"] not in page.text

    # read, edit one value, write back: the masked ones keep theirs
    masked = _ok(api.get(f"/api/v1/environments/{env}"))["pluginConfig"]
    _ok(api.patch(f"/api/v1/environments/{env}", json={"pluginConfig": {**masked, "port": 2}}))
    agent_view = _ok(
        api.get(
            f"/api/v1/agent/environments/{env}/desired-state", params={"timeout": 0}, headers=_as(two_envs["agent_a"])
        )
    )
    assert agent_view["environment"]["pluginConfig"] == {"port": 2, **SECRETS}


@pytest.mark.parametrize(
    "token", ["a", "dh_short", "dh_admin-change-me-0123456789", "dh_example-token-for-the-docs-xx"]
)
def test_weak_bootstrap_tokens_stop_the_server(tmp_path: Path, token: str) -> None:
    result = CliRunner().invoke(
        build_app(), ["server", "--data-dir", str(tmp_path)], env={"DECKHAND_BOOTSTRAP_TOKEN": token}
    )
    assert result.exit_code == 2, result.output
    assert "DECKHAND_BOOTSTRAP_TOKEN" in result.output and "secrets.token_urlsafe" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "deckhand.db").exists()


def test_the_readme_generates_its_demo_token() -> None:
    readme = (REPO / "README.md").read_text()
    assert not re.search(r"DECKHAND_(BOOTSTRAP_)?TOKEN=dh_", readme), "the README prints a fixed token"
    command = re.search(r"DECKHAND_TOKEN=\$\((python -c '[^']+')\)", readme)
    assert command, "the README's Docker section no longer generates DECKHAND_TOKEN"
    token = subprocess.run(command.group(1), shell=True, capture_output=True, text=True, check=True).stdout.strip()
    assert ServerSettings(bootstrap_token=token).bootstrap_token == token  # strong enough for the server


def test_data_files_are_private_whatever_the_umask(tmp_path: Path, demo_package_bytes: bytes) -> None:
    old = os.umask(0o022)
    try:
        settings = ServerSettings(data_dir=tmp_path / "data", bootstrap_token=ADMIN)
        with TestClient(create_app(settings)) as client:
            client.post(
                "/api/v1/model-packages",
                content=demo_package_bytes,
                headers={"Content-Type": "application/octet-stream", **_as(ADMIN)},
            )
            modes = {
                p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
                for p in [tmp_path / "data", *(tmp_path / "data").rglob("*")]
            }
    finally:
        os.umask(old)
    assert any(name.endswith(".pkg") for name in modes) and "data/deckhand.db-wal" in modes
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert loose == {}, f"readable by others: {loose}"


def test_api_docs_need_no_internet_and_send_security_headers(api: TestClient) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) >= 4
    for asset in assets:
        response = api.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
        assert response.headers["x-content-type-options"] == "nosniff"
    assert api.get("/redoc").status_code == 404
    spec = api.get("/openapi.json")
    assert spec.headers["x-content-type-options"] == "nosniff" and spec.headers["x-frame-options"] == "DENY"
    assert api.get("/docs/assets/index.html").status_code == 404  # only what the page needs is served
    assert math.isfinite(len(spec.json()["paths"]))
