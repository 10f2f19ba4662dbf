"""Accuracy on a real PostgreSQL: predictions and actuals arriving at once from several
clients, overlapping and repeated, count each (prediction, actual) pair exactly once."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from deckhand.client import ControlPlaneClient
from deckhand.monitoring.records import scored_record
from deckhand.server.testing import ThreadedServer

pytestmark = pytest.mark.postgres


def test_concurrent_actuals_and_predictions_count_once_on_postgres(
    tmp_path: Path, demo_package: Path, postgres_url: str, admin_token: str
) -> None:
    with ThreadedServer.on(tmp_path / "data", admin_token, database_url=postgres_url) as server:
        client = ControlPlaneClient(server.url, admin_token)
        package = client.upload_package(demo_package)
        env = client.create_environment(name="acc-pg", platform="test")
        dep = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])["id"]
        rng = np.random.default_rng(5)
        n = 2000
        truth = rng.normal(0, 1, n).round(4)
        predicted = (truth + rng.normal(0, 0.5, n)).round(4)
        ids = [f"pg-{i}" for i in range(n)]
        ts = time.time() - 120
        scored = [scored_record(dep, "m", ids[i : i + 200], predicted[i : i + 200].tolist(), timestamp=ts)
                  for i in range(0, n, 200)]  # fmt: skip
        csv = "associationId,actualValue\n" + "".join(f"{i},{t}\n" for i, t in zip(ids, truth.tolist(), strict=True))
        errors: list[Exception] = []

        def send(k: int) -> None:
            try:
                with ControlPlaneClient(server.url, admin_token) as c:
                    if k % 2:  # actuals: the whole file, twice over the threads, in other orders
                        lines = csv.splitlines()
                        body = "\n".join([lines[0], *(lines[1:][::-1] if k == 3 else lines[1:])]) + "\n"
                        c.upload_actuals(dep, body.encode(), "text/csv")
                    else:  # predictions, each batch posted by two threads
                        for start, record in enumerate(scored):
                            c.post_monitoring_batch(f"t{k}-{start}", [record])
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        model = client.accuracy(dep)["models"][0]
        client.close()
    assert model["matched"] == n
    assert model["metrics"]["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(truth, predicted)), abs=1e-5)
    assert model["metrics"]["r2"] == pytest.approx(skm.r2_score(truth, predicted), abs=1e-5)
