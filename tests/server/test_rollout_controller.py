"""The rollout controller: the pure decision on a step (hold, step, promote at 100, roll back
on each gate), then `tick` against a database with a fake monitoring reader (each decision
applied, the desired state's `servedModelId` new on every step), and two controllers racing
on one step making one transition (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deckhand.server.app import create_app
from deckhand.server.db.session import Database
from deckhand.server.services.rollouts import Health, Step, decide, tick
from deckhand.server.settings import ServerSettings

URL = "/api/v1/deployments"
T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
GATES = {"maxErrorRate": 0.01, "maxP99Ms": 50.0, "maxPsi": 0.2, "minRequests": 20}
GOOD = Health(requests=100, error_rate=0.0, p99_ms=12.0)


def step_of(percent: int = 10, step: int = 20, gates: Mapping[str, Any] = GATES) -> Step:
    return Step("r", "d", "cand", "champ", percent, step, 60, dict(gates), T0)


def judged(step: Step, health: Health | None, psi: float | None = 0.05) -> Any:
    return decide(step, health, psi, T0, T0 + timedelta(seconds=60))


# -- the decision (pure) --------------------------------------------------------------------


def test_too_little_traffic_holds_the_step_and_says_why() -> None:
    decision = judged(step_of(), Health(requests=3, error_rate=0.5, p99_ms=900.0))
    assert (decision.kind, decision.percent) == ("hold", 10)
    assert "waiting for traffic, 3 of 20 candidate requests" in decision.outcome
    assert decision.report["requests"] == 3


def test_passing_gates_step_up_and_store_values_and_verdicts() -> None:
    decision = judged(step_of(), GOOD)
    assert (decision.kind, decision.percent) == ("step", 30)
    assert decision.report["gates"] == {
        "maxErrorRate": {"value": 0.0, "limit": 0.01, "verdict": "pass"},
        "maxP99Ms": {"value": 12.0, "limit": 50.0, "verdict": "pass"},
        "maxPsi": {"value": 0.05, "limit": 0.2, "verdict": "pass"},
    }


@pytest.mark.parametrize("percent", [80, 90, 99])
def test_reaching_100_promotes(percent: int) -> None:
    decision = judged(step_of(percent=percent), GOOD)
    assert (decision.kind, decision.percent) == ("promote", 100)


@pytest.mark.parametrize(
    ("health", "psi", "gate", "words"),
    [
        (Health(100, 0.05, 12.0), 0.05, "maxErrorRate", "error rate 5.00% > limit 1.00%"),
        (Health(100, 0.0, 75.0), 0.05, "maxP99Ms", "p99 latency (ms) 75 > limit 50"),
        (Health(100, 0.0, 12.0), 0.31, "maxPsi", "prediction PSI 0.31 > limit 0.2"),
    ],
)
def test_each_failed_gate_rolls_back_naming_value_and_limit(health: Health, psi: float, gate: str, words: str) -> None:
    decision = judged(step_of(), health, psi)
    assert decision.kind == "roll_back"
    assert f"{gate} failed: {words}" in decision.outcome
    assert decision.report["gates"][gate]["verdict"] == "fail"


def test_a_gate_without_data_holds() -> None:
    decision = judged(step_of(), GOOD, psi=None)
    assert decision.kind == "hold" and "no data yet for maxPsi" in decision.outcome


def test_without_gates_the_canary_steps_on_time_alone() -> None:
    assert judged(step_of(gates={}), None).kind == "step"
    assert judged(step_of(percent=90, gates={}), None).kind == "promote"


# -- tick against a database ----------------------------------------------------------------


class FakeReader:
    """Monitoring as the test says; `barrier` (if set) makes concurrent ticks read together."""

    def __init__(self, health: Health = GOOD, psi: float | None = 0.05) -> None:
        self.health, self.psi = health, psi
        self.barrier: threading.Barrier | None = None
        self.candidate = ""

    def model_health(self, session: Any, deployment_id: str, start: datetime, end: datetime) -> Mapping[str, Any]:
        if self.barrier is not None:
            self.barrier.wait(timeout=30)
        return {self.candidate: self.health, "someone-else": Health(1000, 1.0, 1e6)}

    def prediction_psi(self, session: Any, deployment_id: str, model_id: str, reference: str, *_: Any) -> float | None:
        assert model_id == self.candidate and reference != model_id
        return self.psi


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


@pytest.fixture
def world(
    tmp_path: Path, admin_token: str, database_url: str | None, demo_package: Path, second_package: Path
) -> Iterator[tuple[TestClient, Callable[..., dict]]]:
    """An admin TestClient on a monitored environment, and `start(**canary)`: a deployment with
    a canary of a second package (interval 60 s, +20 per step) under the given gates."""
    settings = ServerSettings(data_dir=tmp_path / "data", bootstrap_token=admin_token, database_url=database_url)
    with TestClient(create_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {admin_token}"

        def upload(path: Path) -> str:
            headers = {"Content-Type": "application/octet-stream"}
            response = api.post("/api/v1/model-packages", content=path.read_bytes(), headers=headers)
            return str(response.json()["id"])

        champion, candidate = upload(demo_package), upload(second_package)
        env = api.post("/api/v1/environments", json={"name": "e", "platform": "test", "monitoringEnabled": True})

        def start(**canary: Any) -> dict:
            dep = api.post(URL, json={"name": "iris", "environmentId": env.json()["id"], "modelPackageId": champion})
            body = {"percent": 10, "step": 20, "intervalSeconds": 60, **canary}
            response = api.post(
                f"{URL}/{dep.json()['id']}/replace-model",
                json={"modelPackageId": candidate, "canary": body, "reason": "accuracy"},
            )
            assert response.status_code == 200, response.text
            return {"deployment": response.json(), "candidate": candidate, "champion": champion}

        yield api, start


def db_of(api: TestClient) -> Database:
    return api.app.state.control_plane.db  # type: ignore[attr-defined,no-any-return]


def rollout_of(api: TestClient, dep_id: str) -> dict:
    return api.get(f"{URL}/{dep_id}/rollout").json()


def served(api: TestClient, dep: dict) -> str:
    state = api.get(f"/api/v1/agent/environments/{dep['environmentId']}/desired-state", params={"timeout": 0}).json()
    return next(str(d["servedModelId"]) for d in state["deployments"] if d["id"] == dep["id"])


def later(api: TestClient, dep_id: str, seconds: int = 61) -> datetime:
    return datetime.fromisoformat(rollout_of(api, dep_id)["stepStartedAt"]) + timedelta(seconds=seconds)


def events(api: TestClient, dep_id: str) -> list[str]:
    return [e["action"] for e in api.get("/api/v1/events", params={"deploymentId": dep_id}).json()]


def test_steps_until_promoted_with_a_new_served_model_id_each_step(world: Any) -> None:
    api, start = world
    made = start(gates={"maxErrorRate": 0.01, "maxPsi": 0.2, "minRequests": 20})
    dep, reader = made["deployment"], FakeReader()
    reader.candidate = made["candidate"]
    db = db_of(api)
    assert tick(db, reader, later(api, dep["id"], seconds=30)) == set()  # the step has not lasted 60 s
    ids = [served(api, dep)]
    for percent in (30, 50, 70, 90):
        assert tick(db, reader, later(api, dep["id"])) == {dep["environmentId"]}
        rollout = rollout_of(api, dep["id"])
        assert (rollout["state"], rollout["percent"]) == ("running", percent)
        assert rollout["lastGates"]["gates"]["maxErrorRate"]["verdict"] == "pass"
        ids.append(served(api, dep))
    assert len(set(ids)) == 5 and all(i.startswith("mix-") for i in ids)
    tick(db, reader, later(api, dep["id"]))
    rollout = rollout_of(api, dep["id"])
    assert (rollout["state"], rollout["percent"]) == ("promoted", 100) and "reached 100 %" in rollout["outcome"]
    after = api.get(f"{URL}/{dep['id']}").json()
    assert after["modelPackageId"] == made["candidate"] and served(api, dep) == made["candidate"]
    revision = api.get(f"{URL}/{dep['id']}/revisions").json()[0]
    assert (revision["number"], revision["reason"], revision["createdBy"]) == (2, "accuracy", "rollout-controller")
    assert events(api, dep["id"])[:5] == ["deployment.rollout.promoted"] + ["deployment.rollout.stepped"] * 4


def test_holds_without_traffic_then_rolls_back_on_a_failed_gate(world: Any) -> None:
    api, start = world
    made = start(gates={"maxP99Ms": 50, "minRequests": 20})
    dep, reader = made["deployment"], FakeReader(Health(requests=5, error_rate=0.0, p99_ms=10.0))
    reader.candidate = made["candidate"]
    db, env_id = db_of(api), dep["environmentId"]
    revision = api.get(f"/api/v1/environments/{env_id}").json()["revision"]
    assert tick(db, reader, later(api, dep["id"])) == set()
    held = rollout_of(api, dep["id"])
    assert held["state"] == "running" and held["percent"] == 10 and "5 of 20" in held["outcome"]
    assert api.get(f"/api/v1/environments/{env_id}").json()["revision"] == revision  # nothing to wake the agent for

    reader.health = Health(requests=40, error_rate=0.0, p99_ms=80.0)
    assert tick(db, reader, later(api, dep["id"])) == {env_id}
    ended = rollout_of(api, dep["id"])
    assert ended["state"] == "rolled_back" and ended["endedAt"]
    assert "maxP99Ms failed: p99 latency (ms) 80 > limit 50" in ended["outcome"]
    assert ended["lastGates"]["gates"]["maxP99Ms"] == {"value": 80.0, "limit": 50.0, "verdict": "fail"}
    event = api.get("/api/v1/events", params={"deploymentId": dep["id"], "limit": 1}).json()[0]
    assert (event["action"], event["result"]) == ("deployment.rollout.rolledBack", "failing")
    assert "80 > limit 50" in event["message"]
    assert api.get(f"/api/v1/environments/{env_id}").json()["revision"] == revision + 1
    assert served(api, dep) == made["champion"]


def test_two_controllers_on_one_step_make_one_transition(world: Any) -> None:
    api, start = world
    made = start(gates={"maxErrorRate": 0.01})
    dep, reader = made["deployment"], FakeReader()
    reader.candidate, reader.barrier = made["candidate"], threading.Barrier(2)
    db, now = db_of(api), later(api, dep["id"])
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: tick(db, reader, now), range(2)))
    assert sorted(len(r) for r in results) == [0, 1]  # one of them changed the desired state
    assert rollout_of(api, dep["id"])["percent"] == 30  # one step, not two
    assert events(api, dep["id"]).count("deployment.rollout.stepped") == 1


def test_a_step_after_an_admin_promoted_changes_nothing(world: Any) -> None:
    api, start = world
    made = start()
    dep = made["deployment"]
    assert api.post(f"{URL}/{dep['id']}/rollout/promote").status_code == 200
    assert tick(db_of(api), FakeReader(), later(api, dep["id"], seconds=3600)) == set()  # nothing runs any more
    assert rollout_of(api, dep["id"])["state"] == "promoted"
    assert len(api.get(f"{URL}/{dep['id']}/revisions").json()) == 2


def test_the_app_runs_the_controller(
    tmp_path: Path, admin_token: str, demo_package: Path, second_package: Path
) -> None:
    """An ungated canary of 1 s steps, ticked every 0.1 s by the app itself, ends promoted."""
    import time

    settings = ServerSettings(data_dir=tmp_path / "data", bootstrap_token=admin_token, rollout_tick_seconds=0.1)
    with TestClient(create_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {admin_token}"
        headers = {"Content-Type": "application/octet-stream"}
        ids = [api.post("/api/v1/model-packages", content=p.read_bytes(), headers=headers).json()["id"]
               for p in (demo_package, second_package)]  # fmt: skip
        env = api.post("/api/v1/environments", json={"name": "e", "platform": "test"}).json()
        dep = api.post(URL, json={"name": "iris", "environmentId": env["id"], "modelPackageId": ids[0]}).json()
        body = {"modelPackageId": ids[1], "canary": {"percent": 50, "step": 50, "intervalSeconds": 1}}
        assert api.post(f"{URL}/{dep['id']}/replace-model", json=body).status_code == 200
        deadline = time.monotonic() + 20
        while rollout_of(api, dep["id"])["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rollout_of(api, dep["id"])["state"] == "promoted"
        assert api.get(f"{URL}/{dep['id']}").json()["modelPackageId"] == ids[1]
