"""Counted monitoring sources are forgotten after the retention, per control plane: two
apps in one process each keep their own pruning schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from deckhand.monitoring.records import stats_record
from deckhand.server.app import create_app
from deckhand.server.db.models import MonitoringSource, utcnow
from deckhand.server.services.monitoring.storage import SOURCE_RETENTION, SourceRetention
from deckhand.server.settings import ServerSettings
from deckhand.server.state import ControlPlane

from .conftest import ADMIN_TOKEN


@contextmanager
def _app(data_dir: Path) -> Iterator[tuple[TestClient, ControlPlane]]:
    app = create_app(ServerSettings(data_dir=data_dir, bootstrap_token=ADMIN_TOKEN))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client, app.state.control_plane


def _add_old_source(cp: ControlPlane, source_id: str) -> None:
    with cp.db.writing() as session:
        received = utcnow() - SOURCE_RETENTION - timedelta(hours=1)
        session.add(MonitoringSource(source_id=source_id, batch_id="old", received_at=received))


def _sources(cp: ControlPlane) -> set[str]:
    with cp.db.reading() as session:
        return set(session.scalars(select(MonitoringSource.source_id)))


def _post(client: TestClient, batch_id: str) -> None:
    record = stats_record("no-such-deployment", None, 1, 1.0, timestamp=time.time())
    response = client.post("/api/v1/monitoring/batches", json={"batchId": batch_id, "records": [record]})
    assert response.status_code == 200, response.text


def test_two_apps_in_one_process_prune_independently(tmp_path: Path) -> None:
    with _app(tmp_path / "a") as (api_a, cp_a), _app(tmp_path / "b") as (api_b, cp_b):
        assert cp_a.source_retention is not cp_b.source_retention
        _add_old_source(cp_a, "old-a")
        _add_old_source(cp_b, "old-b")
        _post(api_a, "a-1")
        assert _sources(cp_a) == {"a-1"}  # the first ingest prunes
        _post(api_b, "b-1")  # A pruned a moment ago; B has its own schedule
        assert _sources(cp_b) == {"b-1"}
        _add_old_source(cp_a, "old-a-2")
        _post(api_a, "a-2")  # within the hour: not again
        assert _sources(cp_a) == {"a-1", "a-2", "old-a-2"}


def test_retention_prunes_at_most_once_per_interval(tmp_path: Path) -> None:
    now = [1000.0]
    retention = SourceRetention(interval_seconds=60, clock=lambda: now[0])
    with _app(tmp_path / "data") as (_api, cp):
        with cp.db.writing() as session:
            assert retention.maybe_prune(session) is True
            assert retention.maybe_prune(session) is False
        now[0] += 59
        with cp.db.writing() as session:
            assert retention.maybe_prune(session) is False
        _add_old_source(cp, "old")
        now[0] += 1
        with cp.db.writing() as session:
            assert retention.maybe_prune(session) is True
        assert _sources(cp) == set()
