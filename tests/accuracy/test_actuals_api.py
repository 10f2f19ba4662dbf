"""Actuals and accuracy through the control plane's API (TestClient over a real SQLite
file): predictions by association id arrive on the monitoring batch endpoint, actuals by
JSON and CSV, in any order, more than once; accuracy equals scikit-learn's on the pairs."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics as skm

from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import actuals_record, data_record, scored_record


def _post_batch(api: TestClient, batch_id: str, records: list[dict]) -> dict:
    aggregator = Aggregator()
    for record in records:
        aggregator.add(f"src-{batch_id}", record)
    response = api.post("/api/v1/monitoring/batches", json={"batchId": batch_id, "records": aggregator.drain()})
    assert response.status_code == 200, response.text
    return response.json()


def _actuals(api: TestClient, dep: str, rows: list[dict]) -> dict:
    response = api.post(f"/api/v1/deployments/{dep}/actuals", json={"data": rows})
    assert response.status_code == 200, response.text
    return response.json()


def _accuracy(api: TestClient, dep: str, **params: object) -> dict:
    response = api.get(f"/api/v1/deployments/{dep}/accuracy", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_regression_accuracy_with_late_out_of_order_and_repeated_actuals(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    rng = np.random.default_rng(7)
    n = 1200
    truth = rng.normal(50, 10, n).round(3)
    predicted = (truth + rng.normal(0, 4, n)).round(3)
    ids = [f"row-{i}" for i in range(n)]
    now = time.time() // 60 * 60 - 30 * 60
    # half of the actuals come first (before their predictions), in reverse order
    first = [{"associationId": ids[i], "actualValue": float(truth[i])} for i in reversed(range(0, n, 2))]
    answer = _actuals(api, dep, first)
    assert answer["inserted"] == n // 2 and answer["pending"] == n // 2 and answer["matched"] == 0
    assert len(answer["pendingIds"]) == 20
    # predictions of two models over 20 minutes, the champion's sent twice
    records = [
        scored_record(dep, "champion-model", ids[i : i + 60], predicted[i : i + 60].tolist(), timestamp=now + i)
        for i in range(0, n, 60)
    ]
    for attempt in ("a", "b"):
        _post_batch(api, f"scored-{attempt}", records)
    _post_batch(api, "challenger", [scored_record(dep, "other", ids[:100], [50.0] * 100, timestamp=now)])
    # the other half, with a wrong value first, then corrected; the first half sent again
    wrong = [{"associationId": ids[i], "actualValue": 0.0} for i in range(1, n, 2)]
    assert _actuals(api, dep, wrong)["matched"] == n // 2
    right = [{"associationId": ids[i], "actualValue": float(truth[i])} for i in range(1, n, 2)]
    corrected = _actuals(api, dep, right + first)
    assert corrected["updated"] == n // 2 and corrected["unchanged"] == n // 2

    report = _accuracy(api, dep, start=_iso(now - 3600), bucketSeconds=600)
    models = {m["modelId"]: m for m in report["models"]}
    champion = models["champion-model"]
    assert champion["kind"] == "regression" and champion["matched"] == n
    assert champion["metrics"]["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(truth, predicted)), abs=1e-5)
    assert champion["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted), abs=1e-5)
    assert champion["metrics"]["r2"] == pytest.approx(skm.r2_score(truth, predicted), abs=1e-5)
    assert sum(b["matched"] for b in champion["buckets"]) == n and len(champion["buckets"]) == 2
    other = models["other"]
    assert other["matched"] == 100
    assert other["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(truth[:100], [50.0] * 100), abs=1e-5)
    one = _accuracy(api, dep, start=_iso(now - 3600), modelId="other")
    assert [m["modelId"] for m in one["models"]] == ["other"]


def test_binary_accuracy_from_csv_and_the_mlops_library_records(api: TestClient, deployment: dict) -> None:
    """Predictions reported as the MLOps library does (data records with association ids and
    probability lists) and actuals as a CSV file."""
    dep = deployment["id"]
    rng = np.random.default_rng(8)
    n = 800
    truth = rng.integers(0, 2, n)
    score = np.clip(truth * 0.35 + rng.uniform(0, 0.65, n), 0.001, 0.999).round(4)
    ids = [f"b{i}" for i in range(n)]
    names = ["0", "1"]
    now = time.time() - 120
    records = [
        data_record(dep, "m-bin", {"x": [1.0] * 100}, [[1 - s, s] for s in score[i : i + 100].tolist()],
                    class_names=names, association_ids=ids[i : i + 100], timestamp=now)
        for i in range(0, n, 100)
    ]  # fmt: skip
    _post_batch(api, "library", records)
    csv = "associationId,actualValue,timestamp\n" + "".join(
        f"{i},{t},2026-12-04T10:00:00Z\n" for i, t in zip(ids, truth.tolist(), strict=True)
    )
    response = api.post(f"/api/v1/deployments/{dep}/actuals", content=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["matched"] == n
    model = _accuracy(api, dep)["models"][0]
    labels = (score >= 0.5).astype(int)
    assert model["kind"] == "binary" and model["matched"] == n
    got = model["metrics"]
    assert got["auc"] == pytest.approx(skm.roc_auc_score(truth, score), abs=1e-6)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(truth, labels), abs=1e-6)
    assert got["logLoss"] == pytest.approx(skm.log_loss(truth, np.c_[1 - score, score]), abs=1e-6)
    assert got["precision"] == pytest.approx(skm.precision_score(truth, labels), abs=1e-6)
    assert got["recall"] == pytest.approx(skm.recall_score(truth, labels), abs=1e-6)


def test_rejected_rows_are_reported_with_their_reasons(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    rows = [
        {"associationId": "ok", "actualValue": 1.5},
        {"actualValue": 2},
        {"associationId": "no-value"},
        {"associationId": "bad-type", "actualValue": {"x": 1}},
        {"associationId": "bad-time", "actualValue": 1, "timestamp": "yesterday"},
        "not an object",
    ]
    answer = _actuals(api, dep, rows)
    assert answer["received"] == 6 and answer["accepted"] == 1 and answer["rejectedCount"] == 5
    reasons = {(r["row"], r["field"]): r["reason"] for r in answer["rejected"]}
    assert "missing" in reasons[(1, "associationId")]
    assert "missing" in reasons[(2, "actualValue")]
    assert "number or a class label" in reasons[(3, "actualValue")]
    assert "ISO 8601" in reasons[(4, "timestamp")]
    assert (5, "") in reasons
    bad_csv = api.post(
        f"/api/v1/deployments/{dep}/actuals", content="id,value\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert bad_csv.status_code == 400 and "associationId" in bad_csv.json()["detail"]
    not_json = api.post(
        f"/api/v1/deployments/{dep}/actuals", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]


def test_limits_are_a_413_naming_the_flag(api: TestClient, deployment: dict, settings) -> None:
    dep = deployment["id"]
    settings.max_actuals_bytes = 1000
    response = api.post(
        f"/api/v1/deployments/{dep}/actuals", json={"data": [{"associationId": "x" * 50, "actualValue": 1}] * 40}
    )
    assert response.status_code == 413 and "--max-actuals-mb" in response.json()["detail"]


def test_actuals_through_the_monitoring_channel(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    now = time.time() - 60
    _post_batch(api, "p", [scored_record(dep, "m", ["a", "b"], [1.0, 3.0], timestamp=now)])
    item = actuals_record(dep, [{"associationId": "a", "actualValue": 2.0}, {"associationId": "b", "actualValue": 3.0}])
    for _ in range(2):  # a resent batch changes nothing
        _post_batch(api, "actuals", [item])
    model = _accuracy(api, dep)["models"][0]
    assert model["matched"] == 2 and model["metrics"]["mae"] == pytest.approx(0.5)


def test_bad_scored_items_name_the_field(api: TestClient, deployment: dict) -> None:
    dep = deployment["id"]
    bad = scored_record(dep, "m", ["a"], [1.0, 2.0])
    response = api.post("/api/v1/monitoring/batches", json={"batchId": "bad", "records": [bad]})
    assert response.status_code == 422 and "records[0].associationIds" in response.json()["detail"]


def test_agents_of_other_environments_may_not_send_actuals(api: TestClient, deployment: dict) -> None:
    other = api.post("/api/v1/environments", json={"name": "elsewhere", "platform": "test"}).json()
    token = api.post("/api/v1/tokens", json={"name": "agent-x", "role": "agent", "environmentIds": [other["id"]]})
    assert token.status_code == 201, token.text
    response = api.post(
        f"/api/v1/deployments/{deployment['id']}/actuals",
        json={"data": [{"associationId": "a", "actualValue": 1}]},
        headers={"Authorization": f"Bearer {token.json()['token']}"},
    )
    assert response.status_code == 404


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
