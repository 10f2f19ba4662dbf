"""Fixtures for the web UI tests: a control plane app on a temp SQLite file with an
environment, a deployment of the demo model and tokens of each role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.ui.helpers import ADMIN_TOKEN, make_token

from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """The app, with admin credentials on every request (the UI tests log in separately)."""
    settings = ServerSettings(data_dir=tmp_path / "data", bootstrap_token=ADMIN_TOKEN)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.fixture
def browser(api: TestClient) -> Iterator[TestClient]:
    """A second client on the same app that behaves like a browser: cookies, no Authorization header."""
    # Not entered as a context manager: the app's lifespan belongs to `api`.
    yield TestClient(api.app, follow_redirects=False)


@pytest.fixture
def environment(api: TestClient) -> dict:
    response = api.post("/api/v1/environments", json={"name": "staging", "platform": "test", "monitoringEnabled": True})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def reader_token(api: TestClient) -> str:
    return make_token(api, "viewer", "read-only")
