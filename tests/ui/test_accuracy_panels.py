"""The Accuracy panel (ui/accuracy_panels.py, templates/_accuracy.html): from the accuracy
API's JSON on its own, and on the deployment page after predictions and actuals went in
through the API."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.ui.helpers import ADMIN_TOKEN, log_in

from deckhand.monitoring.records import scored_record
from deckhand.server.ui.accuracy_panels import accuracy_panel, format_metric
from deckhand.server.ui.panels import find_window
from deckhand.server.ui.router import templates

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _model(model_id: str, kind: str, matched: int, metrics: dict, buckets: list[tuple[int, dict]], champion=False):
    return {
        "modelId": model_id,
        "champion": champion,
        "kind": kind,
        "matched": matched,
        "metrics": metrics,
        "buckets": [{"start": _iso(T0 + timedelta(hours=h)), "matched": 1, "metrics": m} for h, m in buckets],
    }


def _report(*models: dict, hours: int = 6) -> dict:
    return {
        "deploymentId": "d1",
        "start": _iso(T0),
        "end": _iso(T0 + timedelta(hours=hours)),
        "bucketSeconds": 3600,
        "models": list(models),
    }


def _render(panel: object, window: str = "6h") -> str:
    return templates.get_template("_accuracy.html").render(
        accuracy=panel, accuracy_error=None, window=find_window(window)
    )


def _tables(page: str) -> dict[str, dict[str, str]]:
    """Each accuracy table's cells: model id -> {metric key: shown text}."""
    tables = {}
    for model_id, body in re.findall(r'<table class="accuracy-table" data-model-id="([^"]*)"(.*?)</table>', page, re.S):
        cells = re.findall(r'<td data-metric="([^"]+)" data-value="[^"]*">([^<]*)</td>', body)
        tables[html.unescape(model_id)] = dict(cells)
    return tables


def test_regression_lines_per_model_champion_first_and_tables_to_4_decimals() -> None:
    report = _report(
        _model("other", "regression", 100, {"rmse": 7.1234567, "mae": 5.5, "r2": None}, [(1, {"rmse": 7.1234567})]),
        _model("champ", "regression", 1200, {"rmse": 4.0123456, "mae": 3.2, "r2": 0.8412345},
               [(0, {"rmse": 4.5}), (2, {"rmse": 3.5}), (9, {"rmse": 1.0})], champion=True),
    )  # fmt: skip
    panel = accuracy_panel(report, {"champ": "churn-v2"})
    assert [m.model_id for m in panel.models] == ["champ", "other"]  # the champion first, whatever the order
    champion = panel.models[0]
    assert champion.champion and champion.name == "churn-v2" and champion.matched == 1200
    assert [(c.key, c.label, c.text) for c in champion.metrics] == [
        ("rmse", "RMSE", "4.0123"),
        ("mae", "MAE", "3.2000"),
        ("r2", "R²", "0.8412"),
    ]
    assert [c.text for c in panel.models[1].metrics] == ["7.1235", "5.5000", "—"]  # R² undefined: a dash

    [chart] = (str(c) for c in panel.charts)
    assert 'id="chart-accuracy-regression"' in chart and "RMSE per hour" in chart
    # one line per model, the champion's first and highlighted; 6 hourly points, hour 9 is outside
    assert re.findall(r'<g class="series ([^"]+)" data-series="([^"]+)"', chart) == [
        ("s-champion", "champ"),
        ("s-model-1", "other"),
    ]
    assert 'data-series="champ" data-points="2" data-sum="8"' in chart
    assert 'data-series="other" data-points="1" data-sum="7.12346"' in chart
    assert ">12:00<" in chart and ">17:00<" in chart

    page = _render(panel)
    assert _tables(page) == {
        "champ": {"matched": "1,200", "rmse": "4.0123", "mae": "3.2000", "r2": "0.8412"},
        "other": {"matched": "100", "rmse": "7.1235", "mae": "5.5000", "r2": "—"},
    }
    assert 'data-champion="true"' in page and "churn-v2" in page and "accuracy-empty" not in page


def test_binary_and_multiclass_show_every_metric_of_their_kind() -> None:
    binary = {"accuracy": 0.9, "auc": 0.95123, "logLoss": 0.25, "precision": 0.8, "recall": 0.75}
    multi = {"accuracy": 0.66666667, "logLoss": 0.9}
    panel = accuracy_panel(
        _report(
            _model("b", "binary", 10, binary, [(0, {"auc": 0.95123})], champion=True),
            _model("m", "multiclass", 3, multi, [(0, {"accuracy": 0.66666667})]),
        )
    )
    assert [c.key for c in panel.models[0].metrics] == ["accuracy", "auc", "logLoss", "precision", "recall"]
    assert [c.key for c in panel.models[1].metrics] == ["accuracy", "logLoss"]
    charts = [str(c) for c in panel.charts]
    assert len(charts) == 2  # one per kind: their metrics do not share an axis
    assert "AUC per hour" in charts[0] and 'data-series="b" data-points="1" data-sum="0.95123"' in charts[0]
    assert "Accuracy per hour" in charts[1] and 'data-series="m" data-points="1"' in charts[1]
    assert _tables(_render(panel))["b"] == {
        "matched": "10", "accuracy": "0.9000", "auc": "0.9512", "logLoss": "0.2500", "precision": "0.8000",
        "recall": "0.7500",
    }  # fmt: skip


def test_empty_state_says_what_to_do() -> None:
    for report in (None, _report()):
        panel = accuracy_panel(report)
        assert panel.empty and panel.charts == []
        page = _render(panel)
        assert 'id="accuracy-empty"' in page and "accuracy-table" not in page
        text = " ".join(re.sub(r"<[^>]+>", "", page).split())
        assert "No predictions with actuals in this window" in text
        assert "deckhand deploy ... --association-id COLUMN" in text
        assert "deckhand actuals upload FILE --deployment ID" in text
        assert "docs/accuracy.md" in text
    error = templates.get_template("_accuracy.html").render(
        accuracy=None, accuracy_error="500: <b>boom</b>", window=find_window("1h")
    )
    assert 'id="accuracy-error"' in error and "&lt;b&gt;boom" in error and "<b>" not in error


def test_a_hostile_model_id_is_escaped_everywhere() -> None:
    panel = accuracy_panel(
        _report(
            _model(HOSTILE, "regression", 2, {"rmse": 1.0, "mae": 1.0, "r2": 0.5}, [(0, {"rmse": 1.0})]),
            _model("champ", "regression", 2, {"rmse": 1.0, "mae": 1.0, "r2": 0.5}, [(0, {"rmse": 1.0})], True),
        ),
        {HOSTILE: HOSTILE},  # as a package name too
    )
    page = _render(panel)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE in _tables(page)  # the id itself, escaped in the attribute and read back whole


# -- on the page, with data from the API ------------------------------------------------


def _post_scored(api: TestClient, batch_id: str, records: list[dict]) -> None:
    response = api.post("/api/v1/monitoring/batches", json={"batchId": batch_id, "records": records})
    assert response.status_code == 200, response.text


def _post_actuals(api: TestClient, dep: str, ids: list[str], values: list[float]) -> None:
    rows = [{"associationId": i, "actualValue": v} for i, v in zip(ids, values, strict=True)]
    response = api.post(f"/api/v1/deployments/{dep}/actuals", json={"data": rows})
    assert response.status_code == 200, response.text
    assert response.json()["rejectedCount"] == 0


@pytest.mark.parametrize("role", ["read-only", "admin"])
def test_the_page_shows_what_the_api_reports(
    api: TestClient, browser: TestClient, deployment: dict, reader_token: str, role: str
) -> None:
    dep = deployment["id"]
    rng = np.random.default_rng(3)
    n = 300
    truth = rng.normal(20, 5, n).round(3)
    ids = [f"r{i}" for i in range(n)]
    now = time.time() - 120
    champion_id = deployment["modelPackageId"]
    _post_scored(
        api, "champion", [scored_record(dep, champion_id, ids, (truth + rng.normal(0, 2, n)).tolist(), timestamp=now)]
    )
    _post_scored(api, "hostile", [scored_record(dep, HOSTILE, ids[:50], [20.0] * 50, timestamp=now)])
    _post_actuals(api, dep, ids, truth.tolist())

    log_in(browser, reader_token if role == "read-only" else ADMIN_TOKEN)
    page = browser.get(f"/ui/deployments/{dep}")
    assert page.status_code == 200
    text = page.text
    assert 'id="accuracy"' in text and "accuracy-empty" not in text
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)" in text

    report = api.get(f"/api/v1/deployments/{dep}/accuracy", params={"bucketSeconds": 3600}).json()
    assert [m["modelId"] for m in report["models"]] == [champion_id, HOSTILE]
    shown = _tables(text)
    assert list(shown) == [champion_id, HOSTILE]  # the champion first, as the API lists them
    for model in report["models"]:
        expected = {"matched": f"{model['matched']:,}"}
        expected.update({key: format_metric(value) for key, value in model["metrics"].items()})
        assert shown[model["modelId"]] == expected
    assert shown[champion_id]["matched"] == "300" and shown[HOSTILE]["matched"] == "50"
    chart = text[text.index('id="chart-accuracy-regression"') :]
    assert chart.count('<g class="series') == 2 and 'class="series s-champion"' in chart


def test_the_page_without_actuals_says_what_to_do(browser: TestClient, deployment: dict, reader_token: str) -> None:
    log_in(browser, reader_token)
    live = browser.get(f"/ui/deployments/{deployment['id']}/live?window=24h")
    assert live.status_code == 200
    assert 'id="accuracy-empty"' in live.text and "deckhand actuals upload FILE --deployment ID" in live.text
