"""Tokens and roles: 401 without or with a bad token, 403 for a role not allowed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from deckhand.server.app import create_app
from deckhand.server.db.models import ApiToken
from deckhand.server.db.session import Database
from deckhand.server.settings import ServerSettings


def _as(api: TestClient, token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _token(api: TestClient, name: str, role: str, envs: list[str] | None = None) -> str:
    body: dict = {"name": name, "role": role}
    if envs:
        body["environmentIds"] = envs
    response = api.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwdw==", "dh_test-admin-token"],
)
def test_missing_or_bad_tokens_are_401(api: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    api.headers.pop("Authorization")
    for method, url in [("GET", "/api/v1/environments"), ("POST", "/api/v1/deployments"),
                        ("GET", "/api/v1/agent/environments/x/desired-state")]:  # fmt: skip
        response = api.request(method, url, headers=headers)
        assert response.status_code == 401, (method, url, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "wrong-token" not in response.text  # a bad token is never echoed in full


def test_public_endpoints(api: TestClient) -> None:
    api.headers.pop("Authorization")
    assert api.get("/healthz").json()["status"] == "ok"
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/v1/agent/environments/{environment_id}/desired-state" in paths
    assert api.get("/docs").status_code == 200


def test_read_only_may_only_read(api: TestClient, deployment: dict) -> None:
    ro = _as(api, _token(api, "viewer", "read-only"))
    assert api.get("/api/v1/environments", headers=ro).status_code == 200
    assert api.get("/api/v1/deployments", headers=ro).status_code == 200
    assert api.get("/api/v1/events", headers=ro).status_code == 200
    assert api.get("/api/v1/model-packages", headers=ro).status_code == 200
    for method, url, body in [
        ("POST", "/api/v1/environments", {"name": "x", "platform": "test"}),
        ("POST", f"/api/v1/deployments/{deployment['id']}/deactivate", None),
        ("DELETE", f"/api/v1/deployments/{deployment['id']}", None),
        ("POST", f"/api/v1/agent/environments/{deployment['environmentId']}/status",
         {"deployments": []}),
        ("GET", "/api/v1/tokens", None),
    ]:  # fmt: skip
        response = api.request(method, url, json=body, headers=ro)
        assert response.status_code == 403, (method, url, response.text)
        assert "viewer" in response.json()["detail"]


def test_agent_is_limited_to_its_environments(api: TestClient, deployment: dict, package: dict) -> None:
    env_id = deployment["environmentId"]
    other = api.post("/api/v1/environments", json={"name": "other", "platform": "test"}).json()
    agent = _as(api, _token(api, "agent-staging", "agent", ["staging"]))
    base = "/api/v1/agent/environments"
    assert api.get(f"{base}/{env_id}/desired-state", headers=agent).status_code == 200
    assert api.post(f"{base}/{env_id}/status", json={"deployments": []},
                    headers=agent).status_code == 204  # fmt: skip
    assert api.post(f"{base}/{env_id}/events", json={"events": []},
                    headers=agent).status_code == 204  # fmt: skip
    assert api.get(f"/api/v1/environments/{env_id}", headers=agent).status_code == 200
    assert [e["id"] for e in api.get("/api/v1/environments", headers=agent).json()] == [env_id]
    assert api.get(f"/api/v1/deployments/{deployment['id']}", headers=agent).status_code == 200
    artifact = api.get(f"/api/v1/model-packages/{package['id']}/artifact", headers=agent)
    assert artifact.status_code == 200
    # not its environment, not its business: as if it did not exist (404, not 403)
    assert api.get(f"{base}/{other['id']}/desired-state", headers=agent).status_code == 404
    assert api.get(f"/api/v1/environments/{other['id']}", headers=agent).status_code == 404
    assert api.get("/api/v1/events", headers=agent).status_code == 403
    assert api.get("/api/v1/model-packages", headers=agent).status_code == 403
    assert api.post("/api/v1/environments", json={"name": "y", "platform": "test"},
                    headers=agent).status_code == 403  # fmt: skip
    unused = api.post(
        "/api/v1/model-packages",
        content=api.get(f"/api/v1/model-packages/{package['id']}/artifact").content,
    ).json()
    assert api.get(f"/api/v1/model-packages/{unused['id']}/artifact",
                   headers=agent).status_code == 404  # fmt: skip


def test_token_lifecycle_and_storage(api: TestClient, settings: ServerSettings) -> None:
    created = api.post("/api/v1/tokens", json={"name": "ci", "role": "read-only"}).json()
    secret = created["token"]
    assert secret.startswith("dh_") and len(secret) > 40
    listed = api.get("/api/v1/tokens").json()
    assert {t["name"] for t in listed} == {"bootstrap-admin", "ci"}
    assert all("token" not in t for t in listed)
    assert secret not in str(listed)
    ci = next(t for t in listed if t["name"] == "ci")
    assert secret.startswith(ci["prefix"]) and len(ci["prefix"]) <= 8
    db = Database(settings.database_url or "")
    with db.reading() as session:
        hashes = set(session.scalars(select(ApiToken.token_hash)))
    db.dispose()
    assert hashlib.sha256(secret.encode()).hexdigest() in hashes
    assert secret not in hashes
    assert api.get("/api/v1/environments", headers=_as(api, secret)).status_code == 200
    assert api.delete("/api/v1/tokens/ci").status_code == 204
    assert api.get("/api/v1/environments", headers=_as(api, secret)).status_code == 401


def test_token_input_is_validated(api: TestClient, environment: dict) -> None:
    cases = [
        ({"name": "a", "role": "root"}, "role"),
        ({"name": "a", "role": "agent"}, "environmentIds"),
        ({"name": "a", "role": "admin", "environmentIds": [environment["id"]]}, "environmentIds"),
    ]
    for body, field in cases:
        response = api.post("/api/v1/tokens", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    unknown = api.post("/api/v1/tokens", json={"name": "a", "role": "agent",
                                                "environmentIds": ["nowhere"]})  # fmt: skip
    assert unknown.status_code == 404 and "environmentIds.0" in unknown.json()["detail"]
    _token(api, "dup", "read-only")
    assert api.post("/api/v1/tokens", json={"name": "dup", "role": "admin"}).status_code == 409


def test_the_last_admin_token_cannot_be_deleted(api: TestClient) -> None:
    response = api.delete("/api/v1/tokens/bootstrap-admin")
    assert response.status_code == 409
    assert "last admin" in response.json()["detail"]


def test_bootstrap_token_is_printed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", bootstrap_token=None)
    caplog.set_level("DEBUG")
    create_app(settings).state.control_plane.db.dispose()
    printed = capsys.readouterr().out
    token = next(word for word in printed.split() if word.startswith("dh_"))
    assert token not in caplog.text  # printed, never logged
    with TestClient(create_app(settings)) as client:
        assert "dh_" not in capsys.readouterr().out  # second start: nothing printed
        ok = client.get("/api/v1/environments", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


def test_tokens_me_says_who_calls_for_every_role(api: TestClient, environment: dict) -> None:
    reader = _token(api, "viewer", "read-only")
    agent = _token(api, "agent-me", "agent", [environment["name"]])
    ids = {t["name"]: t["id"] for t in api.get("/api/v1/tokens").json()}
    assert api.get("/api/v1/tokens/me", headers=_as(api, reader)).json() == {
        "id": ids["viewer"],
        "name": "viewer",
        "role": "read-only",
        "environmentIds": [],
    }
    as_agent = api.get("/api/v1/tokens/me", headers=_as(api, agent)).json()
    assert (as_agent["role"], as_agent["environmentIds"]) == ("agent", [environment["id"]])
    assert api.get("/api/v1/tokens/me").json()["role"] == "admin"
    assert api.get("/api/v1/tokens/me", headers=_as(api, "dh_nope")).status_code == 401
