"""The web UI's routes through the real app (TestClient): login, redirects, token handling, pages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from tests.ui.helpers import ADMIN_TOKEN, csrf_from, log_in, make_token

from deckhand.server.ui.router import COOKIE_NAME


def _report_ready(api: TestClient, environment: dict, deployment: dict, url: str) -> None:
    body = {
        "environment": {"status": "passing", "message": "all good"},
        "deployments": [
            {"id": deployment["id"], "state": "ready", "modelId": deployment["modelPackageId"], "predictionUrl": url}
        ],
    }
    response = api.post(f"/api/v1/agent/environments/{environment['id']}/status", json=body)
    assert response.status_code == 204, response.text


def _ingest(api: TestClient, deployment: dict, count: int, batch_id: str = "ui-test-1") -> dict:
    now = time.time()
    records = [
        {
            "deploymentId": deployment["id"],
            "modelId": deployment["modelPackageId"],
            "ts": now - i * 0.01,
            "requests": 1,
            "rows": 2,
            "latencyMs": 3.0 + i % 5,
            "userErrors": 1 if i % 10 == 0 else 0,
            "systemErrors": 0,
            "features": {"sepal_length": [5.0 + (i % 3), 6.1], "petal_width": [0.2, 1.5]},
            "predictions": ["setosa", "virginica"],
        }
        for i in range(count)
    ]
    response = api.post("/api/v1/monitoring/batches", json={"batchId": batch_id, "records": records})
    assert response.status_code == 200, response.text
    return response.json()


# -- entry points and login -------------------------------------------------------------


def test_root_and_ui_redirect_to_login_when_logged_out(browser: TestClient) -> None:
    assert browser.get("/").headers["location"] == "/ui/"
    assert browser.get("/ui/").headers["location"] == "/ui/login"
    response = browser.get("/ui/deployments/abc?window=15m")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/ui/login"
    assert parse_qs(location.query) == {"reason": ["required"], "next": ["/ui/deployments/abc?window=15m"]}
    page = browser.get(response.headers["location"])
    assert page.status_code == 200
    assert "Log in with an API token to continue." in page.text
    assert 'name="next" value="/ui/deployments/abc?window=15m"' in page.text


def test_login_sets_a_strict_httponly_cookie_and_redirects(browser: TestClient, reader_token: str) -> None:
    response = browser.post("/ui/login", data={"token": reader_token, "next": "/ui/environments"})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/environments"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/ui" in cookie.lower()
    assert "max-age" not in attributes and "expires" not in attributes  # a session cookie
    assert reader_token not in response.headers["location"]
    assert browser.get("/ui/").headers["location"] == "/ui/deployments"
    assert browser.get("/ui/environments").status_code == 200


def test_bad_token_gets_a_clear_message_and_no_cookie(browser: TestClient) -> None:
    response = browser.post("/ui/login", data={"token": "dh_not-a-real-token", "next": "/ui/deployments"})
    assert response.status_code == 401
    assert "not accepted" in response.text and "revoked or expired" in response.text
    assert "set-cookie" not in response.headers
    assert "dh_not-a-real-token" not in response.text  # the token is never echoed into the page
    empty = browser.post("/ui/login", data={"token": "  "})
    assert empty.status_code == 422 and "Enter an API token" in empty.text


def test_agent_tokens_are_refused_with_a_reason(api: TestClient, browser: TestClient, environment: dict) -> None:
    token = make_token(api, "agent-1", "agent", [environment["id"]])
    response = browser.post("/ui/login", data={"token": token})
    assert response.status_code == 403
    assert "agent token" in response.text and "admin or read-only" in response.text


def test_login_refuses_foreign_redirects_and_cross_site_posts(browser: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/api/v1/tokens", "/ui/login", "/ui/../api/v1/tokens"):
        response = browser.post("/ui/login", data={"token": ADMIN_TOKEN, "next": target})
        assert response.headers["location"] == "/ui/deployments", target
    cross = browser.post("/ui/login", data={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403


def test_revoked_token_sends_the_user_back_to_login(api: TestClient, browser: TestClient, deployment: dict) -> None:
    token = make_token(api, "short-lived", "read-only")
    log_in(browser, token)
    assert browser.get("/ui/deployments").status_code == 200
    assert api.delete("/api/v1/tokens/short-lived").status_code == 204

    # A page: back to the login form with the reason, and the dead cookie removed.
    response = browser.get(f"/ui/deployments/{deployment['id']}")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/ui/login"
    assert parse_qs(location.query) == {"reason": ["expired"], "next": [f"/ui/deployments/{deployment['id']}"]}
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert "no longer accepted" in browser.get(response.headers["location"]).text


def test_revoked_token_makes_the_live_panel_answer_401(api: TestClient, browser: TestClient, deployment: dict) -> None:
    token = make_token(api, "short-lived", "read-only")
    log_in(browser, token)
    assert browser.get(f"/ui/deployments/{deployment['id']}/live").status_code == 200
    assert api.delete("/api/v1/tokens/short-lived").status_code == 204
    fragment = browser.get(f"/ui/deployments/{deployment['id']}/live")
    assert fragment.status_code == 401  # what ui.js turns into a trip to the login page
    assert "max-age=0" in fragment.headers["set-cookie"].lower()


def test_logout_clears_the_cookie(browser: TestClient, reader_token: str) -> None:
    log_in(browser, reader_token)
    # the logout form carries the session's CSRF token: another site cannot log the user out
    forged = browser.post("/ui/logout", data={"csrf": "0" * 64})
    assert forged.status_code == 403 and "Log out: refused" in forged.text
    assert browser.post("/ui/logout").status_code == 403  # no token at all
    assert browser.get("/ui/deployments").status_code == 200  # still logged in
    response = browser.post("/ui/logout", data={"csrf": csrf_from(browser.get("/ui/deployments").text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?reason=loggedout"
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert browser.get("/ui/deployments").status_code == 303
    assert "You are logged out." in browser.get("/ui/login?reason=loggedout").text


# -- pages ------------------------------------------------------------------------------


def test_environments_page_lists_name_platform_plugin_and_status(
    api: TestClient, browser: TestClient, environment: dict, deployment: dict, reader_token: str
) -> None:
    _report_ready(api, environment, deployment, "http://127.0.0.1:9999/deployments/x/predictions")
    other = api.post("/api/v1/environments", json={"name": "prod-fs", "platform": "filesystem"}).json()
    log_in(browser, reader_token)
    page = browser.get("/ui/environments")
    assert page.status_code == 200
    text = page.text
    for env, platform, plugin, status in (
        (environment, "test", "test", "passing"),
        (other, "filesystem", "filesystem", "unknown"),
    ):
        row = text[text.index(f'data-id="{env["id"]}"') :].split("</tr>")[0]
        assert env["name"] in row and f"<td>{platform}</td>" in row and f"<td>{plugin}</td>" in row
        assert f"status-{status}" in row


def test_deployments_page_shows_state_url_model_and_last_change(
    api: TestClient, browser: TestClient, environment: dict, deployment: dict, package: dict, reader_token: str
) -> None:
    url = "http://127.0.0.1:9999/deployments/iris/predictions"
    _report_ready(api, environment, deployment, url)
    log_in(browser, reader_token)
    text = browser.get("/ui/deployments").text
    row = text[text.index(f'data-id="{deployment["id"]}"') :].split("</tr>")[0]
    assert ">iris</a>" in row and environment["name"] in row
    assert 'data-state="ready"' in row
    assert url in row
    assert package["name"] in row and package["id"] in row
    assert "UTC" in row  # last change
    filtered = browser.get(f"/ui/deployments?environment={environment['id']}").text
    assert deployment["id"] in filtered and f"in {environment['name']}" in filtered


def test_deployment_page_shows_events_and_the_burst_in_its_charts(
    api: TestClient, browser: TestClient, environment: dict, deployment: dict, reader_token: str
) -> None:
    _report_ready(api, environment, deployment, "http://127.0.0.1:9999/p")
    assert _ingest(api, deployment, 40)["accepted"] > 0
    assert _ingest(api, deployment, 40)["duplicate"]  # same batch id again: must not count twice
    log_in(browser, reader_token)
    page = browser.get(f"/ui/deployments/{deployment['id']}?window=15m")
    assert page.status_code == 200
    text = page.text
    assert 'id="total-requests" data-value="40"' in text
    assert 'id="total-rows" data-value="80"' in text
    assert 'id="total-user-errors" data-value="4"' in text
    assert 'data-series="requests" data-points="15" data-sum="40"' in text  # 15 one-minute buckets
    assert 'data-series="p50" data-points="' in text and 'data-series="p50" data-points="0"' not in text
    assert 'id="chart-drift"' in text and 'data-label="sepal_length"' in text
    assert 'id="chart-predictions"' in text
    assert 'data-action="deployment.create"' in text  # the event timeline has the API's create event
    assert f'data-live-src="/ui/deployments/{deployment["id"]}/live?window=15m"' in text

    live = browser.get(f"/ui/deployments/{deployment['id']}/live?window=15m")
    assert live.status_code == 200
    assert 'id="total-requests" data-value="40"' in live.text
    assert "<html" not in live.text  # a fragment, swapped into the page by ui.js


def test_pages_never_contain_the_token_and_send_security_headers(
    browser: TestClient, deployment: dict, reader_token: str
) -> None:
    log_in(browser, reader_token)
    for path in ("/ui/deployments", "/ui/environments", f"/ui/deployments/{deployment['id']}", "/ui/login"):
        response = browser.get(path)
        assert response.status_code == 200, path
        assert reader_token not in response.text
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text  # nothing inline


def test_unknown_deployment_is_a_404_page(browser: TestClient, reader_token: str) -> None:
    log_in(browser, reader_token)
    response = browser.get("/ui/deployments/does-not-exist")
    assert response.status_code == 404
    assert "Not found" in response.text and "does-not-exist" in response.text
    # Names from the URL come back escaped in pages, and as plain text from the live fragment.
    evil = "<img src=x onerror=alert(1)>"
    page = browser.get(f"/ui/deployments/{evil}")
    assert page.status_code == 404 and evil not in page.text and "&lt;img" in page.text
    fragment = browser.get(f"/ui/deployments/{evil}/live")
    assert fragment.status_code == 404 and fragment.headers["content-type"].startswith("text/plain")


def test_deployment_without_monitoring_data_says_so(browser: TestClient, deployment: dict, reader_token: str) -> None:
    log_in(browser, reader_token)
    text = browser.get(f"/ui/deployments/{deployment['id']}").text
    assert 'id="total-requests" data-value="0"' in text
    assert "No requests in this window yet." in text


def test_deployment_page_shows_the_model_history(
    api: TestClient,
    browser: TestClient,
    deployment: dict,
    reader_token: str,
    upload: Callable[[Path], dict],
    second_package: Path,
) -> None:
    other = upload(second_package)
    body = {"modelPackageId": other["id"], "reason": "data_drift", "note": "petals <moved>"}
    assert api.post(f"/api/v1/deployments/{deployment['id']}/replace-model", json=body).status_code == 200
    log_in(browser, reader_token)
    text = browser.get(f"/ui/deployments/{deployment['id']}").text
    history = text[text.index('<table id="revisions">') : text.index("</table>", text.index('id="revisions"'))]
    assert '<tr data-number="2" aria-current="true">' in history and '<tr data-number="1">' in history
    assert "data_drift" in history and "petals &lt;moved&gt;" in history and other["id"] in history


def test_static_files_are_served_from_the_package(browser: TestClient) -> None:
    for name, kind in (("ui.js", "javascript"), ("ui.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        response = browser.get(f"/ui/static/{name}")
        assert response.status_code == 200, name
        assert kind in response.headers["content-type"]


def test_ui_is_not_in_the_openapi_schema(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_in_process_api_calls_are_not_logged(
    browser: TestClient, deployment: dict, reader_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    log_in(browser, reader_token)
    with caplog.at_level(logging.DEBUG):
        assert browser.get(f"/ui/deployments/{deployment['id']}").status_code == 200
    assert caplog.records  # the page's own request is logged...
    assert not [r for r in caplog.records if "deckhand.internal" in r.getMessage()]  # ...its API calls are not
    assert not [r for r in caplog.records if reader_token in r.getMessage()]


@pytest.mark.parametrize(("window", "buckets"), [("15m", 15), ("1h", 60), ("6h", 72), ("24h", 96)])
def test_every_window_is_accepted_by_the_monitoring_api(
    api: TestClient, browser: TestClient, deployment: dict, reader_token: str, window: str, buckets: int
) -> None:
    _ingest(api, deployment, 5)
    log_in(browser, reader_token)
    live = browser.get(f"/ui/deployments/{deployment['id']}/live?window={window}")
    assert live.status_code == 200
    assert f'data-series="requests" data-points="{buckets}" data-sum="5"' in live.text
