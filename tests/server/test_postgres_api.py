"""The paths that differ most between databases, on a real PostgreSQL: bulk status
updates of 1,000 deployments, purging deleted ones, and a long poll woken by a change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from deckhand.client import ControlPlaneClient
from deckhand.server.db.models import Deployment, utcnow
from deckhand.server.db.session import Database
from deckhand.server.testing import ThreadedServer

pytestmark = pytest.mark.postgres


def test_large_environment_and_long_poll_on_postgres(
    tmp_path: Path, demo_package: Path, postgres_url: str, admin_token: str
) -> None:
    with ThreadedServer.on(tmp_path / "data", admin_token, database_url=postgres_url) as server:
        client = ControlPlaneClient(server.url, admin_token)
        package = client.upload_package(demo_package)
        env = client.create_environment(name="big", platform="test")
        db = Database(postgres_url)
        now = utcnow()
        with db.writing() as session:
            session.add_all(
                Deployment(
                    name=f"d{i:04d}",
                    environment_id=env["id"],
                    model_package_id=package["id"],
                    created_at=now,
                    updated_at=now,
                )
                for i in range(1000)
            )
        db.dispose()
        state = client.desired_state(env["id"])
        assert len(state["deployments"]) == 1000
        report = {
            "environment": {"status": "passing", "message": "1000 up"},
            "deployments": [
                {"id": d["id"], "state": "ready", "modelId": d["modelId"], "predictionUrl": "http://x"}
                for d in state["deployments"]
            ],
        }
        start = time.monotonic()
        client.report_status(env["id"], report)
        assert time.monotonic() - start < 5
        assert all(d["observed"]["state"] == "ready" for d in client.list_deployments(env["id"]))

        gone = state["deployments"][0]["id"]
        timer = threading.Timer(0.3, client.delete_deployment, args=(gone,))
        timer.start()
        newer = client.desired_state(env["id"], revision=state["revision"], timeout=20)
        timer.join()
        assert newer["revision"] == state["revision"] + 1
        assert gone not in {d["id"] for d in newer["deployments"]}
        report["deployments"] = [d for d in report["deployments"] if d["id"] != gone]
        client.report_status(env["id"], report)
        db = Database(postgres_url)
        with db.reading() as session:
            assert session.get(Deployment, gone) is None  # purged
        db.dispose()
