"""Prediction environments: validation, defaults, revisions, conflicts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

URL = "/api/v1/environments"


@pytest.mark.parametrize(
    ("platform", "plugin"),
    [("local", "filesystem"), ("filesystem", "filesystem"), ("test", "test"),
     ("docker", "docker"), ("kubernetes", "kubernetes")],
)  # fmt: skip
def test_plugin_defaults_from_platform(api: TestClient, platform: str, plugin: str) -> None:
    response = api.post(URL, json={"name": f"pe-{platform}", "platform": platform})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["plugin"] == plugin
    assert body["revision"] == 1
    assert body["status"] is None
    assert body["createdBy"] == "bootstrap-admin"


def test_custom_platform_needs_a_command(api: TestClient) -> None:
    response = api.post(URL, json={"name": "c", "platform": "custom"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "pluginConfig.command"
    ok = api.post(
        URL,
        json={"name": "c", "platform": "custom", "plugin": "mine",
              "pluginConfig": {"command": "bosun-plugin-runner --plugin my.py"}},
    )  # fmt: skip
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "test"}, "name"),
        ({"name": "x", "platform": "mainframe"}, "platform"),
        ({"name": "x", "platform": "test", "plugnConfig": {}}, "plugnConfig"),
        ({"name": "x", "platform": "test", "keyValueConfig": []}, "keyValueConfig"),
        ({"name": "", "platform": "test"}, "name"),
        ({"name": "bad/name", "platform": "test"}, "name"),
        ({"name": "x", "platform": "test", "monitoringEnabled": "perhaps"}, "monitoringEnabled"),
    ],
)
def test_bad_input_names_the_field(api: TestClient, body: dict, field: str) -> None:
    response = api.post(URL, json=body)
    assert response.status_code == 422
    payload = response.json()
    assert field in [e["field"] for e in payload["errors"]]
    assert field in payload["detail"]


def test_duplicate_name_is_a_conflict(api: TestClient, environment: dict) -> None:
    response = api.post(URL, json={"name": environment["name"], "platform": "test"})
    assert response.status_code == 409
    assert environment["name"] in response.json()["detail"]


def test_get_by_id_or_name_and_list(api: TestClient, environment: dict) -> None:
    assert api.get(f"{URL}/{environment['id']}").json()["name"] == "staging"
    assert api.get(f"{URL}/staging").json()["id"] == environment["id"]
    assert [e["id"] for e in api.get(URL).json()] == [environment["id"]]
    assert api.get(f"{URL}/missing").status_code == 404


def test_patch_bumps_the_revision(api: TestClient, environment: dict) -> None:
    response = api.patch(f"{URL}/staging", json={"keyValueConfig": {"replicas": 2}, "description": "QA"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["keyValueConfig"] == {"replicas": 2}
    assert body["description"] == "QA"
    assert body["revision"] == environment["revision"] + 1


def test_delete_refused_while_it_has_deployments(api: TestClient, environment: dict, deployment: dict) -> None:
    assert api.delete(f"{URL}/staging").status_code == 409
    assert api.delete(f"/api/v1/deployments/{deployment['id']}").status_code == 204
    assert api.delete(f"{URL}/staging").status_code == 204
    assert api.get(f"{URL}/staging").status_code == 404
