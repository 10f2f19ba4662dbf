"""Exactly-once counting across crashes: the tracking agent killed mid-batch, the control
plane killed mid-batch, RabbitMQ stopped for a while. Real processes throughout."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from deckhand.monitoring import MonitoringReporter
from deckhand.monitoring.testing import TrackingAgentProcess
from deckhand.monitoring.tracking_agent import FAILPOINT_ENV
from deckhand.testing import wait_until

from .conftest import ADMIN_TOKEN, wait_for_requests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _report(reporter: MonitoringReporter, deployment_id: str, n: int, user_errors_every: int = 10) -> None:
    for i in range(n):
        reporter.report_deployment_stats(
            deployment_id,
            "m1",
            num_predictions=3,
            execution_time_ms=1.0 + i % 50,
            user_errors=int(i % user_errors_every == 0),
        )


def _spool_files(spool: Path) -> int:
    return sum(1 for p in spool.glob("*.jsonl"))


def test_tracking_agent_killed_mid_batch_counts_exactly_once(tmp_path: Path, control_plane, cp_deployment) -> None:  # type: ignore[no-untyped-def]
    dep = cp_deployment["id"]
    spool = tmp_path / "spool"
    sent, chunks, data_records = 30_000, 60, 6_000
    reporter = MonitoringReporter(f"spool:{spool}", batch_size=500, flush_interval=0.05)
    for _ in range(chunks):  # one spool file (or more) per chunk: many sources
        _report(reporter, dep, sent // chunks)
        for i in range(data_records // chunks):  # raw data records too (features + predictions)
            reporter.report_predictions_data(dep, "m1", [{"sepal_length": 5.0 + i % 7}], ["setosa"])
        assert reporter.flush(30)
    assert reporter.dropped == 0
    reporter.close()
    assert _spool_files(spool) >= chunks

    # 1. deterministic: die right after the 2nd batch was accepted, before its ack
    agent = TrackingAgentProcess(
        f"spool:{spool}", control_plane.url, ADMIN_TOKEN, tmp_path / "agent-1.log",
        batch_size=500, extra_env={FAILPOINT_ENV: "exit-after-post:2"},
    )  # fmt: skip
    agent.start()
    assert agent.process is not None and agent.process.wait(120) == 137, agent.output()

    # 2. random SIGKILLs while it works, with a different batch size (batches regroup sources)
    rng = random.Random(4)
    for attempt in range(4):
        agent = TrackingAgentProcess(
            f"spool:{spool}", control_plane.url, ADMIN_TOKEN, tmp_path / f"agent-k{attempt}.log", batch_size=700
        )
        agent.start()
        time.sleep(rng.uniform(0.8, 2.0))  # not an event: a kill at a random moment of its work
        agent.kill()

    # 3. a last agent finishes the spool
    with TrackingAgentProcess(
        f"spool:{spool}", control_plane.url, ADMIN_TOKEN, tmp_path / "agent-final.log", batch_size=900
    ) as final:
        totals = wait_for_requests(control_plane.url, dep, sent)
        wait_until(lambda: not _spool_files(spool), 60, 0.2, what="the spool emptied")
    assert totals["requests"] == sent, (totals, final.output()[-2000:])
    assert totals["rows"] == 3 * sent
    assert totals["userErrors"] == sent // 10
    assert _spool_files(spool) == 0
    from deckhand.client.control_plane import ControlPlaneClient

    with ControlPlaneClient(control_plane.url, ADMIN_TOKEN) as client:
        predictions = client.prediction_distribution(dep)
    assert predictions["count"] == data_records  # raw records counted exactly once too
    # the resend of the batch accepted before the crash was recognised, not counted again
    import re

    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("agent-k*.log")))
    assert re.search(r"skipped_sources=[1-9]", logs), "the batch accepted before the crash was not resent"


def test_control_plane_killed_mid_batch_counts_exactly_once(tmp_path: Path, control_plane, cp_deployment) -> None:  # type: ignore[no-untyped-def]
    dep = cp_deployment["id"]
    spool = tmp_path / "spool"
    sent = 40_000
    reporter = MonitoringReporter(f"spool:{spool}", batch_size=400, flush_interval=0.05)
    # paced (not waiting for anything): the reports keep coming while the control plane is killed
    producer = threading.Thread(target=lambda: [_report(reporter, dep, 1000) or time.sleep(0.05) for _ in range(40)])
    with TrackingAgentProcess(
        f"spool:{spool}", control_plane.url, ADMIN_TOKEN, tmp_path / "agent.log", batch_size=3
    ) as agent:
        producer.start()
        for _ in range(2):
            time.sleep(1.0)  # not an event: let the agent post for a while, then kill mid-batch
            assert control_plane.process is not None
            control_plane.process.kill()  # SIGKILL mid-batch: commit or not, no answer
            control_plane.process.wait(10)
            time.sleep(1.5)  # an outage of a set length: the agent retries against a dead server
            control_plane.start()
        producer.join(120)
        assert reporter.flush(60) and reporter.dropped == 0
        totals = wait_for_requests(control_plane.url, dep, sent)
        output = agent.output()
    reporter.close()
    assert totals["requests"] == sent, (totals, output[-2000:])
    assert totals["userErrors"] == sent // 10
    assert "event=batch_post_failed" in output  # the outage was seen and ridden out


def _mixed(reporter: MonitoringReporter, deployment_id: str, n: int) -> None:
    """n statistics reports and n/5 raw data records (one prediction each)."""
    _report(reporter, deployment_id, n)
    for i in range(n // 5):
        reporter.report_predictions_data(deployment_id, "m1", [{"sepal_length": 5.0 + i % 7}], ["setosa"])


@pytest.mark.rabbitmq
def test_rabbitmq_outage_and_agent_kill_count_exactly_once(
    tmp_path: Path, rabbitmq, control_plane, cp_deployment
) -> None:  # type: ignore[no-untyped-def]
    dep = cp_deployment["id"]
    spec = rabbitmq.spec(queue=f"faults-{dep}")
    reporter = MonitoringReporter(spec, batch_size=200, flush_interval=0.05, max_buffer=200_000)
    agent = TrackingAgentProcess(spec, control_plane.url, ADMIN_TOKEN, tmp_path / "agent-1.log", batch_size=3000)
    agent.start()
    _mixed(reporter, dep, 10_000)
    time.sleep(1.5)  # not an event: the agent is killed part-way through the queue
    agent.kill()  # SIGKILL: its unacked messages go back to the queue
    _mixed(reporter, dep, 5_000)
    rabbitmq.stop()
    try:
        _mixed(reporter, dep, 10_000)  # buffered in the reporter while the broker is down
        wait_until(lambda: reporter.publish_failures >= 1, 30, what="a failed publish")
        assert reporter.dropped == 0
    finally:
        rabbitmq.start()
    sent = 25_000
    assert reporter.flush(120), reporter.stats()
    with TrackingAgentProcess(spec, control_plane.url, ADMIN_TOKEN, tmp_path / "agent-2.log", batch_size=3000) as a2:
        totals = wait_for_requests(control_plane.url, dep, sent, timeout=180)
        output = a2.output()
    reporter.close()
    assert reporter.dropped == 0
    assert totals["requests"] == sent, (totals, output[-2000:])
    assert totals["userErrors"] == sent // 10
    from deckhand.client.control_plane import ControlPlaneClient

    with ControlPlaneClient(control_plane.url, ADMIN_TOKEN) as client:
        assert client.prediction_distribution(dep)["count"] == sent // 5
