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
