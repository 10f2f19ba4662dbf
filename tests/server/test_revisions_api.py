"""Model revisions: every replace and rollback is a numbered revision with who, when and
why; the compatibility check refuses what callers would notice unless `force`; rollback
returns to an earlier package (by default the one before), and to the current one is a no-op."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from deckhand.server.db.models import DeploymentRevision
from deckhand.server.db.session import Database
from deckhand.server.services.tokens import BOOTSTRAP_TOKEN_NAME
from deckhand.server.settings import ServerSettings

URL = "/api/v1/deployments"


@pytest.fixture
def second(upload: Callable[[Path], dict], second_package: Path) -> dict:
    """Another iris model: compatible with `package`."""
    return upload(second_package)


def revisions(api: TestClient, dep_id: str) -> list[dict]:
    response = api.get(f"{URL}/{dep_id}/revisions")
    assert response.status_code == 200, response.text
    return response.json()


def replace(api: TestClient, dep_id: str, package_id: str, **fields: object) -> dict:
    response = api.post(f"{URL}/{dep_id}/replace-model", json={"modelPackageId": package_id, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def rollback(api: TestClient, dep_id: str, expect: int = 200, **fields: object) -> dict:
    response = api.post(f"{URL}/{dep_id}/rollback", json=fields)
    assert response.status_code == expect, response.text
    return response.json()


def latest_event(api: TestClient, dep_id: str) -> dict:
    return api.get("/api/v1/events", params={"deploymentId": dep_id, "limit": 1}).json()[0]


def test_creation_is_revision_1(api: TestClient, deployment: dict, package: dict) -> None:
    (first,) = revisions(api, deployment["id"])
    assert first["number"] == 1 and first["current"] is True
    assert first["modelPackageId"] == package["id"] and first["modelPackageName"] == package["name"]
    assert first["createdBy"] == BOOTSTRAP_TOKEN_NAME and first["reason"] is None and first["rollbackTo"] is None


def test_replace_records_a_revision_with_reason_and_note(
    api: TestClient, deployment: dict, package: dict, second: dict
) -> None:
    dep = replace(api, deployment["id"], second["id"], reason="data_drift", note="drift on petal_width")
    assert dep["modelPackageId"] == second["id"] and dep["revision"] == deployment["revision"] + 1
    now, before = revisions(api, deployment["id"])  # newest first
    assert (now["number"], now["current"], now["modelPackageId"]) == (2, True, second["id"])
    assert (now["reason"], now["note"], now["createdBy"]) == (
        "data_drift",
        "drift on petal_width",
        BOOTSTRAP_TOKEN_NAME,
    )
    assert (before["number"], before["current"], before["modelPackageId"]) == (1, False, package["id"])
    event = latest_event(api, deployment["id"])
    assert event["action"] == "deployment.replaceModel"
    assert "revision 2, reason data_drift: drift on petal_width" in event["message"]

    # the same package again changes nothing: no revision, no bump
    again = replace(api, deployment["id"], second["id"], reason="errors")
    assert again["revision"] == dep["revision"] and len(revisions(api, deployment["id"])) == 2


def test_reason_defaults_to_other_and_must_be_one_of_the_list(api: TestClient, deployment: dict, second: dict) -> None:
    bad = api.post(f"{URL}/{deployment['id']}/replace-model", json={"modelPackageId": second["id"], "reason": "vibes"})
    assert bad.status_code == 422
    body = bad.json()
    assert body["errors"][0]["field"] == "reason"
    for allowed in ("accuracy", "data_drift", "errors", "scheduled_refresh", "scoring_speed", "other"):
        assert allowed in body["detail"]
    assert len(revisions(api, deployment["id"])) == 1
    replace(api, deployment["id"], second["id"])
    assert revisions(api, deployment["id"])[0]["reason"] == "other"


def test_an_incompatible_package_is_refused_with_each_difference_unless_forced(
    api: TestClient, deployment: dict, upload: Callable[[Path], dict], binary_package: Path
) -> None:
    binary = upload(binary_package)  # breast-cancer features, two labels: nothing like iris
    refused = api.post(f"{URL}/{deployment['id']}/replace-model", json={"modelPackageId": binary["id"]})
    assert refused.status_code == 409
    body = refused.json()
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["targetType", "classLabels", "features", "features"]
    assert "the current model is multiclass, the new one binary" in body["detail"]
    assert "lacks setosa, versicolor, virginica" in body["detail"]
    assert "does not take petal_length, petal_width, sepal_length, sepal_width" in body["detail"]
    assert "mean_radius" in body["detail"] and "force: true" in body["detail"]
    assert api.get(f"{URL}/{deployment['id']}").json()["revision"] == deployment["revision"]
    assert len(revisions(api, deployment["id"])) == 1

    forced = replace(api, deployment["id"], binary["id"], reason="accuracy", force=True)
    assert forced["modelPackageId"] == binary["id"]
    assert revisions(api, deployment["id"])[0]["number"] == 2
    assert "forced past" in latest_event(api, deployment["id"])["message"]


def test_rollback_by_default_undoes_the_last_change_then_steps_further_back(
    api: TestClient, deployment: dict, package: dict, second: dict, upload: Callable[[Path], dict], tmp_path: Path
) -> None:
    dep_id, env_id = deployment["id"], deployment["environmentId"]
    replace(api, dep_id, second["id"], reason="scheduled_refresh")
    env_revision = api.get(f"/api/v1/environments/{env_id}").json()["revision"]

    back = rollback(api, dep_id)
    assert back["changed"] is True and back["deploymentId"] == dep_id
    rev = back["revision"]
    assert (rev["number"], rev["modelPackageId"], rev["rollbackTo"], rev["current"]) == (3, package["id"], 1, True)
    assert (rev["reason"], rev["note"]) == ("other", "rollback to revision 1")
    assert api.get(f"{URL}/{dep_id}").json()["modelPackageId"] == package["id"]
    assert api.get(f"/api/v1/environments/{env_id}").json()["revision"] == env_revision + 1  # the agent wakes
    event = latest_event(api, dep_id)
    assert event["action"] == "deployment.rollback" and "rolled back to revision 1" in event["message"]

    # revision 3 returned to revision 1: there is nothing before that, not a flip back to 2
    nothing = rollback(api, dep_id, expect=409)
    assert "no earlier revision" in nothing["detail"] and "--to N" in nothing["detail"]
    # --to the package already running is a no-op, answered as such
    same = rollback(api, dep_id, revision=1)
    assert same["changed"] is False and "nothing to do" in same["message"] and same["revision"]["number"] == 3
    assert len(revisions(api, dep_id)) == 3

    forward = rollback(api, dep_id, revision=2, reason="accuracy", note="v2 after all")
    assert forward["revision"]["modelPackageId"] == second["id"]
    assert (forward["revision"]["reason"], forward["revision"]["note"]) == ("accuracy", "v2 after all")
    assert [r["number"] for r in revisions(api, dep_id)] == [4, 3, 2, 1]


def test_rollback_refusals_name_the_field(api: TestClient, deployment: dict, second: dict) -> None:
    only = rollback(api, deployment["id"], expect=409)
    assert only["detail"].startswith("revision:") and "no earlier revision" in only["detail"]
    replace(api, deployment["id"], second["id"])
    missing = rollback(api, deployment["id"], expect=404, revision=9)
    assert "revisions 1 to 2, not 9" in missing["detail"]
    for bad in (0, "1", 1.5):  # a revision number is a JSON integer, 1 or more
        refused = rollback(api, deployment["id"], expect=422, revision=bad)
        assert {e["field"] for e in refused["errors"]} == {"revision"}, refused
    assert rollback(api, "nowhere", expect=404)["detail"].startswith("deployment:")


def test_rollback_to_a_deleted_package_is_refused_and_history_says_deleted(
    api: TestClient, deployment: dict, package: dict, second: dict
) -> None:
    replace(api, deployment["id"], second["id"])
    assert api.delete(f"/api/v1/model-packages/{package['id']}").status_code == 204  # no longer in use
    refused = rollback(api, deployment["id"], expect=409)
    assert "has been deleted" in refused["detail"] and package["id"] in refused["detail"]
    first = revisions(api, deployment["id"])[-1]
    assert first["modelPackageId"] == package["id"] and first["modelPackageName"] is None


def test_read_only_reads_history_but_cannot_roll_back(api: TestClient, deployment: dict) -> None:
    token = api.post("/api/v1/tokens", json={"name": "viewer", "role": "read-only"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get(f"{URL}/{deployment['id']}/revisions", headers=headers).status_code == 200
    assert api.post(f"{URL}/{deployment['id']}/rollback", headers=headers, json={}).status_code == 403


def test_revisions_go_with_their_purged_deployment(api: TestClient, settings: ServerSettings, deployment: dict) -> None:
    assert api.delete(f"{URL}/{deployment['id']}").status_code == 204
    report = api.post(f"/api/v1/agent/environments/{deployment['environmentId']}/status", json={"deployments": []})
    assert report.status_code == 204, report.text
    assert settings.database_url
    db = Database(settings.database_url)
    try:
        with db.reading() as session:
            left = session.scalar(select(func.count()).where(DeploymentRevision.deployment_id == deployment["id"]))
    finally:
        db.dispose()
    assert left == 0
