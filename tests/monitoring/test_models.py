"""Monitoring per model of a deployment: ingest into the per-model tables (shadow records
only there), exactly once, `model_health` and `prediction_psi`, and the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deckhand.monitoring.aggregate import Aggregator, distribution
from deckhand.monitoring.drift import feature_drift
from deckhand.monitoring.records import Record, data_record, stats_record
from deckhand.server.db.session import Database
from deckhand.server.services.monitoring import models
from deckhand.server.settings import ServerSettings

CANARY, CHALLENGER = "canary-pkg", "challenger-pkg"
MINUTE = int(time.time() // 60 * 60) - 180  # three minutes ago: inside the default window


def _stats(dep: str, model: str | None, rows: int, latency: float, ts: float, **extra: Any) -> Record:
    record = stats_record(dep, model, rows, latency, extra.pop("user", 0), extra.pop("system", 0), ts)
    record.update(extra)
    return record


def _traffic(dep: str, champion: str) -> list[Record]:
    """One minute of a deployment with a canary and a challenger (hand-counted in the tests):
    - champion: 40 requests of 2 rows, latencies 1..40 ms, 2 user and 1 system errors,
      a prediction each (30 setosa, 10 versicolor);
    - canary: 10 requests of 1 row (1 system error), 8 ms each, predictions virginica,
      plus 1 shadow record: a request it failed that the champion answered;
    - challenger: 20 shadow requests of 2 rows, 20 ms each, 2 rows compared each, 30 of 40
      agreed, |diff| 0.1 each, predictions setosa;
    - 5 requests without a model id (counted for the deployment only)."""
    ts = MINUTE + 5.0
    out = []
    for i in range(40):
        record = _stats(dep, champion, 2, float(i + 1), ts, user=int(i < 2), system=int(i == 2))
        record.update(data_record(dep, champion, None, ["setosa" if i < 30 else "versicolor"], timestamp=ts))
        out.append(record)
    for i in range(10):
        record = _stats(dep, CANARY, 1, 8.0, ts, system=int(i == 0))
        record.update(data_record(dep, CANARY, None, ["virginica"], timestamp=ts))
        out.append(record)
    out.append(_stats(dep, CANARY, 1, 8.0, ts, system=1, shadow=True))
    for i in range(20):
        record = _stats(dep, CHALLENGER, 2, 20.0, ts, shadow=True, comparedRows=2, agreedRows=1 + i % 2, absDiffSum=0.1)
        record.update(data_record(dep, CHALLENGER, None, ["setosa"], timestamp=ts))
        out.append(record)
    out.extend(_stats(dep, None, 1, 1.0, ts) for _ in range(5))
    return out


def _aggregates(records: list[Record], sources: int = 1, prefix: str = "src") -> list[dict]:
    """The records aggregated as a tracking agent would, spread over `sources` sources."""
    aggregator = Aggregator()
    for i, record in enumerate(records):
        aggregator.add(f"{prefix}-{i % sources}", record)
    return aggregator.drain()


@pytest.fixture
def db(settings: ServerSettings, api: TestClient) -> Iterator[Database]:
    database = Database(settings.database_url or "")
    yield database
    database.dispose()


def _post(api: TestClient, batch_id: str, records: list[dict]) -> dict:
    response = api.post("/api/v1/monitoring/batches", json={"batchId": batch_id, "records": records})
    assert response.status_code == 200, response.text
    return response.json()


def test_shadow_records_count_for_their_model_only(api: TestClient, deployment: dict, db: Database) -> None:
    dep, champion = deployment["id"], deployment["modelPackageId"]
    _post(api, "b1", _aggregates(_traffic(dep, champion), sources=3))
    totals = api.get(f"/api/v1/deployments/{dep}/monitoring/service-health").json()["totals"]
    # the deployment: champion 40 + canary 10 + 5 without a model; no shadow request
    assert (totals["requests"], totals["rows"]) == (55, 80 + 10 + 5)
    assert (totals["userErrors"], totals["systemErrors"]) == (2, 2)
    predictions = api.get(f"/api/v1/deployments/{dep}/monitoring/predictions").json()
    assert {c["label"]: c["count"] for c in predictions["classes"]} == {"setosa": 30, "versicolor": 10, "virginica": 10}

    with db.reading() as session:
        health = models.model_health(session, dep, MINUTE, MINUTE + 60)
    assert set(health) == {champion, CANARY, CHALLENGER}  # no row for records without a model id
    main = health[champion]
    assert (main.requests, main.rows, main.user_errors, main.system_errors) == (40, 80, 2, 1)
    assert main.error_rate == pytest.approx(3 / 40) and main.shadow is False
    assert main.p50_ms == pytest.approx(20.5, rel=0.05) and main.p99_ms == pytest.approx(40, rel=0.03)
    assert (main.compared, main.agreement, main.mean_abs_diff) == (0, None, None)
    canary = health[CANARY]
    assert (canary.requests, canary.system_errors, canary.shadow) == (11, 2, False)  # its shadow failure too
    assert canary.error_rate == pytest.approx(2 / 11) and canary.p99_ms == pytest.approx(8, rel=0.03)
    challenger = health[CHALLENGER]
    assert (challenger.requests, challenger.rows, challenger.shadow) == (20, 40, True)
    assert (challenger.compared, challenger.agreed) == (40, 30)
    assert challenger.agreement == pytest.approx(0.75) and challenger.mean_abs_diff == pytest.approx(2.0 / 40)
    assert challenger.error_rate == 0.0
    with db.reading() as session:  # a window without data, and one given as datetimes
        assert models.model_health(session, dep, MINUTE + 60, MINUTE + 120) == {}
        from datetime import UTC, datetime

        as_dates = models.model_health(
            session, dep, datetime.fromtimestamp(MINUTE + 30, UTC), datetime.fromtimestamp(MINUTE + 60, UTC)
        )
    assert as_dates == health  # start aligned down to its minute


def test_each_source_counts_once_per_model(api: TestClient, deployment: dict, db: Database) -> None:
    """Resending a batch, or regrouping its sources, never counts a model's records twice;
    a minute stays shadow only while all its model's records were."""
    dep, champion = deployment["id"], deployment["modelPackageId"]
    aggregates = _aggregates(_traffic(dep, champion), sources=4)
    first = [a for a in aggregates if a["sourceId"] in ("src-0", "src-1")]
    assert _post(api, "p1", first)["duplicate"] is False
    assert _post(api, "p1", first)["duplicate"] is True
    regrouped = _post(api, "p2", aggregates)  # src-0 and src-1 again, with src-2 and src-3
    assert regrouped["skippedSources"] == 2
    with db.reading() as session:
        health = models.model_health(session, dep, MINUTE, MINUTE + 60)
    assert {m: (h.requests, h.compared) for m, h in health.items()} == {
        champion: (40, 0),
        CANARY: (11, 0),
        CHALLENGER: (20, 40),
    }
    # the challenger answers once for real in a later batch: its minute is no longer all shadow
    _post(api, "p3", _aggregates([_stats(dep, CHALLENGER, 1, 1.0, MINUTE + 30.0)], prefix="later"))
    with db.reading() as session:
        challenger = models.model_health(session, dep, MINUTE, MINUTE + 60)[CHALLENGER]
    assert (challenger.requests, challenger.shadow) == (21, False)


def _predictions(dep: str, model: str, values: list[Any], minute: int) -> list[Record]:
    return [data_record(dep, model, None, [v], timestamp=minute + 1.0) for v in values]


def test_prediction_psi_is_the_drift_codes_psi_over_the_same_minutes(
    api: TestClient, deployment: dict, db: Database
) -> None:
    dep = deployment["id"]
    base = [float(i % 100) for i in range(1000)]
    records = _predictions(dep, "a", base, MINUTE) + _predictions(dep, "same", base, MINUTE)
    records += _predictions(dep, "shifted", [v + 30 for v in base], MINUTE)
    records += _predictions(dep, "few", base[:99], MINUTE)
    # a minute only "same" has: not a minute both have, so not compared
    records += _predictions(dep, "same", [500.0] * 1000, MINUTE + 60)
    _post(api, "psi", _aggregates(records))
    with db.reading() as session:
        identical = models.prediction_psi(session, dep, "same", "a", MINUTE, MINUTE + 120)
        shifted = models.prediction_psi(session, dep, "shifted", "a", MINUTE, MINUTE + 120)
        too_few = models.prediction_psi(session, dep, "few", "a", MINUTE, MINUTE + 120)
        reversed_few = models.prediction_psi(session, dep, "a", "few", MINUTE, MINUTE + 120)
        missing = models.prediction_psi(session, dep, "a", "nobody", MINUTE, MINUTE + 120)
        enough = models.prediction_psi(session, dep, "few", "a", MINUTE, MINUTE + 120, min_predictions=99)
    assert identical == pytest.approx(0.0, abs=1e-6)
    expected = feature_drift("p", distribution(base), distribution([v + 30 for v in base]))
    assert expected is not None and shifted == pytest.approx(expected.psi) and shifted > 1.0
    assert too_few is None and reversed_few is None and missing is None  # fewer than MIN_PSI_PREDICTIONS
    assert models.MIN_PSI_PREDICTIONS == 100 and enough is not None


def test_labels_psi(api: TestClient, deployment: dict, db: Database) -> None:
    dep = deployment["id"]
    labels = ["setosa"] * 60 + ["versicolor"] * 40
    flipped = ["setosa"] * 10 + ["versicolor"] * 40 + ["virginica"] * 50
    _post(api, "labels", _aggregates(_predictions(dep, "a", labels, MINUTE) + _predictions(dep, "b", flipped, MINUTE)))
    with db.reading() as session:
        psi = models.prediction_psi(session, dep, "b", "a", MINUTE, MINUTE + 60)
    expected = feature_drift("p", distribution(labels), distribution(flipped))
    assert expected is not None and psi == pytest.approx(expected.psi) and psi > 0.25


def test_models_api_compares_every_model_with_the_champion(api: TestClient, deployment: dict) -> None:
    dep, champion = deployment["id"], deployment["modelPackageId"]
    records = _traffic(dep, champion)
    # enough predictions for a PSI: the canary answers like the champion, the challenger does not
    records += _predictions(dep, champion, ["setosa", "versicolor"] * 1000, MINUTE)
    records += _predictions(dep, CANARY, ["setosa", "versicolor"] * 1000, MINUTE)
    records += _predictions(dep, CHALLENGER, ["virginica"] * 200, MINUTE)
    _post(api, "api", _aggregates(records))
    response = api.get(f"/api/v1/deployments/{dep}/monitoring/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["championModelId"] == champion and body["psiMinPredictions"] == models.MIN_PSI_PREDICTIONS
    found = {m["modelId"]: m for m in body["models"]}
    assert [m["modelId"] for m in body["models"]][0] == champion
    assert found[champion]["champion"] is True and found[champion]["psiVsChampion"] is None
    assert found[champion]["requests"] == 40 and found[champion]["errorRate"] == pytest.approx(3 / 40)
    assert found[CHALLENGER]["shadow"] is True and found[CHALLENGER]["agreement"] == pytest.approx(0.75)
    assert found[CANARY]["psiVsChampion"] < 0.1 < 0.25 < found[CHALLENGER]["psiVsChampion"]
    assert {"p50Ms", "p99Ms", "meanAbsDiff", "userErrors", "systemErrors", "compared", "agreed"} <= set(found[CANARY])
    window = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}
    assert api.get(f"/api/v1/deployments/{dep}/monitoring/models", params=window).json()["models"] == []
    assert api.get("/api/v1/deployments/nope/monitoring/models").status_code == 404
    bad = api.get(f"/api/v1/deployments/{dep}/monitoring/models", params={"start": "soon"})
    assert bad.status_code == 422 and "start" in bad.json()["detail"]
