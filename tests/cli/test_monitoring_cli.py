"""`deckhand monitoring models` against a real control plane on loopback."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cli.helpers import ADMIN, as_json

from deckhand.client import ControlPlaneClient
from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import stats_record
from deckhand.server.testing import ThreadedServer


def test_monitoring_models_table_and_json(cli, server: ThreadedServer, demo_package: Path) -> None:  # type: ignore[no-untyped-def]
    with ControlPlaneClient(server.url, ADMIN) as client:
        package = client.upload_package(demo_package)
        env = client.create_environment(name="mon", platform="test")
        dep = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])["id"]
        ts = time.time() - 30
        aggregator = Aggregator()
        for i in range(8):
            aggregator.add("s", stats_record(dep, package["id"], 1, 4.0, system_errors=int(i == 0), timestamp=ts))
            challenger = stats_record(dep, "challenger-pkg", 1, 6.0, timestamp=ts)
            challenger.update(shadow=True, comparedRows=1, agreedRows=int(i < 6), absDiffSum=0.0)
            aggregator.add("s", challenger)
        client.post_monitoring_batch("cli", aggregator.drain())
    found = as_json(cli("monitoring", "models", dep, "-o", "json"))
    by_model = {m["modelId"]: m for m in found["models"]}
    assert by_model[package["id"]]["champion"] is True and by_model[package["id"]]["errorRate"] == 0.125
    assert by_model["challenger-pkg"]["agreement"] == 0.75 and by_model["challenger-pkg"]["shadow"] is True
    table = cli("monitoring", "models", dep).stdout
    champion_line = next(line for line in table.splitlines() if package["id"] in line)
    assert "champion" in champion_line and "12.50%" in champion_line
    challenger_line = next(line for line in table.splitlines() if "challenger-pkg" in line)
    assert "shadow" in challenger_line and "75.00%" in challenger_line
    empty = as_json(cli("monitoring", "models", dep, "--start", "2020-01-01T00:00:00Z", "--end", "2020-01-01T01:00:00Z",
                        "-o", "json"))  # fmt: skip
    assert empty["models"] == []
    missing = cli("monitoring", "models", "nope", ok=False)
    assert missing.exit_code == 1 and "nope" in missing.stderr
