"""Deployments: lifecycle, revisions (deployment and environment), events, conflicts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

URL = "/api/v1/deployments"


def _env_revision(api: TestClient, env_id: str) -> int:
    return int(api.get(f"/api/v1/environments/{env_id}").json()["revision"])


def test_create_bumps_the_environment_revision(api: TestClient, environment: dict, package: dict) -> None:
    before = _env_revision(api, environment["id"])
    response = api.post(
        URL,
        json={"name": "iris", "environmentId": "staging", "modelPackageId": package["id"],
              "keyValueConfig": {"threshold": 0.7}, "description": "the demo"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    dep = response.json()
    assert dep["environmentId"] == environment["id"]  # resolved from the name
    assert dep["active"] is True and dep["revision"] == 1 and dep["observed"] is None
    assert dep["keyValueConfig"] == {"threshold": 0.7}
    assert _env_revision(api, environment["id"]) == before + 1


def test_each_change_bumps_revisions_and_records_an_event(
    api: TestClient,
    deployment: dict,
    upload: Callable[[Path], dict],
    second_package: Path,
) -> None:
    dep_id, env_id = deployment["id"], deployment["environmentId"]
    other = upload(second_package)
    steps = [
        ("post", f"{URL}/{dep_id}/deactivate", None, "deployment.deactivate"),
        ("post", f"{URL}/{dep_id}/activate", None, "deployment.activate"),
        ("post", f"{URL}/{dep_id}/replace-model", {"modelPackageId": other["id"]},
         "deployment.replaceModel"),
        ("patch", f"{URL}/{dep_id}", {"keyValueConfig": {"a": "b"}}, "deployment.update"),
    ]  # fmt: skip
    revision, env_revision = deployment["revision"], _env_revision(api, env_id)
    for method, url, body, action in steps:
        response = getattr(api, method)(url, **({"json": body} if body else {}))
        assert response.status_code == 200, response.text
        assert response.json()["revision"] == revision + 1
        assert _env_revision(api, env_id) == env_revision + 1
        revision, env_revision = revision + 1, env_revision + 1
        latest = api.get("/api/v1/events", params={"deploymentId": dep_id, "limit": 1}).json()
        assert latest[0]["action"] == action and latest[0]["kind"] == "api"
    final = api.get(f"{URL}/{dep_id}").json()
    assert final["modelPackageId"] == other["id"] and final["keyValueConfig"] == {"a": "b"}


def test_no_op_changes_do_not_bump(api: TestClient, deployment: dict) -> None:
    response = api.post(f"{URL}/{deployment['id']}/activate")
    assert response.json()["revision"] == deployment["revision"]


def test_delete_is_soft_then_404(api: TestClient, deployment: dict) -> None:
    before = _env_revision(api, deployment["environmentId"])
    assert api.delete(f"{URL}/{deployment['id']}").status_code == 204
    assert api.get(f"{URL}/{deployment['id']}").status_code == 404
    assert api.get(URL).json() == []
    assert _env_revision(api, deployment["environmentId"]) == before + 1
    assert api.delete(f"{URL}/{deployment['id']}").status_code == 404


def test_references_and_names_are_checked(api: TestClient, environment: dict, package: dict, deployment: dict) -> None:
    base = {"name": "x", "environmentId": environment["id"], "modelPackageId": package["id"]}
    missing_env = api.post(URL, json={**base, "environmentId": "nowhere"})
    assert missing_env.status_code == 404 and "environmentId" in missing_env.json()["detail"]
    missing_pkg = api.post(URL, json={**base, "modelPackageId": "nothing"})
    assert missing_pkg.status_code == 404 and "modelPackageId" in missing_pkg.json()["detail"]
    duplicate = api.post(URL, json={**base, "name": deployment["name"]})
    assert duplicate.status_code == 409
    missing_field = api.post(URL, json={"name": "x", "environmentId": environment["id"]})
    assert missing_field.status_code == 422
    assert missing_field.json()["errors"][0]["field"] == "modelPackageId"


def test_list_filters_by_environment(api: TestClient, deployment: dict, package: dict) -> None:
    other = api.post("/api/v1/environments", json={"name": "prod", "platform": "test"}).json()
    api.post(URL, json={"name": "iris", "environmentId": "prod", "modelPackageId": package["id"]})
    assert len(api.get(URL).json()) == 2
    only = api.get(URL, params={"environmentId": other["id"]}).json()
    assert [d["environmentId"] for d in only] == [other["id"]]
    assert api.get(URL, params={"environmentId": "staging"}).json()[0]["id"] == deployment["id"]
    # the same name in two environments: lookup by name is ambiguous
    assert api.get(f"{URL}/iris").status_code == 409
