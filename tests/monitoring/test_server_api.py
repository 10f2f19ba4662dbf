"""The control plane's monitoring ingest and queries (TestClient over a real SQLite file)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import data_record, stats_record


def _raw(dep_id: str, ts: float, latency: float, rows: int = 1, error: str | None = None) -> dict:
    record = stats_record(
        dep_id,
        "m1",
        rows,
        latency,
        user_errors=1 if error == "user" else 0,
        system_errors=1 if error == "system" else 0,
        timestamp=ts,
    )
    return record


def test_ingest_and_service_health(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    now = time.time() // 60 * 60 - 120
    records = [_raw(dep, now + i % 120, latency=float(i % 100 + 1), rows=2) for i in range(1000)]
    records[0] = _raw(dep, now, 5.0, error="user")
    records[1] = _raw(dep, now, 5.0, error="system")
    agg = Aggregator()
    for r in records:
        agg.add("src-1", r)
    body = {"batchId": "b-1", "records": agg.drain()}
    first = api.post("/api/v1/monitoring/batches", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False and first.json()["accepted"] == 2
    again = api.post("/api/v1/monitoring/batches", json=body)
    assert again.json()["duplicate"] is True and again.json()["accepted"] == 0

    health = api.get(f"/api/v1/deployments/{dep}/monitoring/service-health", params={"bucketSeconds": 60})
    assert health.status_code == 200, health.text
    data = health.json()
    totals = data["totals"]
    assert totals["requests"] == 1000
    assert totals["rows"] == 2 * 998 + 2
    assert totals["userErrors"] == 1 and totals["systemErrors"] == 1
    assert 45 <= totals["latencyP50Ms"] <= 55
    assert 97 <= totals["latencyP99Ms"] <= 101
    assert len(data["buckets"]) == 60
    assert sum(b["requests"] for b in data["buckets"]) == 1000
    assert {"start", "requests", "rows", "userErrors", "systemErrors", "latencyP50Ms", "latencyP99Ms"} <= set(
        data["buckets"][0]
    )


def test_raw_records_are_accepted_and_idempotent(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    records = [_raw(dep, time.time() - 30, 3.0) for _ in range(10)]
    for _ in range(2):
        assert api.post("/api/v1/monitoring/batches", json={"batchId": "raw-1", "records": records}).status_code == 200
    totals = api.get(f"/api/v1/deployments/{dep}/monitoring/service-health").json()["totals"]
    assert totals["requests"] == 10


def test_partially_seen_sources_count_once(api: TestClient, deployment: dict) -> None:
    """A resend that regroups sources (crash after the first post) counts each source once."""
    dep = deployment["id"]
    ts = time.time() - 30

    def aggregate(source: str, n: int) -> list[dict]:
        agg = Aggregator()
        for _ in range(n):
            agg.add(source, _raw(dep, ts, 1.0))
        return agg.drain()

    api.post("/api/v1/monitoring/batches", json={"batchId": "x1", "records": aggregate("a", 3) + aggregate("b", 4)})
    response = api.post(
        "/api/v1/monitoring/batches", json={"batchId": "x2", "records": aggregate("b", 4) + aggregate("c", 5)}
    )
    assert response.json()["skippedSources"] == 1
    totals = api.get(f"/api/v1/deployments/{dep}/monitoring/service-health").json()["totals"]
    assert totals["requests"] == 12


def test_predictions_and_drift(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    ts = time.time() - 30
    agg = Aggregator()
    for i in range(200):
        agg.add(
            "s",
            data_record(
                dep,
                "m1",
                [{"sepal_length": 9.0 + (i % 7) * 0.1, "sepal_width": 3.0, "petal_length": 1.4, "petal_width": 0.2}],
                ["setosa" if i % 4 else "virginica"],
                timestamp=ts,
            ),
        )
    assert api.post("/api/v1/monitoring/batches", json={"batchId": "d", "records": agg.drain()}).status_code == 200
    pred = api.get(f"/api/v1/deployments/{dep}/monitoring/predictions").json()
    assert pred["targetType"] == "multiclass"
    counts = {c["label"]: c["count"] for c in pred["classes"]}
    assert counts["setosa"] == 150 and counts["virginica"] == 50
    drift = api.get(f"/api/v1/deployments/{dep}/monitoring/drift").json()
    assert drift["baseline"] == "package"
    by_name = {f["name"]: f for f in drift["features"]}
    assert by_name["sepal_length"]["status"] == "drift", by_name["sepal_length"]
    assert by_name["sepal_length"]["psi"] > 0.25
    assert len(by_name["sepal_length"]["bins"]) == len(by_name["sepal_length"]["currentShare"])
    assert abs(sum(by_name["sepal_length"]["currentShare"]) - 1.0) < 1e-9


def test_query_validation_names_the_field(api: TestClient, deployment: dict) -> None:
    url = f"/api/v1/deployments/{deployment['id']}/monitoring/service-health"
    bad = api.get(url, params={"start": "yesterday"})
    assert bad.status_code == 422 and "start" in bad.json()["detail"]
    bad = api.get(url, params={"bucketSeconds": 90})
    assert bad.status_code == 422 and "bucketSeconds" in bad.json()["detail"]
    bad = api.get(url, params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("end:")
    bad = api.get(url, params={"start": "2020-01-01T00:00:00Z", "bucketSeconds": 60})
    assert bad.status_code == 422 and "bucketSeconds" in bad.json()["detail"]
    missing = api.get("/api/v1/deployments/nope/monitoring/drift")
    assert missing.status_code == 404
    body = api.post(
        "/api/v1/monitoring/batches", json={"batchId": "v", "records": [{"deploymentId": "x", "minute": 61}]}
    )
    assert body.status_code == 422 and "records[0].minute" in body.json()["detail"]


def test_agent_tokens_are_scoped(api: TestClient, deployment: dict) -> None:
    other_env = api.post("/api/v1/environments", json={"name": "other", "platform": "test"}).json()
    token = api.post("/api/v1/tokens", json={"name": "a1", "role": "agent", "environmentIds": [other_env["id"]]})
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    record = _raw(deployment["id"], time.time(), 1.0)
    denied = api.post("/api/v1/monitoring/batches", json={"batchId": "s", "records": [record]}, headers=headers)
    assert denied.status_code == 403 and deployment["id"] in denied.json()["detail"]
    read = api.get(f"/api/v1/deployments/{deployment['id']}/monitoring/service-health", headers=headers)
    assert read.status_code == 404  # another environment's deployment looks missing to an agent


MINUTE = "records[1].minute: expected epoch seconds at a whole minute, found "


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        ({"minute": 60}, "records[1].deploymentId: required: the deployment id the statistics belong to"),
        ({"deploymentId": "", "minute": 60}, "records[1].deploymentId: required: the deployment id"),
        ({"deploymentId": "x", "minute": True}, MINUTE + "True"),
        ({"deploymentId": "x", "minute": "60"}, MINUTE + "'60'"),
        ({"deploymentId": "x", "minute": 60, "rows": -1}, "records[1].rows: expected a non-negative integer, found -1"),
        ({"deploymentId": "x", "minute": 60, "userErrors": None}, "records[1].userErrors: expected a non-negative"),
        ({"deploymentId": "x", "minute": 60, "systemErrors": 1.5, "requests": -2}, "records[1].requests: "),
        ({"deploymentId": "x", "minute": 60, "latency": [1]}, "records[1].latency: expected an object, found list"),
        ({"deploymentId": "x", "minute": 60, "features": "a"}, "records[1].features: expected an object, found str"),
        ({"deploymentId": "x"}, "records[1]: a raw record needs deploymentId (string) and ts (epoch seconds)"),
        ({"deploymentId": 5, "ts": 5}, "records[1]: a raw record needs deploymentId (string) and ts"),
        ({"deploymentId": "x", "minute": 60, "shadow": "yes"}, "records[1].shadow: expected true or false, found"),
        ({"deploymentId": "x", "minute": 60, "comparedRows": -1}, "records[1].comparedRows: expected a non-negative"),
        ({"deploymentId": "x", "minute": 60, "agreedRows": 1.5}, "records[1].agreedRows: expected a non-negative"),
        ({"deploymentId": "x", "minute": 60, "absDiffSum": -0.5}, "records[1].absDiffSum: expected a non-negative"),
        ({"deploymentId": "x", "ts": 5, "shadow": 1}, "records[1].shadow: expected true or false, found 1"),
        ({"deploymentId": "x", "ts": 5, "absDiffSum": "0"}, "records[1].absDiffSum: expected a non-negative finite"),
    ],
)
def test_ingest_validation_names_the_record_and_key(
    api: TestClient, deployment: dict, record: dict, detail: str
) -> None:
    good = {"deploymentId": deployment["id"], "minute": 60}
    response = api.post("/api/v1/monitoring/batches", json={"batchId": "bad", "records": [good, record]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    assert set(response.json()) == {"detail"}
    retry = api.post("/api/v1/monitoring/batches", json={"batchId": "bad", "records": [good]})
    assert retry.json()["duplicate"] is False  # nothing of the refused batch was recorded
