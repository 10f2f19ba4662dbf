"""`deckhand serve --package`: one model over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from deckhand.packages.demo import sample_rows
from deckhand.serving.config import ServeConfig

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_json_csv_info_ping_metrics(serve, demo_package: Path, client: httpx.Client) -> None:
    with serve(ServeConfig(package=demo_package, model_id="m-1")) as (url, _app):
        assert client.get(f"{url}/ping").json() == {"message": "OK"}

        rows = sample_rows(3)
        response = client.post(f"{url}/predictions", json=rows)
        assert response.status_code == 200
        data = response.json()["data"]
        assert [d["rowId"] for d in data] == [0, 1, 2]
        for row in data:
            labels = [v["label"] for v in row["predictionValues"]]
            assert labels == ["setosa", "versicolor", "virginica"]
            best = max(row["predictionValues"], key=lambda v: v["value"])
            assert row["prediction"] == best["label"]
            assert "predictionThreshold" not in row  # multiclass

        csv_body = ",".join(FEATURES) + "\n" + "\n".join(",".join(str(r[f]) for f in FEATURES) for r in rows)
        as_csv = client.post(
            f"{url}/predict",
            content=csv_body,
            headers={"content-type": "text/csv", "accept": "text/csv"},
        )
        assert as_csv.status_code == 200 and as_csv.headers["content-type"] == "text/csv"
        lines = as_csv.text.splitlines()
        assert lines[0].startswith("rowId,prediction,setosa_PREDICTION")
        assert [line.split(",")[1] for line in lines[1:]] == [d["prediction"] for d in data]

        info = client.get(f"{url}/info").json()
        assert info["state"] == "ready" and info["modelId"] == "m-1"
        assert info["package"]["features"][0] == {"name": "sepal_length", "type": "numeric"}

        metrics = client.get(f"{url}/metrics").text
        assert 'deckhand_prediction_requests_total{deployment="default",status="200"} 2.0' in metrics
        assert 'deckhand_prediction_rows_total{deployment="default"} 6.0' in metrics


def test_errors_are_clear_and_typed(serve, demo_package: Path, client: httpx.Client) -> None:
    config = ServeConfig(package=demo_package, max_body_bytes=2000)
    with serve(config) as (url, _app):
        missing = client.post(f"{url}/predictions", json=[{"sepal_length": 1}])
        assert missing.status_code == 422 and "petal_length" in missing.json()["message"]
        not_number = client.post(f"{url}/predictions", json=[dict(sample_rows(1)[0], sepal_width="wide")])
        assert not_number.status_code == 422
        assert "row 0, feature 'sepal_width': 'wide' is not a number" in not_number.json()["message"]
        too_big = client.post(f"{url}/predictions", json=sample_rows(40))
        assert too_big.status_code == 413 and "limit of 2000" in too_big.json()["message"]
        wrong_type = client.post(f"{url}/predictions", content=b"x", headers={"content-type": "image/png"})
        assert wrong_type.status_code == 415
        assert client.get(f"{url}/nothing").status_code == 404


def test_binary_threshold(serve, binary_package: Path, client: httpx.Client) -> None:
    with serve(ServeConfig(package=binary_package)) as (url, _app):
        rows = sample_rows(5, task="binary")
        data = client.post(f"{url}/predictions", json=rows).json()["data"]
        for row in data:
            values = {v["label"]: v["value"] for v in row["predictionValues"]}
            assert row["predictionThreshold"] == 0.5
            assert row["prediction"] == ("malignant" if values["malignant"] >= 0.5 else "benign")


def test_concurrent_requests_are_batched_and_answered_right(serve, demo_package: Path, client: httpx.Client) -> None:
    rows = sample_rows(40, seed=5)
    with serve(ServeConfig(package=demo_package)) as (url, app):
        expected = [client.post(f"{url}/predictions", json=[row]).json()["data"][0] for row in rows]

        async def burst() -> list[dict]:
            async with httpx.AsyncClient(timeout=20) as aclient:

                async def all_at_once() -> list[httpx.Response]:
                    return await asyncio.gather(*(aclient.post(f"{url}/predictions", json=[row]) for row in rows))

                # the first burst opens the 40 connections; on a busy machine it may trickle in
                # one request per loop turn. The second, over open connections, arrives together.
                await all_at_once()
                responses = await all_at_once()
            return [r.json()["data"][0] for r in responses]

        got = asyncio.run(burst())
        batcher = app.repository.resolve("default").current.batcher
    # each request gets its own rows' answers back (batched BLAS may differ in the last bits)
    assert [g["prediction"] for g in got] == [e["prediction"] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert [v["value"] for v in g["predictionValues"]] == pytest.approx(
            [v["value"] for v in e["predictionValues"]], rel=1e-9, abs=1e-12
        )
    assert batcher.batched_requests > batcher.flushes, vars(batcher)  # some requests shared a predict()


def test_what_is_loaded_at_startup_is_out_of_the_collectors_sight(demo_package: Path) -> None:
    """The interpreter, libraries and first model are frozen (gc.freeze) once the server has
    started: a full collection no longer walks them in the middle of a request."""
    import gc

    from deckhand.serving.app import create_app

    gc.unfreeze()
    app = create_app(ServeConfig(package=demo_package))
    try:
        asyncio.run(app.startup())
        assert gc.get_freeze_count() > 10_000
    finally:
        app.shutdown()
        gc.unfreeze()  # the rest of this test process is not a server
