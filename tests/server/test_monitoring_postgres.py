"""Monitoring ingest on a real PostgreSQL: concurrent resends of the same sources count once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from deckhand.client import ControlPlaneClient
from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import data_record, stats_record
from deckhand.server.testing import ThreadedServer

pytestmark = pytest.mark.postgres


def test_concurrent_resends_count_once_on_postgres(
    tmp_path: Path, demo_package: Path, postgres_url: str, admin_token: str
) -> None:
    with ThreadedServer.on(tmp_path / "data", admin_token, database_url=postgres_url) as server:
        client = ControlPlaneClient(server.url, admin_token)
        package = client.upload_package(demo_package)
        env = client.create_environment(name="mon-pg", platform="test")
        dep = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])["id"]
        ts = time.time() - 30
        aggregator = Aggregator()
        for source in range(20):
            for i in range(50):
                record = stats_record(dep, "m", 2, 1.0 + i, user_errors=int(i == 0), timestamp=ts)
                record.update(data_record(dep, "m", [{"sepal_length": 5.0 + i % 3}], ["setosa"], timestamp=ts))
                aggregator.add(f"src-{source}", record)
        aggregates = aggregator.drain()
        errors: list[Exception] = []

        def send(n: int) -> None:
            try:
                with ControlPlaneClient(server.url, admin_token) as c:
                    # each thread regroups the same sources into its own batches
                    for start in range(0, len(aggregates), 3 + n):
                        c.post_monitoring_batch(f"t{n}-{start}", aggregates[start : start + 3 + n])
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        totals = client.service_health(dep)["totals"]
        assert totals["requests"] == 1000 and totals["rows"] == 2000 and totals["userErrors"] == 20
        assert client.prediction_distribution(dep)["count"] == 1000
        drift = client.feature_drift(dep)
        assert [f["name"] for f in drift["features"]] == ["sepal_length"]
        client.close()


def test_concurrent_resends_count_once_per_model_on_postgres(
    tmp_path: Path, demo_package: Path, postgres_url: str, admin_token: str
) -> None:
    """The per-model tables under the same row locking: the champion's and a challenger's
    (shadow) aggregates of many sources, resent concurrently in different groupings."""
    with ThreadedServer.on(tmp_path / "data", admin_token, database_url=postgres_url) as server:
        client = ControlPlaneClient(server.url, admin_token)
        package = client.upload_package(demo_package)
        env = client.create_environment(name="mon-pg-models", platform="test")
        dep = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])["id"]
        ts = time.time() - 30
        aggregator = Aggregator()
        for source in range(20):
            for i in range(10):
                aggregator.add(f"src-{source}", stats_record(dep, package["id"], 1, 2.0, timestamp=ts))
                shadow = stats_record(dep, "challenger", 1, 3.0, system_errors=int(i == 0), timestamp=ts)
                shadow.update(shadow=True, comparedRows=1, agreedRows=int(i < 8), absDiffSum=0.5)
                aggregator.add(f"src-{source}", shadow)
        by_source: dict[str, list[dict]] = {}
        for aggregate in aggregator.drain():
            by_source.setdefault(aggregate["sourceId"], []).append(aggregate)
        sources = list(by_source.values())
        errors: list[Exception] = []

        def send(n: int) -> None:
            try:
                with ControlPlaneClient(server.url, admin_token) as c:
                    # a source's aggregates travel together, as the tracking agent sends them
                    for start in range(0, len(sources), 1 + n):
                        batch = [a for source in sources[start : start + 1 + n] for a in source]
                        c.post_monitoring_batch(f"m{n}-{start}", batch)
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert client.service_health(dep)["totals"]["requests"] == 200  # the champion's only
        found = {m["modelId"]: m for m in client.model_monitoring(dep)["models"]}
        assert found[package["id"]]["requests"] == 200 and found[package["id"]]["shadow"] is False
        challenger = found["challenger"]
        assert (challenger["requests"], challenger["systemErrors"], challenger["shadow"]) == (200, 20, True)
        assert (challenger["compared"], challenger["agreed"]) == (200, 160)
        assert challenger["meanAbsDiff"] == 0.5
        client.close()
