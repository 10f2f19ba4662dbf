"""MonitoringReporter: batched, never blocking, buffering while the channel is down."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from deckhand.monitoring import MonitoringReporter
from deckhand.monitoring.channels import Channel, ChannelError, Delivery, channel_from_spec
from deckhand.serving.hooks import PredictionRecord, background, reporter_from_spec


class GateChannel(Channel):
    """A channel that fails (down) or blocks until told otherwise; counts what it stored."""

    kind = "gate"

    def __init__(self) -> None:
        self.down = False
        self.release = threading.Event()
        self.release.set()
        self.stored: list[dict] = []
        self.publishes = 0

    def publish(self, records: list[dict], message_id: str | None = None) -> None:
        self.release.wait()
        if self.down:
            raise ChannelError("gate is down")
        self.publishes += 1
        self.stored.extend(records)

    def read(self, max_records: int, timeout: float) -> list[Delivery]:
        return []

    def ack(self, deliveries: list[Delivery]) -> None:
        pass

    def describe(self) -> str:
        return "gate"


def _requests(records: list[dict]) -> int:
    return sum(r.get("requests", 0) for r in records)


def test_stats_are_aggregated_and_data_batched() -> None:
    channel = GateChannel()
    reporter = MonitoringReporter(channel, batch_size=100, flush_interval=0.05)
    for i in range(1000):
        reporter.report_deployment_stats("d1", "m1", num_predictions=2, execution_time_ms=1.5, user_errors=i % 2)
    frame = pd.DataFrame({"x": [1.0, 2.0], "colour": ["red", "blue"]})
    reporter.report_predictions_data("d1", "m1", frame, [0.3, 0.9], association_ids=["a", "b"])
    assert reporter.flush(10)
    aggregates = [r for r in channel.stored if "minute" in r]
    assert 1 <= len(aggregates) <= 2  # one per minute the loop spanned
    assert _requests(aggregates) == 1000 and sum(r["rows"] for r in aggregates) == 2000
    assert sum(r["userErrors"] for r in aggregates) == 500
    assert sum(sum(r["latency"].values()) for r in aggregates) == 1000
    (data,) = [r for r in channel.stored if "minute" not in r]
    assert data["features"] == {"x": [1.0, 2.0], "colour": ["red", "blue"]}
    assert data["associationIds"] == ["a", "b"] and data["predictions"] == [0.3, 0.9]
    assert reporter.stats()["sent"] == 1001 and reporter.dropped == 0 and reporter.buffered == 0
    reporter.close()


def test_never_blocks_the_caller_when_the_channel_hangs() -> None:
    channel = GateChannel()
    channel.release.clear()  # every publish hangs
    reporter = MonitoringReporter(channel, batch_size=10, flush_interval=0.01, max_buffer=1000)
    started = time.perf_counter()
    for i in range(5000):
        reporter.report_deployment_stats("d1", "m1", 1, 1.0)
        reporter.report_predictions_data("d1", "m1", [{"x": float(i)}], [1.0])
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"10000 reports took {elapsed:.2f} s while the channel hung"
    assert 5000 - 1000 - 10 <= reporter.dropped <= 5000 - 1000  # only data beyond the bound (+ the batch in flight)
    channel.release.set()
    assert reporter.flush(10)
    data = [r for r in channel.stored if "minute" not in r]
    assert len(data) + reporter.dropped == 5000
    assert _requests(channel.stored) == 5000  # statistics are never dropped: they are aggregated
    reporter.close()


def test_buffers_while_down_and_drops_only_beyond_the_bound() -> None:
    channel = GateChannel()
    channel.down = True
    reporter = MonitoringReporter(channel, batch_size=50, flush_interval=0.01, max_buffer=300)
    for i in range(250):
        reporter.report_predictions_data("d1", "m1", [{"x": float(i)}], [1.0])
        reporter.report_deployment_stats("d1", "m1", 1, 1.0)
    time.sleep(0.3)
    assert reporter.publish_failures >= 1 and reporter.dropped == 0
    for i in range(150):  # the failed batch waits aside; the buffer holds 300 data records
        reporter.report_predictions_data("d1", "m1", [{"x": float(i)}], [1.0])
    assert reporter.dropped == 50
    channel.down = False
    assert reporter.flush(15)
    data = [r for r in channel.stored if "minute" not in r]
    assert len(data) == 350 and reporter.dropped == 50
    assert _requests(channel.stored) == 250
    reporter.close()


def test_prediction_server_hook_uses_the_reporter(tmp_path: Path) -> None:
    reporter = reporter_from_spec(f"spool:{tmp_path}")
    assert isinstance(reporter, MonitoringReporter)
    assert background(reporter) is reporter  # already non-blocking: no second queue thread
    reporter.submit(
        PredictionRecord(
            deployment_id="d1",
            model_id="m1",
            rows=2,
            latency_ms=3.0,
            status_code=422,
            error="user",
            predictions=["a", "b"],
            feature_sample=[{"x": 1.0}, {"x": 2.0}],
            class_names=["a", "b"],
        )
    )
    reporter.close()
    (delivery,) = channel_from_spec(f"spool:{tmp_path}").read(10, timeout=1)
    (aggregate,) = [r for r in delivery.records if "minute" in r]
    assert aggregate["userErrors"] == 1 and aggregate["rows"] == 2 and aggregate["requests"] == 1
    assert aggregate["predictions"] == {"cat": {"a": 1, "b": 1}}
    (data,) = [r for r in delivery.records if "minute" not in r]
    assert data["features"] == {"x": [1.0, 2.0]} and "predictions" not in data


def _request(deployment_id, timestamp, rows=1, latency_ms=1.0, error=None, predictions=(), sample=None):  # type: ignore[no-untyped-def]
    """One request as the prediction server queues it (deckhand.serving.hooks.REQUEST_FIELDS)."""
    return (deployment_id, "m", timestamp, rows, latency_ms, error, tuple(predictions), sample)


def test_requests_fold_per_deployment_and_minute() -> None:
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.05)
    minute = 60 * 29_395_000
    for i in range(300):  # two deployments, across a minute boundary, one error of each kind
        error = "user" if i == 7 else "system" if i == 8 else None
        reporter.queue_request(_request(f"d{i % 2}", minute + 50 + i * 0.05, 2, 1.0 + i % 3, error, ["a", "b"]))
    reporter.queue_request(_request("d0", minute + 1.0, predictions=[0.5], sample=[{"x": 1.0}]))  # a number, a sample
    reporter.queue_request(_request("d1", minute + 5, rows=3, error=(2, 0)))  # counts, as report_deployment_stats
    assert reporter.flush(10)
    aggregates = {(r["deploymentId"], r["minute"]): r for r in channel.stored if "minute" in r}
    assert sorted(aggregates) == [("d0", minute), ("d0", minute + 60), ("d1", minute), ("d1", minute + 60)]
    assert sum(r["requests"] for r in aggregates.values()) == 302 and sum(r["rows"] for r in aggregates.values()) == 604
    assert aggregates[("d1", minute)]["userErrors"] == 1 + 2 and aggregates[("d0", minute)]["systemErrors"] == 1
    assert sum(r["userErrors"] for r in aggregates.values()) == 3  # the request's one and the pair's two
    assert aggregates[("d1", minute)]["predictions"]["cat"] == {"a": 100, "b": 100}  # i = 1, 3, ... 199
    assert sum(aggregates[("d0", minute)]["predictions"]["num"].values()) == 1
    (data,) = [r for r in channel.stored if "minute" not in r]
    assert data["features"] == {"x": [1.0]}
    reporter.close()


def test_malformed_requests_are_dropped_and_counted_not_fatal() -> None:
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.05)
    reporter.queue_request(_request("d", 60.0, latency_ms="slow"))
    reporter.queue_request(_request("d", 60.0, rows=1.5))
    reporter.queue_request(_request("d", 60.0, error="oops"))
    reporter.queue_request(_request(None, 60.0))
    reporter.queue_request(_request("d", "noon"))
    reporter.queue_request(("d", "too short"))
    reporter.queue_request(_request("d", 60.0, predictions=["ok"]))
    assert reporter.flush(10)
    assert reporter.dropped == reporter.malformed == 6
    assert _requests(channel.stored) == 1  # the good one, and the reporter thread still runs
    reporter.queue_request(_request("d", 60.0, predictions=["ok"]))
    assert reporter.flush(10) and _requests(channel.stored) == 2
    reporter.close()


def test_publishes_once_per_interval_under_steady_traffic() -> None:
    """Statistics are never empty under traffic: publishing again at once wrote a file per
    few requests and cost more CPU than the requests themselves."""
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.1)
    deadline = time.monotonic() + 1.0
    submitted = 0
    while time.monotonic() < deadline:
        reporter.queue_request(_request("d", time.time(), predictions=["a"]))
        submitted += 1
    assert reporter.flush(10)
    assert _requests(channel.stored) == submitted
    assert channel.publishes <= 15, f"{channel.publishes} publishes in 1 s at flush_interval=0.1"
    reporter.close()


def test_queued_requests_are_left_alone_by_the_garbage_collector() -> None:
    """Queued requests must not be containers the collector tracks: thousands of them,
    promoted between folds, made full collections that paused the server for 40 ms."""
    reporter = MonitoringReporter(GateChannel(), flush_interval=60)
    reporter.queue_request(_request("d", 60.0, predictions=["a", "b"]))
    gc.collect()  # the inner tuple of predictions is untracked by the first pass, the outer by the next
    gc.collect()
    (queued,) = reporter._calls
    assert not gc.is_tracked(queued) and not gc.is_tracked(queued[6])
    reporter.close()


def test_the_server_samples_features_at_the_reporters_rate(demo_package: Path) -> None:
    import asyncio
    import json

    from deckhand.serving.app import create_app
    from deckhand.serving.config import ServeConfig

    channel = GateChannel()
    reporter = MonitoringReporter(channel, feature_samples_per_second=5)
    app = create_app(ServeConfig(package=demo_package), reporter=reporter)
    body = json.dumps([{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]).encode()
    scope = {"type": "http", "method": "POST", "path": "/predictions", "query_string": b"",
             "headers": [(b"content-type", b"application/json")]}  # fmt: skip

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        assert message.get("status", 200) == 200

    async def requests_for(seconds: float) -> int:
        await app.startup()
        count, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            await app(scope, receive, send)
            count += 1
        return count

    count = asyncio.run(requests_for(1.0))
    assert reporter.flush(10)
    samples = [r for r in channel.stored if "minute" not in r]
    assert count > 50 and 5 <= len(samples) <= 6  # evenly spaced, 1/5 s apart
    assert samples[0]["features"]["sepal_length"] == [5.1] and _requests(channel.stored) == count
    app.shutdown()


def test_reporter_argument_errors() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        MonitoringReporter(GateChannel(), batch_size=0)


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_rabbitmq_down_for_a_while_loses_nothing_within_the_bound(rabbitmq) -> None:  # type: ignore[no-untyped-def]
    spec = rabbitmq.spec(queue="t-reporter-outage")
    reporter = MonitoringReporter(spec, batch_size=100, flush_interval=0.05, max_buffer=50_000)
    for _ in range(500):
        reporter.report_deployment_stats("d1", "m1", 1, 1.0)
    assert reporter.flush(20)
    rabbitmq.stop()
    try:
        for _ in range(2000):  # while the broker is down
            reporter.report_deployment_stats("d1", "m1", 1, 1.0)
        time.sleep(1.0)
        assert reporter.publish_failures >= 1 and reporter.dropped == 0
    finally:
        rabbitmq.start()
    assert reporter.flush(60), reporter.stats()
    reporter.close()
    reader = channel_from_spec(spec)
    total = 0
    deadline = time.monotonic() + 30
    while total < 2500 and time.monotonic() < deadline:
        deliveries = reader.read(10_000, timeout=2)
        total += sum(_requests(d.records) for d in deliveries)
        reader.ack(deliveries)
    reader.close()
    assert total == 2500 and reporter.dropped == 0


def test_bad_serving_spec_is_a_clear_start_up_error() -> None:
    from deckhand.serving.hooks import MonitoringConfigError

    with pytest.raises(MonitoringConfigError, match="absolute path"):
        reporter_from_spec("spool:relative/dir")
