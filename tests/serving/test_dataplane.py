"""The prediction server's operations as plain Python: no HTTP, no server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from deckhand.packages import ModelInputError
from deckhand.packages.demo import sample_rows
from deckhand.serving import codecs
from deckhand.serving.config import ServeConfig
from deckhand.serving.dataplane import DataPlane, ModelNotLoaded, UnknownDeployment, predicted
from deckhand.serving.observers import InMemoryObserver, as_observer
from deckhand.serving.repository import ModelRepository


@pytest.fixture
def repository(demo_package: Path) -> Iterator[ModelRepository]:
    executor = ThreadPoolExecutor(2)
    repository = ModelRepository(executor=executor)
    assert repository.load_into(repository.entry("deployment_a", "a"), demo_package, "m-1")
    repository.entry("deployment_b", "b")  # known, nothing loaded yet
    yield repository
    executor.shutdown()


def _plane(repository: ModelRepository, **config: object) -> DataPlane:
    return DataPlane(ServeConfig(models_dir=Path("/unused"), **config), repository)  # type: ignore[arg-type]


def test_deployments_are_listed_and_found_by_directory_or_id(repository: ModelRepository) -> None:
    plane = _plane(repository)
    assert [(d["directory"], d["state"]) for d in plane.deployments()] == [
        ("deployment_a", "ready"),
        ("deployment_b", "launching"),
    ]
    assert plane.deployment("a") is plane.deployment("deployment_a")
    assert plane.info("a")["modelId"] == "m-1"
    with pytest.raises(UnknownDeployment, match=r"no deployment 'zz'; known: \['deployment_a', 'deployment_b'\]"):
        plane.info("zz")


def test_a_deployment_without_a_model_says_its_state(repository: ModelRepository) -> None:
    plane = _plane(repository)
    assert plane.loaded_model(plane.deployment("a"), "a").model_id == "m-1"
    entry = plane.deployment("b")
    entry.last_error = "bad package"
    with pytest.raises(ModelNotLoaded, match=r"deployment 'b' has no model loaded \(state errored, last error: bad"):
        plane.loaded_model(entry, "b")


def test_ready_follows_the_one_model_in_single_mode(repository: ModelRepository, demo_package: Path) -> None:
    assert _plane(repository).ready()  # multi-model: an empty or loading directory still serves
    single = DataPlane(ServeConfig(package=demo_package, deployment_id="deployment_b"), repository)
    assert not single.ready()
    assert DataPlane(ServeConfig(package=demo_package, deployment_id="deployment_a"), repository).ready()


def test_decode_predict_and_record_without_http(repository: ModelRepository) -> None:
    plane = _plane(repository)
    entry = plane.deployment("a")
    serving = plane.loaded_model(entry, "a")

    async def scenario() -> None:
        batch = await plane.decode(orjson.dumps(sample_rows(3)), "application/json", serving.manifest)
        predictions, labels = await plane.predict(serving, batch)
        assert len(predictions) == 3 and set(labels) <= {"setosa", "versicolor", "virginica"}
        plane.record(entry, serving, batch, labels, len(batch), 0.002, 200, None)

        with pytest.raises(codecs.RequestError) as caught:
            await plane.decode(b"{", "application/json", serving.manifest)
        assert caught.value.status == 400
        with pytest.raises(codecs.RequestError, match="petal_length") as caught:
            await plane.decode(orjson.dumps([{"sepal_length": 1}]), "application/json", serving.manifest)
        assert caught.value.status == 422
        wide = dict(sample_rows(1)[0], sepal_width="wide")
        bad = await plane.decode(orjson.dumps([wide]), "application/json", serving.manifest)
        with pytest.raises(ModelInputError, match="row 0, feature 'sepal_width': 'wide' is not a number"):
            await plane.predict(serving, bad)

    asyncio.run(scenario())
    text = plane.metrics_text().decode()
    assert 'deckhand_prediction_requests_total{deployment="deployment_a",status="200"} 1.0' in text
    assert 'deckhand_prediction_rows_total{deployment="deployment_a"} 3.0' in text
    assert "deckhand_models_loaded 1.0" in text


def test_large_batches_are_scored_in_chunks(repository: ModelRepository) -> None:
    plane = _plane(repository, stream_chunk_rows=4)
    serving = plane.loaded_model(plane.deployment("a"), "a")
    rows = sample_rows(10, seed=3)

    async def scenario() -> tuple[list[object], list[object]]:
        batch = await plane.decode(orjson.dumps(rows), "application/json", serving.manifest)
        chunks = await plane.predict_in_chunks(serving, batch)
        assert [len(p) for p, _ in chunks] == [4, 4, 2]
        _, whole = await plane.predict(serving, batch)
        return predicted(chunks, serving.manifest), list(whole)

    chunked, whole = asyncio.run(scenario())
    assert chunked == whole


def test_records_reach_an_observer_with_a_feature_sample(repository: ModelRepository) -> None:
    observer = InMemoryObserver()
    wrapped = as_observer(observer)
    plane = DataPlane(ServeConfig(models_dir=Path("/unused"), feature_sample_rows=2), repository, wrapped)
    entry = plane.deployment("a")
    serving = plane.loaded_model(entry, "a")

    async def scenario() -> None:
        batch = await plane.decode(orjson.dumps(sample_rows(3)), "application/json", serving.manifest)
        _, labels = await plane.predict(serving, batch)
        plane.record(entry, serving, batch, labels, 3, 0.001, 200, None)

    asyncio.run(scenario())
    assert observer.received.wait(5)
    wrapped.close(timeout=2.0)  # type: ignore[union-attr]
    record = observer.records[0]
    assert (record.deployment_id, record.model_id, record.rows, record.status_code) == ("a", "m-1", 3, 200)
    assert len(record.feature_sample) == 2 and len(record.predictions) == 3
