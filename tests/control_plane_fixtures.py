"""Objects on an in-process control plane, for every suite that has an `api` fixture (a
TestClient with admin credentials; tests/server and tests/ui each define theirs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def upload(api: TestClient) -> Callable[[Path], dict]:
    """Upload a package file as admin; returns the created package."""

    def _upload(path: Path) -> dict:
        response = api.post(
            "/api/v1/model-packages",
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        return response.json()

    return _upload


@pytest.fixture
def package(upload: Callable[[Path], dict], demo_package: Path) -> dict:
    return upload(demo_package)


@pytest.fixture
def deployment(api: TestClient, environment: dict, package: dict) -> dict:
    """The demo model deployed as "iris" to the suite's `environment`."""
    response = api.post(
        "/api/v1/deployments",
        json={"name": "iris", "environmentId": environment["id"], "modelPackageId": package["id"]},
    )
    assert response.status_code == 201, response.text
    return response.json()
