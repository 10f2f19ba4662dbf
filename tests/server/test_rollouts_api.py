"""Canaries and challengers through the API: `replace-model` with a `canary` starts a rollout
(validated, refused when it cannot run), promote and abort end it, the desired state and the
deployment carry the traffic and its `servedModelId`; challengers are added (at most 5),
removed and promoted. The controller's judgement is in test_rollout_controller.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deckhand.packages.mix import served_model_id

URL = "/api/v1/deployments"
CANARY = {"percent": 10, "step": 20, "intervalSeconds": 60}


@pytest.fixture
def second(upload: Callable[[Path], dict], second_package: Path) -> dict:
    return upload(second_package)


def canary(api: TestClient, dep_id: str, package_id: str, expect: int = 200, **fields: object) -> dict:
    body = {"modelPackageId": package_id, "canary": {**CANARY, **fields.pop("canary", {})}, **fields}  # type: ignore[dict-item]
    response = api.post(f"{URL}/{dep_id}/replace-model", json=body)
    assert response.status_code == expect, response.text
    return response.json()


def desired(api: TestClient, env_id: str, dep_id: str) -> dict:
    state = api.get(f"/api/v1/agent/environments/{env_id}/desired-state", params={"timeout": 0}).json()
    return next(d for d in state["deployments"] if d["id"] == dep_id)


def env_revision(api: TestClient, env_id: str) -> int:
    return api.get(f"/api/v1/environments/{env_id}").json()["revision"]


def latest_event(api: TestClient, dep_id: str) -> dict:
    return api.get("/api/v1/events", params={"deploymentId": dep_id, "limit": 1}).json()[0]


def monitored(api: TestClient, env_id: str) -> None:
    assert api.patch(f"/api/v1/environments/{env_id}", json={"monitoringEnabled": True}).status_code == 200


@pytest.mark.parametrize(
    ("canary_body", "field", "words"),
    [
        ({"percent": 0}, "canary.percent", "greater than or equal to 1"),
        ({"percent": 100}, "canary.percent", "less than or equal to 99"),
        ({"percent": 10, "step": 0}, "canary.step", "greater than or equal to 1"),
        ({"percent": 10, "step": 101}, "canary.step", "less than or equal to 100"),
        ({"percent": 10, "intervalSeconds": 0}, "canary.intervalSeconds", "greater than or equal to 1"),
        ({"percent": 10, "gates": {"maxErrorRate": 1.5}}, "canary.gates.maxErrorRate", "less than or equal to 1"),
        ({"percent": 10, "gates": {"minRequests": 0}}, "canary.gates.minRequests", "greater than or equal to 1"),
        ({"percent": 10, "gates": {"maxP99": 5}}, "canary.gates.maxP99", "unknown field"),
        ({"percent": 10, "sticky": {}}, "canary.sticky", "exactly one of header"),
        ({"percent": 10, "sticky": {"header": "a", "field": "b"}}, "canary.sticky", "exactly one of header"),
        ({"percent": 10, "sticky": {"header": "x customer"}}, "canary.sticky.header", "not an HTTP header name"),
        ({}, "canary.percent", "field required"),
    ],
)
def test_a_bad_canary_is_a_422_naming_the_field(
    api: TestClient, deployment: dict, second: dict, canary_body: dict, field: str, words: str
) -> None:
    response = api.post(
        f"{URL}/{deployment['id']}/replace-model", json={"modelPackageId": second["id"], "canary": canary_body}
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["field"] == field and words in errors[0]["message"], errors


def test_a_canary_replaces_nothing_yet_and_shows_in_the_desired_state(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict
) -> None:
    env_id, dep_id = environment["id"], deployment["id"]
    before = env_revision(api, env_id)
    assert desired(api, env_id, dep_id)["servedModelId"] == package["id"]
    assert desired(api, env_id, dep_id)["traffic"] is None

    dep = canary(api, dep_id, second["id"], canary={"sticky": {"header": "X-Customer-ID"}}, reason="accuracy")
    assert dep["modelPackageId"] == package["id"]  # the champion stays
    assert dep["rollout"]["state"] == "running" and dep["rollout"]["percent"] == 10
    assert dep["rollout"]["modelPackageId"] == second["id"]
    assert env_revision(api, env_id) == before + 1
    assert latest_event(api, dep_id)["action"] == "deployment.rollout.started"

    state = desired(api, env_id, dep_id)
    assert state["modelId"] == package["id"]
    assert state["traffic"] == {
        "canary": {"modelId": second["id"], "modelSha256": second["sha256"], "modelFormat": second["format"],
                   "modelSize": second["size"], "percent": 10},
        "challengers": [],
        "sticky": {"header": "x-customer-id"},  # lower-cased
    }  # fmt: skip
    assert state["servedModelId"] == served_model_id(package["id"], state["traffic"]) == dep["servedModelId"]
    assert state["servedModelId"].startswith("mix-")

    rollout = api.get(f"{URL}/{dep_id}/rollout").json()
    assert (rollout["state"], rollout["percent"], rollout["step"], rollout["intervalSeconds"]) == (
        "running",
        10,
        20,
        60,
    )
    assert rollout["fromPackageId"] == package["id"] and rollout["reason"] == "accuracy"
    assert rollout["gates"] == {} and rollout["lastGates"] is None and rollout["nextStepAt"] is not None


def test_what_a_canary_cannot_start_on(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict,
    upload: Callable[[Path], dict], binary_package: Path,
) -> None:  # fmt: skip
    dep_id = deployment["id"]
    same = canary(api, dep_id, package["id"], expect=409)
    assert "already runs model package" in same["detail"]

    gated = canary(api, dep_id, second["id"], expect=409, canary={"gates": {"maxErrorRate": 0.01}})
    assert gated["detail"].startswith("canary.gates:") and "monitoringEnabled: true" in gated["detail"]

    binary = upload(binary_package)
    incompatible = canary(api, dep_id, binary["id"], expect=409)
    assert [e["field"] for e in incompatible["errors"]][0] == "targetType" and "force: true" in incompatible["detail"]
    assert api.get(f"{URL}/{dep_id}/rollout").status_code == 404  # nothing started

    canary(api, dep_id, second["id"])
    twice = canary(api, dep_id, binary["id"], expect=409, force=True)
    assert "already has a canary" in twice["detail"] and "deckhand deployments abort" in twice["detail"]


def test_other_model_changes_wait_for_the_canary_to_end(
    api: TestClient, deployment: dict, package: dict, second: dict, upload: Callable[[Path], dict], demo_package: Path
) -> None:
    dep_id = deployment["id"]
    third = upload(demo_package)
    canary(api, dep_id, second["id"])
    for url, body in (
        (f"{URL}/{dep_id}/replace-model", {"modelPackageId": third["id"]}),
        (f"{URL}/{dep_id}/rollback", {"revision": 1}),
    ):
        refused = api.post(url, json=body)
        assert refused.status_code == 409, refused.text
        assert "promote it" in refused.json()["detail"] and "abort it" in refused.json()["detail"]
    refused = api.delete(f"/api/v1/model-packages/{second['id']}")
    assert refused.status_code == 409 and "canary" in refused.json()["detail"]


def test_promote_makes_the_candidate_the_next_revision(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict
) -> None:
    dep_id = deployment["id"]
    canary(api, dep_id, second["id"], reason="data_drift", note="fresher data")
    promoted = api.post(f"{URL}/{dep_id}/rollout/promote")
    assert promoted.status_code == 200, promoted.text
    dep = promoted.json()
    assert dep["modelPackageId"] == second["id"] and dep["rollout"] is None and dep["servedModelId"] == second["id"]
    revision = api.get(f"{URL}/{dep_id}/revisions").json()[0]
    assert (revision["number"], revision["reason"], revision["note"]) == (2, "data_drift", "fresher data")
    rollout = api.get(f"{URL}/{dep_id}/rollout").json()
    assert (rollout["state"], rollout["percent"], rollout["nextStepAt"]) == ("promoted", 100, None)
    assert rollout["endedAt"] and "promoted by" in rollout["outcome"]
    assert latest_event(api, dep_id)["action"] == "deployment.rollout.promoted"
    assert desired(api, environment["id"], dep_id)["traffic"] is None
    again = api.post(f"{URL}/{dep_id}/rollout/promote")
    assert again.status_code == 409 and "no running canary" in again.json()["detail"]


def test_abort_leaves_the_champion_everything(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict
) -> None:
    dep_id = deployment["id"]
    canary(api, dep_id, second["id"])
    before = env_revision(api, environment["id"])
    dep = api.post(f"{URL}/{dep_id}/rollout/abort").json()
    assert dep["modelPackageId"] == package["id"] and dep["rollout"] is None and dep["servedModelId"] == package["id"]
    assert env_revision(api, environment["id"]) == before + 1
    assert len(api.get(f"{URL}/{dep_id}/revisions").json()) == 1
    assert api.get(f"{URL}/{dep_id}/rollout").json()["state"] == "aborted"
    # a new canary may start, and the history lists both, newest first
    canary(api, dep_id, second["id"])
    assert [r["state"] for r in api.get(f"{URL}/{dep_id}/rollouts").json()] == ["running", "aborted"]
    assert api.get(f"{URL}/{dep_id}/rollout").json()["state"] == "running"


def test_deleting_the_deployment_ends_its_canary(api: TestClient, deployment: dict, second: dict) -> None:
    canary(api, deployment["id"], second["id"])
    assert api.delete(f"{URL}/{deployment['id']}").status_code == 204
    from deckhand.server.db.models import DeploymentRollout

    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    with db.reading() as session:
        (row,) = session.query(DeploymentRollout).all()
    assert (row.state, row.outcome) == ("aborted", "the deployment was deleted")


def test_a_gated_canary_on_a_monitored_environment(
    api: TestClient, environment: dict, deployment: dict, second: dict
) -> None:
    monitored(api, environment["id"])
    canary(api, deployment["id"], second["id"], canary={"gates": {"maxErrorRate": 0.01, "maxP99Ms": 50}})
    assert api.get(f"{URL}/{deployment['id']}/rollout").json()["gates"] == {
        "maxErrorRate": 0.01, "maxP99Ms": 50.0, "minRequests": 1,
    }  # fmt: skip


# -- challengers --------------------------------------------------------------------------


def add(api: TestClient, dep_id: str, package_id: str, expect: int = 200, **fields: object) -> dict:
    response = api.post(f"{URL}/{dep_id}/challengers", json={"modelPackageId": package_id, **fields})
    assert response.status_code == expect, response.text
    return response.json()


def test_challengers_join_the_mix_up_to_five(
    api: TestClient, environment: dict, deployment: dict, package: dict, upload: Callable[[Path], dict],
    second_package: Path,
) -> None:  # fmt: skip
    env_id, dep_id = environment["id"], deployment["id"]
    extra = [upload(second_package) for _ in range(6)]
    served = {package["id"]}
    for i, challenger in enumerate(extra[:5]):
        before = env_revision(api, env_id)
        dep = add(api, dep_id, challenger["id"])
        assert env_revision(api, env_id) == before + 1 and dep["servedModelId"] not in served
        served.add(dep["servedModelId"])
        assert len(desired(api, env_id, dep_id)["traffic"]["challengers"]) == i + 1
    assert add(api, dep_id, extra[0]["id"])["servedModelId"] == dep["servedModelId"]  # already there: no-op
    full = add(api, dep_id, extra[5]["id"], expect=409)
    assert "has 5 challengers" in full["detail"] and "challenger-remove" in full["detail"]
    assert add(api, dep_id, package["id"], expect=409)["detail"].endswith("'s champion")

    listed = api.get(f"{URL}/{dep_id}/challengers").json()
    assert sorted(c["modelPackageId"] for c in listed) == sorted(c["id"] for c in extra[:5])
    traffic = desired(api, env_id, dep_id)["traffic"]
    assert traffic["canary"] is None and traffic["sticky"] is None
    assert [c["modelId"] for c in traffic["challengers"]] == sorted(c["id"] for c in extra[:5])

    for challenger in extra[:5]:
        response = api.delete(f"{URL}/{dep_id}/challengers/{challenger['id']}")
        assert response.status_code == 200, response.text
    assert response.json()["servedModelId"] == package["id"] and desired(api, env_id, dep_id)["traffic"] is None
    assert api.delete(f"{URL}/{dep_id}/challengers/{extra[0]['id']}").status_code == 404


def test_an_incompatible_challenger_needs_force(
    api: TestClient, deployment: dict, upload: Callable[[Path], dict], binary_package: Path
) -> None:
    binary = upload(binary_package)
    assert add(api, deployment["id"], binary["id"], expect=409)["errors"][0]["field"] == "targetType"
    add(api, deployment["id"], binary["id"], force=True)
    assert "forced past" in latest_event(api, deployment["id"])["message"]


def test_promoting_a_challenger_makes_it_the_next_revision(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict
) -> None:
    dep_id = deployment["id"]
    add(api, dep_id, second["id"])
    response = api.post(f"{URL}/{dep_id}/challengers/{second['id']}/promote", json={"reason": "accuracy"})
    assert response.status_code == 200, response.text
    dep = response.json()
    assert dep["modelPackageId"] == second["id"] and dep["servedModelId"] == second["id"]
    assert api.get(f"{URL}/{dep_id}/challengers").json() == []  # the old champion is not made one
    revision = api.get(f"{URL}/{dep_id}/revisions").json()[0]
    assert (revision["number"], revision["reason"], revision["modelPackageId"]) == (2, "accuracy", second["id"])
    assert latest_event(api, dep_id)["action"] == "deployment.challenger.promote"
    missing = api.post(f"{URL}/{dep_id}/challengers/{package['id']}/promote")
    assert missing.status_code == 404 and "not a challenger" in missing.json()["detail"]


def test_a_challenger_and_the_canary_are_never_the_same_model(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict,
    upload: Callable[[Path], dict], second_package: Path,
) -> None:  # fmt: skip
    dep_id, third = deployment["id"], upload(second_package)
    add(api, dep_id, second["id"])
    assert "is a challenger" in canary(api, dep_id, second["id"], expect=409)["detail"]
    canary(api, dep_id, third["id"])
    assert "canary" in add(api, dep_id, third["id"], expect=409)["detail"]
    # both in the mix; promoting the challenger waits for the canary
    traffic = desired(api, environment["id"], dep_id)["traffic"]
    assert traffic["canary"]["modelId"] == third["id"] and traffic["challengers"][0]["modelId"] == second["id"]
    assert api.post(f"{URL}/{dep_id}/challengers/{second['id']}/promote").status_code == 409


def test_a_challenger_made_champion_by_a_replacement_leaves_the_challengers(
    api: TestClient, deployment: dict, second: dict
) -> None:
    add(api, deployment["id"], second["id"])
    response = api.post(f"{URL}/{deployment['id']}/replace-model", json={"modelPackageId": second["id"]})
    assert response.status_code == 200 and response.json()["servedModelId"] == second["id"]
    assert api.get(f"{URL}/{deployment['id']}/challengers").json() == []
    assert "no longer a challenger" in latest_event(api, deployment["id"])["message"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "greater than 0"),
        (-5, "greater than 0"),
        (100.01, "less than or equal to 100"),
        ("a quarter", "valid number"),
    ],
)
def test_a_bad_copy_share_is_a_422_naming_the_field(
    api: TestClient, deployment: dict, value: object, words: str
) -> None:
    response = api.patch(f"{URL}/{deployment['id']}", json={"challengerCopyPercent": value})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["field"] == "challengerCopyPercent" and words in errors[0]["message"], errors


def test_the_copy_share_travels_with_the_challengers_into_the_mix(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict, tmp_path: Path
) -> None:
    """A share under 100 joins the desired state, the mix id and the mix file; 100 is the
    mix of before; setting the share the deployment has changes nothing; without challengers
    it is kept but leaves the champion serving alone."""
    from deckhand.packages.mix import read_mix

    env_id, dep_id = environment["id"], deployment["id"]
    assert api.get(f"{URL}/{dep_id}").json()["challengerCopyPercent"] == 100.0

    def share(percent: float) -> dict:
        response = api.patch(f"{URL}/{dep_id}", json={"challengerCopyPercent": percent})
        assert response.status_code == 200, response.text
        return response.json()

    alone = share(20)  # no challengers yet: the champion still serves alone
    assert alone["challengerCopyPercent"] == 20.0 and alone["servedModelId"] == package["id"]
    assert desired(api, env_id, dep_id)["traffic"] is None
    every = add(api, dep_id, second["id"])
    traffic = desired(api, env_id, dep_id)["traffic"]
    assert traffic["challengerCopyPercent"] == 20.0
    assert every["servedModelId"] == served_model_id(package["id"], traffic)
    assert every["servedModelId"] != served_model_id(package["id"], {**traffic, "challengerCopyPercent": None})

    artifact = api.get(f"/api/v1/model-packages/{every['servedModelId']}/artifact")
    assert artifact.status_code == 200, artifact.text
    (tmp_path / "mix.dhpkg").write_bytes(artifact.content)
    assert read_mix(tmp_path / "mix.dhpkg").copy_percent == 20.0

    revision, before = env_revision(api, env_id), every["revision"]
    assert share(20)["revision"] == before and env_revision(api, env_id) == revision  # the same: nothing changes
    half = share(0.5)
    assert half["revision"] == before + 1 and half["servedModelId"] not in (every["servedModelId"], package["id"])
    assert latest_event(api, dep_id)["action"] == "deployment.update"
    assert "challenger_copy_percent" in latest_event(api, dep_id)["message"]

    full = share(100)  # every request again: the mix id of challengers without a share
    assert full["challengerCopyPercent"] == 100.0
    assert desired(api, env_id, dep_id)["traffic"].get("challengerCopyPercent") is None
    no_share = {"canary": None, "challengers": [{"modelId": second["id"]}], "sticky": None}
    assert full["servedModelId"] == served_model_id(package["id"], no_share)
