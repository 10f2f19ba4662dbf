"""Fixtures for the notification tests: a control plane app over SQLite whose evaluator is
driven by the tests (`evaluate`), a demo deployment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.monitoring.conftest import ADMIN_TOKEN, make_deployment

from deckhand.server.app import create_app
from deckhand.server.services.notifications import engine
from deckhand.server.settings import ServerSettings


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    # the evaluator's own loop waits an hour: each test runs its rounds itself
    return ServerSettings(data_dir=tmp_path / "data", bootstrap_token=ADMIN_TOKEN, notify_tick_seconds=3600)


@pytest.fixture
def api(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.fixture
def evaluate(api: TestClient) -> Callable[[], int]:
    """One evaluation round, as the control plane's loop runs it; returns the deliveries queued."""
    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    return lambda: engine.evaluate(db)


@pytest.fixture
def deployment(api: TestClient, demo_package: Path) -> dict:
    return make_deployment(api, demo_package)
