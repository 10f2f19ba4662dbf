"""Helpers shared by the UI tests: tokens and logging in through the form."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

ADMIN_TOKEN = "dh_ui-test-admin-token-0123456789abcdef"


def make_token(api: TestClient, name: str, role: str, environment_ids: list[str] | None = None) -> str:
    body: dict = {"name": name, "role": role}
    if environment_ids:
        body["environmentIds"] = environment_ids
    response = api.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["token"]


def log_in(client: TestClient, token: str, next_page: str = "/ui/deployments") -> None:
    response = client.post("/ui/login", data={"token": token, "next": next_page})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_page


def csrf_from(html: str) -> str:
    """The CSRF token the page's action forms carry."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no action form with a CSRF token on the page"
    return found.group(1)
