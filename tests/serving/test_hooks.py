"""Monitoring hook: records arrive, and a slow or broken reporter never hurts a response."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from deckhand.packages.demo import sample_rows
from deckhand.serving import hooks
from deckhand.serving.app import create_app
from deckhand.serving.config import ServeConfig
from deckhand.serving.hooks import InMemoryReporter, MonitoringConfigError, PredictionRecord


class SlowReporter:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.records: list[PredictionRecord] = []

    def submit(self, record: PredictionRecord) -> None:
        time.sleep(self.delay)
        self.records.append(record)


class BrokenReporter:
    def __init__(self) -> None:
        self.calls = 0

    def submit(self, record: PredictionRecord) -> None:
        self.calls += 1
        raise RuntimeError("channel down")


def test_records_describe_each_request(serve, demo_package: Path, client: httpx.Client) -> None:
    reporter = InMemoryReporter()
    config = ServeConfig(package=demo_package, model_id="m-7", feature_sample_rows=2)
    with serve(config, reporter=reporter) as (url, _app):
        assert client.post(f"{url}/predictions", json=sample_rows(3)).status_code == 200
        assert client.post(f"{url}/predictions", json=[{"sepal_length": 1}]).status_code == 422
        assert client.post(f"{url}/predictions", content=b"{bad").status_code == 400
        deadline = time.monotonic() + 5
        while len(reporter.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    ok, missing, bad = reporter.records
    assert (ok.deployment_id, ok.model_id, ok.rows, ok.status_code, ok.error) == ("default", "m-7", 3, 200, None)
    assert len(ok.predictions) == 3 and set(ok.predictions) <= {"setosa", "versicolor", "virginica"}
    assert ok.feature_sample == sample_rows(3)[:2]
    assert ok.class_names == ["setosa", "versicolor", "virginica"]
    assert ok.latency_ms > 0 and ok.timestamp > 0
    assert (missing.status_code, missing.error) == (422, "user")
    assert (bad.status_code, bad.error, bad.rows) == (400, "user", 0)


def test_slow_reporter_does_not_block_responses(serve, demo_package: Path, client: httpx.Client) -> None:
    reporter = SlowReporter(delay=0.5)
    with serve(ServeConfig(package=demo_package), reporter=reporter) as (url, _app):
        started = time.perf_counter()
        for _ in range(5):
            assert client.post(f"{url}/predictions", json=sample_rows(1)).status_code == 200
        elapsed = time.perf_counter() - started
    # 5 requests would take >= 2.5 s if the reporter were on the request path
    assert elapsed < 1.5, f"5 requests took {elapsed:.2f}s behind a 0.5 s reporter"


def test_raising_reporter_does_not_fail_responses(serve, demo_package: Path, client: httpx.Client) -> None:
    reporter = BrokenReporter()
    with serve(ServeConfig(package=demo_package), reporter=reporter) as (url, app):
        for _ in range(3):
            assert client.post(f"{url}/predictions", json=sample_rows(1)).status_code == 200
        deadline = time.monotonic() + 5
        while app.reporter.failed < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert reporter.calls == 3 and app.reporter.failed == 3


def test_full_queue_drops_instead_of_blocking() -> None:
    gate = threading.Event()

    class Stuck:
        def submit(self, record: PredictionRecord) -> None:
            gate.wait(5)

    front = hooks.BackgroundReporter(Stuck(), max_queue=2)
    record = PredictionRecord("d", None, 1, 1.0, 200)
    started = time.perf_counter()
    for _ in range(10):
        front.submit(record)
    assert time.perf_counter() - started < 0.1
    assert front.dropped >= 7
    gate.set()
    front.close()


def test_monitoring_is_off_by_default_and_unknown_specs_fail_at_start(
    demo_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hooks.MONITORING_ENV, raising=False)
    assert create_app(ServeConfig(package=demo_package)).reporter is None
    monkeypatch.setenv(hooks.MONITORING_ENV, "kafka://broker:9092")
    with pytest.raises(MonitoringConfigError, match="unknown channel 'kafka"):
        create_app(ServeConfig(package=demo_package))
    monkeypatch.setenv(hooks.MONITORING_ENV, "memory")
    app = create_app(ServeConfig(package=demo_package))
    assert isinstance(app.reporter.inner, InMemoryReporter)
    app.shutdown()


def test_registered_channels_are_used(demo_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def factory(rest: str) -> InMemoryReporter:
        made.append(rest)
        return InMemoryReporter()

    monkeypatch.setitem(hooks._CHANNELS, "spool", factory)
    app = create_app(ServeConfig(package=demo_package, monitoring="spool:/var/spool/deckhand"))
    assert made == ["/var/spool/deckhand"] and app.reporter is not None

    async def call() -> int:
        await app.startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return (await c.post("/predictions", json=sample_rows(1))).status_code

    assert asyncio.run(call()) == 200
    app.shutdown()
    assert len(app.reporter.inner.records) == 1
