"""Each policy kind against data put in through the API, evaluated round after round: a
condition that holds notifies once per minimum interval, one that does not never does."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient

from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import data_record, scored_record, stats_record
from deckhand.packages.demo import sample_rows
from deckhand.server.db.models import Environment, NotificationDelivery, utcnow

HOOK_URL = "http://127.0.0.1:9/unreachable"  # deliveries stay pending: the tests count them


def _hook(api: TestClient) -> str:
    response = api.post("/api/v1/notification-channels", json={"name": "hook", "kind": "webhook", "url": HOOK_URL})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _policy(api: TestClient, channel: str, **body: object) -> dict:
    response = api.post("/api/v1/notification-policies", json={"channelIds": [channel], **body})
    assert response.status_code == 201, response.text
    return response.json()


def _post(api: TestClient, batch: str, records: list[dict]) -> None:
    aggregator = Aggregator()
    for record in records:
        aggregator.add(batch, record)
    response = api.post("/api/v1/monitoring/batches", json={"batchId": batch, "records": aggregator.drain()})
    assert response.status_code == 200, response.text


def _deliveries(api: TestClient, policy: str) -> list[dict]:
    return api.get("/api/v1/notification-deliveries", params={"policy": policy}).json()


def test_an_error_rate_notifies_once_per_interval(
    api: TestClient, deployment: dict, evaluate: Callable[[], int]
) -> None:
    dep = deployment["id"]
    channel = _hook(api)
    policy = _policy(api, channel, name="errors", kind="service_health", deploymentId=dep,
                     settings={"metric": "errorRate", "threshold": 0.1}, minIntervalSeconds=3600)  # fmt: skip
    quiet = _policy(api, channel, name="latency", kind="service_health", deploymentId=dep,
                    settings={"metric": "p99Ms", "threshold": 500})  # fmt: skip
    now = time.time() - 30
    _post(api, "b1", [stats_record(dep, "m", 1, 5.0, user_errors=int(i % 4 == 0), timestamp=now) for i in range(40)])
    assert evaluate() == 1
    for _ in range(3):  # the condition still holds: nothing more within the interval
        assert evaluate() == 0
    (delivery,) = _deliveries(api, "errors")
    assert "error rate 25.00% > 10.00% (10 of 40)" in delivery["title"] + api_message(api, delivery)
    assert _deliveries(api, "latency") == []
    api.patch(f"/api/v1/notification-policies/{policy['id']}", json={"minIntervalSeconds": 1})
    time.sleep(1.1)
    assert evaluate() == 1 and len(_deliveries(api, "errors")) == 2
    assert quiet["enabled"] is True


def api_message(api: TestClient, delivery: dict) -> str:
    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    with db.reading() as session:
        return str(session.get(NotificationDelivery, delivery["id"]).payload["text"])


def test_drift_on_any_or_chosen_features(api: TestClient, deployment: dict, evaluate: Callable[[], int]) -> None:
    dep = deployment["id"]
    channel = _hook(api)
    _policy(api, channel, name="drift-any", kind="drift", deploymentId=dep, settings={"threshold": 0.2})
    _policy(api, channel, name="drift-width", kind="drift", deploymentId=dep,
            settings={"threshold": 0.2, "features": ["sepal_width"]})  # fmt: skip
    rows = sample_rows(200, seed=2)
    for row in rows:
        row["petal_length"] = 40.0  # far outside the training data; the other features as trained
    _post(api, "drift", [data_record(dep, "m", rows[i : i + 20], ["setosa"] * 20, timestamp=time.time() - 60)
                         for i in range(0, 200, 20)])  # fmt: skip
    assert evaluate() == 1 and evaluate() == 0
    (delivery,) = _deliveries(api, "drift-any")
    assert "petal_length" in api_message(api, delivery)
    assert _deliveries(api, "drift-width") == []


def test_an_accuracy_drop_notifies_once(api: TestClient, deployment: dict, evaluate: Callable[[], int]) -> None:
    dep, champion = deployment["id"], deployment["modelPackageId"]
    channel = _hook(api)
    _policy(api, channel, name="accuracy", kind="accuracy", deploymentId=dep,
            settings={"metric": "accuracy", "threshold": 0.8, "minMatched": 20})  # fmt: skip
    names = ["setosa", "versicolor", "virginica"]
    ids = [f"a{i}" for i in range(100)]
    probabilities = np.tile([0.8, 0.1, 0.1], (100, 1)).tolist()
    _post(api, "scored", [scored_record(dep, champion, ids, probabilities, names, time.time() - 60)])
    good = [{"associationId": i, "actualValue": "setosa"} for i in ids[:60]]
    assert api.post(f"/api/v1/deployments/{dep}/actuals", json={"data": good}).status_code == 200
    assert evaluate() == 0  # accuracy 1.0
    bad = [{"associationId": i, "actualValue": "virginica"} for i in ids[60:]]
    assert api.post(f"/api/v1/deployments/{dep}/actuals", json={"data": bad}).status_code == 200
    assert evaluate() == 1 and evaluate() == 0  # 0.6 < 0.8: once
    (delivery,) = _deliveries(api, "accuracy")
    assert "accuracy 0.6000 < 0.8 over 100 matched predictions" in api_message(api, delivery)


def test_a_silent_agent_and_a_failed_action(api: TestClient, deployment: dict, evaluate: Callable[[], int]) -> None:
    channel = _hook(api)
    env = deployment["environmentId"]
    _policy(api, channel, name="silent", kind="agent", settings={"silentMinutes": 10})
    _policy(api, channel, name="failures", kind="deployment_action")
    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    with db.writing() as session:
        session.get(Environment, env).status_updated_at = utcnow() - timedelta(minutes=3)
    assert evaluate() == 0  # 3 min: not silent yet (and the action policy starts from now)
    with db.writing() as session:
        session.get(Environment, env).status_updated_at = utcnow() - timedelta(minutes=25)
    event = {"deploymentId": deployment["id"], "action": "deployment_replace_model", "result": "failing",
             "message": "image build failed: no space left"}  # fmt: skip
    posted = api.post(f"/api/v1/agent/environments/{env}/events", json={"events": [event]})
    assert posted.status_code == 204, posted.text
    assert evaluate() == 2 and evaluate() == 0
    (silent,) = _deliveries(api, "silent")
    assert "has not reported for 25 min" in api_message(api, silent)
    (failed,) = _deliveries(api, "failures")
    assert "deployment_replace_model failed: image build failed" in api_message(api, failed)


def test_accuracy_of_a_model_reported_under_its_own_id(
    api: TestClient, deployment: dict, evaluate: Callable[[], int]
) -> None:
    """An external model reporting through the MLOps library names itself: with no rows of the
    champion's id, the policy judges the model with the most matched predictions."""
    dep = deployment["id"]
    channel = _hook(api)
    _policy(api, channel, name="external", kind="accuracy", deploymentId=dep,
            settings={"metric": "mae", "threshold": 1.0, "minMatched": 5})  # fmt: skip
    ids = [f"x{i}" for i in range(10)]
    _post(api, "ext", [scored_record(dep, "my-external-model", ids, [5.0] * 10, timestamp=time.time() - 60),
                       scored_record(dep, "another", ids[:3], [0.0] * 3, timestamp=time.time() - 60)])  # fmt: skip
    actuals = [{"associationId": i, "actualValue": 2.0} for i in ids]
    assert api.post(f"/api/v1/deployments/{dep}/actuals", json={"data": actuals}).status_code == 200
    assert evaluate() == 1
    (delivery,) = _deliveries(api, "external")
    assert "mae 3.0000 > 1 over 10 matched predictions" in api_message(api, delivery)
