"""Agent endpoints: desired state by revision with long polling, status reports, events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from deckhand.client import ControlPlaneClient
from deckhand.server.db.models import Deployment, utcnow
from deckhand.server.db.session import Database
from deckhand.server.settings import ServerSettings
from deckhand.server.testing import ThreadedServer

AGENT = "/api/v1/agent/environments"


def test_desired_state_lists_live_deployments_with_their_model(
    api: TestClient, deployment: dict, package: dict
) -> None:
    env_id = deployment["environmentId"]
    state = api.get(f"{AGENT}/{env_id}/desired-state").json()
    assert state["environment"]["id"] == env_id
    assert state["environment"]["plugin"] == "test"
    assert state["revision"] == api.get(f"/api/v1/environments/{env_id}").json()["revision"]
    (dep,) = state["deployments"]
    assert dep["id"] == deployment["id"] and dep["active"] is True
    assert dep["modelId"] == dep["modelPackageId"] == package["id"]
    assert dep["modelFormat"] == "sklearn"
    assert dep["modelSha256"] == package["sha256"] and dep["modelSize"] == package["size"]

    api.post(f"/api/v1/deployments/{deployment['id']}/deactivate")
    state = api.get(f"{AGENT}/{env_id}/desired-state").json()
    assert state["deployments"][0]["active"] is False  # inactive: present, active=false
    api.delete(f"/api/v1/deployments/{deployment['id']}")
    assert api.get(f"{AGENT}/{env_id}/desired-state").json()["deployments"] == []


def test_returns_at_once_when_the_revision_differs(api: TestClient, deployment: dict) -> None:
    env_id = deployment["environmentId"]
    start = time.monotonic()
    state = api.get(f"{AGENT}/{env_id}/desired-state", params={"revision": 1, "timeout": 30})
    assert state.status_code == 200
    assert state.json()["revision"] > 1
    assert time.monotonic() - start < 5


def test_query_parameters_are_validated(api: TestClient, environment: dict) -> None:
    url = f"{AGENT}/{environment['id']}/desired-state"
    too_long = api.get(url, params={"revision": 1, "timeout": 61})
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "timeout"
    assert api.get(url, params={"revision": "latest"}).status_code == 422
    assert api.get(f"{AGENT}/unknown/desired-state").status_code == 404


@pytest.fixture
def live(settings: ServerSettings) -> Iterator[ThreadedServer]:
    settings.port = 0
    with ThreadedServer(settings) as server:
        yield server


def _setup(client: ControlPlaneClient, package_path: Path) -> tuple[dict, dict, dict]:
    package = client.upload_package(package_path)
    env = client.create_environment(name="pe", platform="test")
    dep = client.create_deployment("iris", env["id"], package["id"])
    return package, env, dep


def test_long_poll_waits_then_wakes_on_a_change(live: ThreadedServer, demo_package: Path, admin_token: str) -> None:
    client = ControlPlaneClient(live.url, admin_token)
    _, env, dep = _setup(client, demo_package)
    revision = client.desired_state(env["id"])["revision"]

    start = time.monotonic()
    same = client.desired_state(env["id"], revision=revision, timeout=1.0)
    waited = time.monotonic() - start
    assert same["revision"] == revision and 0.9 <= waited < 3

    timer = threading.Timer(0.5, client.deactivate, args=(dep["id"],))
    timer.start()
    start = time.monotonic()
    newer = client.desired_state(env["id"], revision=revision, timeout=20)
    woke = time.monotonic() - start
    timer.join()
    assert newer["revision"] > revision
    assert newer["deployments"][0]["active"] is False
    assert woke < 2.0, f"the change should wake the poll at once, took {woke:.2f}s"


def test_long_poll_sees_changes_made_by_another_process(
    live: ThreadedServer, demo_package: Path, settings: ServerSettings, admin_token: str
) -> None:
    client = ControlPlaneClient(live.url, admin_token)
    _, env, dep = _setup(client, demo_package)
    revision = client.desired_state(env["id"])["revision"]
    other = Database(settings.database_url or "")  # writes that bypass this server's notifier

    def write_elsewhere() -> None:
        from sqlalchemy import update

        from deckhand.server.db.models import Environment

        with other.writing() as session:
            session.execute(
                update(Environment).where(Environment.id == env["id"]).values(revision=Environment.revision + 1)
            )

    timer = threading.Timer(0.3, write_elsewhere)
    timer.start()
    start = time.monotonic()
    newer = client.desired_state(env["id"], revision=revision, timeout=20)
    timer.join()
    other.dispose()
    assert newer["revision"] == revision + 1
    assert time.monotonic() - start < settings.long_poll_recheck_seconds + 2


def test_status_report_updates_observed_state(api: TestClient, deployment: dict) -> None:
    env_id, dep_id = deployment["environmentId"], deployment["id"]
    report = {
        "environment": {"status": "passing", "message": "2 deployments"},
        "deployments": [
            {"id": dep_id, "state": "ready", "modelId": deployment["modelPackageId"],
             "predictionUrl": "http://127.0.0.1:9000/predictions", "message": "serving",
             "oldModelInUse": False},
            {"id": "not-ours", "state": "ready"},
        ],
    }  # fmt: skip
    assert api.post(f"{AGENT}/{env_id}/status", json=report).status_code == 204
    observed = api.get(f"/api/v1/deployments/{dep_id}").json()["observed"]
    assert observed["state"] == "ready"
    assert observed["predictionUrl"] == "http://127.0.0.1:9000/predictions"
    assert observed["modelId"] == deployment["modelPackageId"]
    status = api.get(f"/api/v1/environments/{env_id}").json()["status"]
    assert status["status"] == "passing" and status["message"] == "2 deployments"
    # observed state is not desired state: no revision bump
    assert api.get(f"/api/v1/deployments/{dep_id}").json()["revision"] == deployment["revision"]


def test_status_report_validates_states(api: TestClient, deployment: dict) -> None:
    env_id = deployment["environmentId"]
    bad = {"deployments": [{"id": deployment["id"], "state": "sleeping"}]}
    response = api.post(f"{AGENT}/{env_id}/status", json=bad)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "deployments.0.state"


def test_deleted_deployment_is_purged_once_the_agent_no_longer_reports_it(
    api: TestClient, deployment: dict, settings: ServerSettings
) -> None:
    env_id, dep_id = deployment["environmentId"], deployment["id"]
    api.delete(f"/api/v1/deployments/{dep_id}")
    db = Database(settings.database_url or "")
    with db.reading() as session:
        assert session.get(Deployment, dep_id) is not None  # soft-deleted, still there
    stopping = {"deployments": [{"id": dep_id, "state": "shuttingDown"}]}
    api.post(f"{AGENT}/{env_id}/status", json=stopping)
    with db.reading() as session:
        assert session.get(Deployment, dep_id) is not None
    api.post(f"{AGENT}/{env_id}/status", json={"deployments": []})
    with db.reading() as session:
        assert session.get(Deployment, dep_id) is None
    db.dispose()


def test_agent_events_are_recorded(api: TestClient, deployment: dict) -> None:
    env_id = deployment["environmentId"]
    events = [
        {"deploymentId": deployment["id"], "action": "deployment_start", "result": "passing",
         "durationSeconds": 1.25, "message": "started", "timestamp": 1_700_000_000_000},
        {"action": "pe_status", "result": "warning", "message": "slow"},
    ]  # fmt: skip
    assert api.post(f"{AGENT}/{env_id}/events", json={"events": events}).status_code == 204
    listed = api.get("/api/v1/events", params={"environmentId": env_id}).json()
    agent_events = [e for e in listed if e["kind"] == "agent"]
    assert {e["action"] for e in agent_events} == {"deployment_start", "pe_status"}
    start = next(e for e in agent_events if e["action"] == "deployment_start")
    assert start["durationSeconds"] == 1.25 and start["timestamp"].startswith("2023-11-14")
    bad = api.post(f"{AGENT}/{env_id}/events", json={"events": [{"action": "x", "result": "ok"}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "events.0.result"


def test_a_thousand_deployments_stay_fast(
    api: TestClient, environment: dict, package: dict, settings: ServerSettings
) -> None:
    db = Database(settings.database_url or "")
    now = utcnow()
    with db.writing() as session:
        session.add_all(
            Deployment(name=f"d{i:04d}", environment_id=environment["id"],
                       model_package_id=package["id"], created_at=now, updated_at=now)
            for i in range(1000)
        )  # fmt: skip
    db.dispose()
    url = f"{AGENT}/{environment['id']}"
    start = time.monotonic()
    state = api.get(f"{url}/desired-state").json()
    fetch = time.monotonic() - start
    assert len(state["deployments"]) == 1000
    report = {
        "deployments": [
            {"id": d["id"], "state": "ready", "modelId": d["modelId"],
             "predictionUrl": f"http://127.0.0.1/{d['id']}"}
            for d in state["deployments"]
        ]
    }  # fmt: skip
    start = time.monotonic()
    assert api.post(f"{url}/status", json=report).status_code == 204
    post = time.monotonic() - start
    # generous bounds for a shared 2-core CI machine; typical values are far lower
    assert fetch < 2.0, f"desired state with 1000 deployments took {fetch:.2f}s"
    assert post < 3.0, f"status report of 1000 deployments took {post:.2f}s"
    ready = [d for d in api.get("/api/v1/deployments").json() if d["observed"]]
    assert len(ready) == 1000


def test_unknown_environment_is_404_for_every_agent_call(api: TestClient) -> None:
    assert api.post(f"{AGENT}/nope/status", json={"deployments": []}).status_code == 404
    assert api.post(f"{AGENT}/nope/events", json={"events": []}).status_code == 404
    assert httpx.codes.NOT_FOUND == 404
