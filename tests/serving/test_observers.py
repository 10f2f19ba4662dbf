"""The server's monitoring observer: records arrive, and a slow or broken observer never hurts a response."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deckhand.packages.demo import sample_rows
from deckhand.serving import observers
from deckhand.serving.app import create_app
from deckhand.serving.config import ServeConfig
from deckhand.serving.observers import InMemoryObserver, MonitoringConfigError, PredictionRecord
from deckhand.testing import wait_until


class SlowObserver:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.records: list[PredictionRecord] = []

    def submit(self, record: PredictionRecord) -> None:
        time.sleep(self.delay)  # the point: an observer slower than the requests
        self.records.append(record)


class BrokenObserver:
    def __init__(self) -> None:
        self.calls = 0

    def submit(self, record: PredictionRecord) -> None:
        self.calls += 1
        raise RuntimeError("channel down")


def test_records_describe_each_request(serve, demo_package: Path, client: httpx.Client) -> None:
    observer = InMemoryObserver()
    config = ServeConfig(package=demo_package, model_id="m-7", feature_sample_rows=2)
    with serve(config, observer=observer) as (url, _app):
        assert client.post(f"{url}/predictions", json=sample_rows(3)).status_code == 200
        assert client.post(f"{url}/predictions", json=[{"sepal_length": 1}]).status_code == 422
        assert client.post(f"{url}/predictions", content=b"{bad").status_code == 400
        wait_until(lambda: len(observer.records) >= 3, 5, 0.01, what="three records observed")
    ok, missing, bad = observer.records
    assert (ok.deployment_id, ok.model_id, ok.rows, ok.status_code, ok.error) == ("default", "m-7", 3, 200, None)
    assert len(ok.predictions) == 3 and set(ok.predictions) <= {"setosa", "versicolor", "virginica"}
    assert ok.feature_sample == sample_rows(3)[:2]
    assert ok.class_names == ["setosa", "versicolor", "virginica"]
    assert ok.latency_ms > 0 and ok.timestamp > 0
    assert (missing.status_code, missing.error) == (422, "user")
    assert (bad.status_code, bad.error, bad.rows) == (400, "user", 0)


def test_slow_observer_does_not_block_responses(serve, demo_package: Path, client: httpx.Client) -> None:
    observer = SlowObserver(delay=0.5)
    with serve(ServeConfig(package=demo_package), observer=observer) as (url, _app):
        started = time.perf_counter()
        for _ in range(5):
            assert client.post(f"{url}/predictions", json=sample_rows(1)).status_code == 200
        elapsed = time.perf_counter() - started
    # 5 requests would take >= 2.5 s if the observer were on the request path
    assert elapsed < 1.5, f"5 requests took {elapsed:.2f}s behind a 0.5 s observer"


def test_raising_observer_does_not_fail_responses(serve, demo_package: Path, client: httpx.Client) -> None:
    observer = BrokenObserver()
    with serve(ServeConfig(package=demo_package), observer=observer) as (url, app):
        for _ in range(3):
            assert client.post(f"{url}/predictions", json=sample_rows(1)).status_code == 200
        wait_until(lambda: app.observer.failed >= 3, 5, 0.01, what="three failed observations")
    assert observer.calls == 3 and app.observer.failed == 3


def test_full_queue_drops_instead_of_blocking() -> None:
    gate = threading.Event()

    class Stuck:
        def submit(self, record: PredictionRecord) -> None:
            gate.wait(5)

    front = observers.BackgroundObserver(Stuck(), max_queue=2)
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
    monkeypatch.delenv(observers.MONITORING_ENV, raising=False)
    assert create_app(ServeConfig(package=demo_package)).observer is None
    monkeypatch.setenv(observers.MONITORING_ENV, "kafka://broker:9092")
    with pytest.raises(MonitoringConfigError, match="unknown channel 'kafka"):
        create_app(ServeConfig(package=demo_package))
    monkeypatch.setenv(observers.MONITORING_ENV, "memory")
    app = create_app(ServeConfig(package=demo_package))
    assert isinstance(app.observer.inner, InMemoryObserver)
    app.shutdown()


def test_registered_observer_kinds_are_used(demo_package: Path) -> None:
    made: list[str] = []

    def factory(rest: str) -> InMemoryObserver:
        made.append(rest)
        return InMemoryObserver()

    observers.OBSERVERS.register("spool", factory)
    try:
        app = create_app(ServeConfig(package=demo_package, monitoring="spool:/var/spool/deckhand"))
    finally:
        observers.OBSERVERS.unregister("spool")
    assert made == ["/var/spool/deckhand"] and app.observer is not None

    async def call() -> int:
        await app.startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return (await c.post("/predictions", json=sample_rows(1))).status_code

    assert asyncio.run(call()) == 200
    app.shutdown()
    assert len(app.observer.inner.records) == 1


class CountingObserver:
    """A PredictionObserver of the counts kind, as a third party would write one."""

    per_request = False
    feature_samples_per_second: int | None = 1000

    def __init__(self) -> None:
        self.drains: list[Any] = []
        self.requests = 0
        self.samples: list[list[dict[str, Any]]] = []
        self.closed = False

    def add_source(self, drain: Any) -> None:
        self.drains.append(drain)

    def count_tallies(self, tallies: list[Any]) -> None:
        self.requests += sum(t.requests for t in tallies)

    def report_features(self, deployment_id: str, model_id: str | None, rows: list[Any], timestamp: float) -> None:
        self.samples.append(rows)

    def submit(self, record: PredictionRecord) -> None:
        raise AssertionError("a counts observer gets no records")

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


def test_one_interface_for_both_kinds(demo_package: Path) -> None:
    counting = CountingObserver()
    assert isinstance(counting, observers.PredictionObserver)
    assert observers.as_observer(counting) is counting  # used as it is
    recording = InMemoryObserver()
    assert not isinstance(recording, observers.PredictionObserver)
    front = observers.as_observer(recording)
    assert isinstance(front, observers.BackgroundObserver) and isinstance(front, observers.PredictionObserver)
    front.close()

    app = create_app(ServeConfig(package=demo_package, feature_sample_rows=1), observer=counting)
    assert len(counting.drains) == 1  # the server's tally, drained by the observer's thread

    async def call() -> list[int]:
        await app.startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return [(await c.post("/predictions", json=sample_rows(2))).status_code for _ in range(3)]

    assert asyncio.run(call()) == [200, 200, 200]
    counting.drains[0]()
    assert counting.requests == 3 and counting.samples[0] == sample_rows(2)[:1]
    app.shutdown()
    assert counting.closed


def test_observer_kinds_installed_under_the_old_group_name_are_found(
    demo_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "obs_legacy_mod.py").write_text(
        "from deckhand.serving.observers import InMemoryObserver\ndef factory(rest):\n    return InMemoryObserver()\n"
    )
    info = tmp_path / "obs_legacy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: obs-legacy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[deckhand.monitoring_channels]\npigeon = obs_legacy_mod:factory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {e.name: e.source for e in observers.OBSERVERS.entries()}["pigeon"] == "obs-legacy"
    app = create_app(ServeConfig(package=demo_package, monitoring="pigeon:coop"))
    assert isinstance(app.observer, observers.BackgroundObserver)
    assert isinstance(app.observer.inner, InMemoryObserver)
    app.shutdown()
