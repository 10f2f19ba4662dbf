"""MonitoringReporter: batched, never blocking, buffering while the channel is down."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deckhand.monitoring import MonitoringReporter
from deckhand.monitoring.channels import Channel, ChannelError, Delivery, channel_from_spec
from deckhand.serving.observers import PredictionObserver, PredictionRecord, as_observer, observer_from_spec
from deckhand.testing import wait_until


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
    # Woken only by a full batch: the failed batch holds exactly 50 however slow the thread is.
    reporter = MonitoringReporter(channel, batch_size=50, flush_interval=60, max_buffer=300)
    for i in range(250):
        reporter.report_predictions_data("d1", "m1", [{"x": float(i)}], [1.0])
        reporter.report_deployment_stats("d1", "m1", 1, 1.0)
    wait_until(lambda: reporter.publish_failures >= 1, 10, what="a failed publish")
    assert reporter.dropped == 0
    for i in range(150):  # the failed batch waits aside; the buffer holds 300 data records
        reporter.report_predictions_data("d1", "m1", [{"x": float(i)}], [1.0])
    assert reporter.dropped == 50
    channel.down = False
    assert reporter.flush(15)
    data = [r for r in channel.stored if "minute" not in r]
    assert len(data) == 350 and reporter.dropped == 50
    assert _requests(channel.stored) == 250
    reporter.close()


def test_the_prediction_servers_observer_is_the_reporter(tmp_path: Path) -> None:
    reporter = observer_from_spec(f"spool:{tmp_path}")
    assert isinstance(reporter, MonitoringReporter) and isinstance(reporter, PredictionObserver)
    assert as_observer(reporter) is reporter  # takes tallies, never blocks: no queue thread in front
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


def test_requests_are_counted_per_deployment_and_minute() -> None:
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.05)
    minute = 60 * 29_395_000
    for i in range(300):  # two deployments, across a minute boundary, one error of each kind
        error = "user" if i == 7 else "system" if i == 8 else None
        reporter.count_request(f"d{i % 2}", "m", minute + 50 + i * 0.05, 2, 1.0 + i % 3, error, ["a", "b"])
    reporter.count_request("d0", "m", minute + 1.0, 1, 1.0, None, [0.5])  # a number, an earlier time
    reporter.count_request("d0", "m", minute + 2.0, 1, 1.0, None, ["a"])  # one label (the fast path)
    reporter.count_request("d1", "m", minute + 5, 3, 1.0, (2, 0))  # counts, as report_deployment_stats
    reporter.report_features("d0", "m", [{"x": 1.0}], minute + 1.0)
    assert reporter.flush(10)
    aggregates = {(r["deploymentId"], r["minute"]): r for r in channel.stored if "minute" in r}
    assert sorted(aggregates) == [("d0", minute), ("d0", minute + 60), ("d1", minute), ("d1", minute + 60)]
    assert sum(r["requests"] for r in aggregates.values()) == 303 and sum(r["rows"] for r in aggregates.values()) == 605
    assert aggregates[("d1", minute)]["userErrors"] == 1 + 2 and aggregates[("d0", minute)]["systemErrors"] == 1
    assert sum(r["userErrors"] for r in aggregates.values()) == 3  # the request's one and the pair's two
    assert aggregates[("d1", minute)]["predictions"]["cat"] == {"a": 100, "b": 100}  # i = 1, 3, ... 199
    assert aggregates[("d0", minute)]["predictions"]["cat"] == {"a": 101, "b": 100}
    assert sum(aggregates[("d0", minute)]["predictions"]["num"].values()) == 1
    assert sum(sum(r["latency"].values()) for r in aggregates.values()) == 303
    (data,) = [r for r in channel.stored if "minute" not in r]
    assert data["features"] == {"x": [1.0]} and data["ts"] == minute + 1.0
    reporter.close()


def test_requests_are_counted_per_model_and_shadow_flag() -> None:
    """The champion, a canary and a challenger of one deployment in one minute: three
    aggregates, the challenger's marked shadow and carrying its comparison sums, whether
    counted one by one or handed over as tallies."""

    class Tally:  # a prediction server's per-model tally (deckhand.serving.tally), as duck
        def __init__(self, model_id: str, shadow: bool, compared: int = 0, agreed: int = 0, diff: float = 0.0):
            self.deployment_id, self.model_id, self.minute = "d", model_id, minute
            self.requests, self.rows, self.user_errors, self.system_errors = 2, 4, 0, 1
            self.latencies, self.predictions, self.value_arrays = [0.001, 0.002], {"a": 4}, []
            self.shadow, self.compared_rows, self.agreed_rows, self.abs_diff_sum = shadow, compared, agreed, diff

    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.05)
    minute = 60 * 29_395_000
    for i in range(10):
        reporter.count_request("d", "champ", minute + i, 1, 1.0, None, ["a"])
        reporter.count_request("d", "canary", minute + i, 1, 1.0, "system" if i < 2 else None, ["b"])
        reporter.count_request("d", "chall", minute + i, 1, 1.0, None, ["a"], shadow=True, comparison=(1, i % 2, 0.0))
    reporter.count_tallies([Tally("chall", True, 4, 4, 0.5), Tally("champ", False)])
    assert reporter.flush(10)
    aggregates = {(r["modelId"], r.get("shadow", False)): r for r in channel.stored if "minute" in r}
    assert set(aggregates) == {("champ", False), ("canary", False), ("chall", True)}
    challenger, champion = aggregates[("chall", True)], aggregates[("champ", False)]
    assert (challenger["requests"], challenger["comparedRows"], challenger["agreedRows"]) == (12, 14, 9)
    assert challenger["absDiffSum"] == 0.5 and "comparedRows" not in champion
    assert champion["requests"] == 12 and champion["systemErrors"] == 1
    assert aggregates[("canary", False)]["systemErrors"] == 2
    reporter.close()


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (("", "m", 1, 1.0), "deployment_id"),
        ((None, "m", 1, 1.0), "deployment_id"),
        (("d", "m", 1.5, 1.0), "num_predictions"),
        (("d", "m", "3", 1.0), "num_predictions"),
        (("d", "m", -1, 1.0), "num_predictions"),
        (("d", "m", 1, "slow"), "execution_time_ms"),
        (("d", "m", 1, float("nan")), "execution_time_ms"),
        (("d", "m", 1, -2.0), "execution_time_ms"),
        (("d", "m", 1, 1.0, 0.5), "user_errors"),
        (("d", "m", 1, 1.0, 0, -1), "system_errors"),
    ],
)
def test_bad_statistics_are_refused_naming_the_field(arguments: tuple, field: str) -> None:
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.05)
    with pytest.raises(ValueError, match=field):
        reporter.report_deployment_stats(*arguments)
    reporter.report_deployment_stats("d", "m", np.int64(2), np.float32(1.5))  # numpy numbers are numbers
    assert reporter.flush(10)
    assert _requests(channel.stored) == 1 and reporter.dropped == 0  # nothing of the bad call was counted
    reporter.close()


def test_a_bad_prediction_record_is_refused() -> None:
    reporter = MonitoringReporter(GateChannel(), flush_interval=0.05)
    with pytest.raises(ValueError, match="error"):
        reporter.submit(PredictionRecord("d", "m", 1, 1.0, 500, error="oops"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timestamp"):
        reporter.submit(PredictionRecord("d", "m", 1, 1.0, 200, timestamp="noon"))  # type: ignore[arg-type]
    assert reporter.buffered == 0
    reporter.close()


def test_counting_from_many_threads_while_the_reporter_publishes_loses_nothing() -> None:
    """Callers count under the reporter's lock while its thread swaps the tallies out
    every millisecond: every request is published exactly once."""
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.001)
    per_thread = 20_000

    def count(name: str) -> None:
        for i in range(per_thread):
            reporter.count_request(name, "m", time.time(), 1 + i % 2, 1.0, "user" if i % 10 == 0 else None, ["a"])

    threads = [threading.Thread(target=count, args=(f"d{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reporter.flush(10)
    assert channel.publishes > 10  # the swaps really raced the callers
    aggregates = [r for r in channel.stored if "minute" in r]
    assert _requests(aggregates) == 4 * per_thread
    assert sum(r["rows"] for r in aggregates) == 4 * per_thread * 3 // 2
    assert sum(r["userErrors"] for r in aggregates) == 4 * per_thread // 10
    assert sum(r["predictions"]["cat"]["a"] for r in aggregates) == 4 * per_thread
    assert reporter.sent == 4 * per_thread
    reporter.close()


def test_statistics_stay_small_while_the_channel_is_down() -> None:
    """While nothing can be published, each minute's raw latencies and labels are compacted
    into sketches: what waits grows with deployments and minutes, not with requests. Both
    places things wait are checked: the failed batch kept for retry and the statistics
    counted after it."""
    channel = GateChannel()
    channel.down = True
    reporter = MonitoringReporter(channel, flush_interval=0.01)
    now = time.time()

    def count(first: int, last: int) -> None:
        for i in range(first, last):
            reporter.count_request("d", "m", now, 1, 0.5 + i % 1000 / 100, None, ["abc"[i % 3]])

    count(0, 25_000)
    wait_until(lambda: reporter.publish_failures >= 1, 10, what="a failed publish")  # holds the first half
    count(25_000, 50_000)
    wait_until(lambda: not reporter._live, 10, what="the second half taken by the reporter's thread")
    _, failed_batch, failed_reports = reporter._retry
    waiting = list(reporter._stats.values())
    assert 0 < failed_reports < 50_000 and len(failed_batch) == 1
    assert all(len(record["latency"]) < 200 for record in failed_batch)  # sketch buckets
    assert waiting and all(not s.latencies and not s.labels and not s.numbers for s in waiting)
    assert all(len(s.latency) < 200 for s in waiting)  # not 25,000 values
    assert reporter.buffered == 50_000 and reporter.dropped == 0
    channel.down = False
    assert reporter.flush(15)
    assert _requests(channel.stored) == 50_000
    reporter.close()


def test_publishes_once_per_interval_under_steady_traffic() -> None:
    """Statistics are never empty under traffic: publishing again at once wrote a file per
    few requests and cost more CPU than the requests themselves."""
    channel = GateChannel()
    reporter = MonitoringReporter(channel, flush_interval=0.1)
    deadline = time.monotonic() + 1.0
    submitted = 0
    while time.monotonic() < deadline:
        reporter.count_request("d", "m", time.time(), 1, 1.0, None, ["a"])
        submitted += 1
    assert reporter.flush(10)
    assert _requests(channel.stored) == submitted
    assert channel.publishes <= 15, f"{channel.publishes} publishes in 1 s at flush_interval=0.1"
    reporter.close()


def test_counting_a_request_leaves_nothing_for_the_garbage_collector() -> None:
    """A request must not leave a container the collector tracks: thousands of them,
    promoted between folds, made full collections that paused the server for 40 ms."""
    reporter = MonitoringReporter(GateChannel(), flush_interval=60)
    labels = ["a"]
    reporter.count_request("d", "m", time.time(), 1, 1.0, None, labels)  # the minute's tally
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(10_000):
            reporter.count_request("d", "m", time.time(), 1, 1.0, None, labels)
        assert gc.get_count()[0] - before < 10  # allocations of tracked objects minus frees
    finally:
        gc.enable()
    reporter.close()


def test_the_server_samples_features_at_the_reporters_rate(demo_package: Path) -> None:
    import asyncio
    import json

    from deckhand.serving.app import create_app
    from deckhand.serving.config import ServeConfig

    channel = GateChannel()
    reporter = MonitoringReporter(channel, feature_samples_per_second=5)
    app = create_app(ServeConfig(package=demo_package), observer=reporter)
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
        wait_until(lambda: reporter.publish_failures >= 1, 30, what="a failed publish")
        assert reporter.dropped == 0
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
    from deckhand.serving.observers import MonitoringConfigError

    with pytest.raises(MonitoringConfigError, match="absolute path"):
        observer_from_spec("spool:relative/dir")
