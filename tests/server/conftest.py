"""Fixtures for the control-plane tests: an app on a temp SQLite file and its objects.
The demo packages and PostgreSQL come from tests/conftest.py and tests/postgres_fixtures.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings

ADMIN_TOKEN = "dh_test-admin-token-0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(data_dir=tmp_path / "data", bootstrap_token=ADMIN_TOKEN, long_poll_recheck_seconds=0.5)


@pytest.fixture
def api(settings: ServerSettings) -> Iterator[TestClient]:
    """A TestClient authenticated as admin."""
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.fixture
def environment(api: TestClient) -> dict:
    response = api.post("/api/v1/environments", json={"name": "staging", "platform": "test"})
    assert response.status_code == 201, response.text
    return response.json()


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
def admin_token() -> str:
    return ADMIN_TOKEN
