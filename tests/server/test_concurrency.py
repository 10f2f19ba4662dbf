"""Concurrent writers on SQLite queue instead of failing with "database is locked", and
every change still bumps the environment's revision exactly once; concurrent model
changes of one deployment get one revision number each (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deckhand.client import ControlPlaneClient, ControlPlaneError
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def test_racing_replacements_and_rollbacks_number_revisions_once_each(
    tmp_path: Path, demo_package: Path, second_package: Path, admin_token: str, database_url: str | None
) -> None:
    with ThreadedServer.on(tmp_path / "data", admin_token, database_url=database_url) as server:
        client = ControlPlaneClient(server.url, admin_token)
        packages = [client.upload_package(demo_package)["id"], client.upload_package(second_package)["id"]]
        env = client.create_environment(name="racy", platform="test")
        dep = client.create_deployment("iris", env["id"], packages[0])

        def work(i: int) -> None:
            own = ControlPlaneClient(server.url, admin_token)
            if i % 3 == 2:
                try:
                    own.rollback(dep["id"])
                except ControlPlaneError as exc:  # nothing earlier to return to, at that moment
                    assert exc.status_code == 409, exc
            else:
                own.replace_model(dep["id"], packages[i % 2], reason="errors")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(work, range(24)))
        history = client.list_revisions(dep["id"])
        assert [r["number"] for r in history] == list(range(len(history), 0, -1))
        assert [r["current"] for r in history] == [True] + [False] * (len(history) - 1)
        now = client.get_deployment(dep["id"])
        assert history[0]["modelPackageId"] == now["modelPackageId"]
        assert now["revision"] == len(history)  # each model change bumped the deployment once
        changes = [
            e for e in client.list_events(deployment_id=dep["id"], limit=1000)
            if e["action"] in ("deployment.replaceModel", "deployment.rollback")
        ]  # fmt: skip
        assert len(changes) == len(history) - 1 > 3
