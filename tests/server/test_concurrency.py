"""Concurrent writers on SQLite queue instead of failing with "database is locked", and
every change still bumps the environment's revision exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deckhand.client import ControlPlaneClient
from deckhand.server.testing import ThreadedServer


def test_parallel_changes_and_reports(tmp_path: Path, demo_package: Path, admin_token: str) -> None:
    with ThreadedServer.on(tmp_path / "data", admin_token) as server:
        client = ControlPlaneClient(server.url, admin_token)
        package = client.upload_package(demo_package)
        env = client.create_environment(name="busy", platform="test")
        start_revision = env["revision"]

        def work(i: int) -> None:
            own = ControlPlaneClient(server.url, admin_token)
            dep = own.create_deployment(f"d{i}", env["id"], package["id"])
            own.report_status(env["id"], {"deployments": [{"id": dep["id"], "state": "launching"}]})
            own.deactivate(dep["id"])
            own.post_events(env["id"], [{"deploymentId": dep["id"], "action": "x", "result": "passing"}])

        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(work, range(24)))
        deployments = client.list_deployments(environment_id=env["id"])
        assert len(deployments) == 24 and not any(d["active"] for d in deployments)
        # 24 creations + 24 deactivations, each bumping the environment's revision once
        assert client.get_environment(env["id"])["revision"] == start_revision + 48
