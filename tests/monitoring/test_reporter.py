"""MonitoringReporter: batched, never blocking, buffering while the channel is down."""

from __future__ import annotations

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


def test_feature_samples_are_rate_limited() -> None:
    reporter = MonitoringReporter(GateChannel(), feature_samples_per_second=5)
    assert sum(reporter.wants_feature_sample() for _ in range(100)) <= 10  # 5 a second (a second may tick over)
    reporter.close()


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
