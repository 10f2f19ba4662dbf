"""The deployment page's buttons (ui/actions.py) through the real app: who sees them, what
refuses a post (CSRF token, Origin, role), and that promote, abort, challenger promotion
and rollback change the API's state and come back with a message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.ui.helpers import csrf_from, log_in

from deckhand.server.ui.csrf import CSRF_COOKIE, form_token
from deckhand.server.ui.router import COOKIE_NAME


@pytest.fixture
def candidates(upload: Callable[[Path], dict], second_package: Path) -> tuple[dict, dict]:
    """Two packages of the compatible second model: a canary and a challenger (one id each)."""
    return upload(second_package), upload(second_package)


@pytest.fixture
def canary(api: TestClient, deployment: dict, candidates: tuple[dict, dict]) -> dict:
    """`deployment` running a canary at 20 % (no gates, a step an hour away) and a challenger."""
    canary_pkg, challenger_pkg = candidates
    body = {"modelPackageId": canary_pkg["id"], "canary": {"percent": 20, "intervalSeconds": 3600}}
    response = api.post(f"/api/v1/deployments/{deployment['id']}/replace-model", json=body)
    assert response.status_code == 200, response.text
    body = {"modelPackageId": challenger_pkg["id"]}
    response = api.post(f"/api/v1/deployments/{deployment['id']}/challengers", json=body)
    assert response.status_code == 200, response.text
    return {"canary": canary_pkg, "challenger": challenger_pkg}


def _page(browser: TestClient, deployment: dict) -> str:
    response = browser.get(f"/ui/deployments/{deployment['id']}")
    assert response.status_code == 200, response.text
    return response.text


def _post(browser: TestClient, deployment: dict, action: str, data: dict, **headers: str):  # type: ignore[no-untyped-def]
    return browser.post(f"/ui/deployments/{deployment['id']}/actions/{action}", data=data, headers=headers)


def _state(api: TestClient, deployment: dict) -> dict:
    return api.get(f"/api/v1/deployments/{deployment['id']}").json()


def test_admins_see_the_buttons_and_read_only_users_do_not(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict, reader_token: str
) -> None:
    log_in(browser, reader_token)
    text = _page(browser, deployment)
    assert 'id="rollout-running" data-percent="20"' in text  # the panel shows the canary to everyone
    assert '<form class="action"' not in text  # (the logout form carries the CSRF token too)
    assert "Promote canary" not in text and "Roll back to revision" not in text

    browser.cookies.clear()
    log_in(browser, api.headers["Authorization"].split()[1])
    text = _page(browser, deployment)
    for button in ("promote-canary", "abort-canary", f"promote-challenger-{canary['challenger']['id']}"):
        assert f'id="{button}"' in text, button
    assert f"Promote challenger {canary['challenger']['name']}" in text
    assert "data-confirm=" in text  # ui.js asks first; the form posts without it too


def test_promote_canary_makes_it_the_next_revision_and_says_so(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict
) -> None:
    log_in(browser, api.headers["Authorization"].split()[1])
    response = _post(browser, deployment, "promote", {"csrf": csrf_from(_page(browser, deployment))})
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/deployments/{deployment['id']}"
    state = _state(api, deployment)
    assert state["rollout"] is None and state["modelPackageId"] == canary["canary"]["id"]

    text = browser.get(response.headers["location"]).text
    assert 'id="flash" data-kind="ok"' in text and "Promoted the canary" in text
    assert '<tr data-number="2" aria-current="true">' in text and 'id="no-running-canary"' in text
    assert 'id="rollback-1"' in text  # revision 1 can be returned to now
    ended = text[text.index('id="rollouts-ended"') :]
    assert 'data-state="promoted"' in ended and "promoted by" in ended
    assert "Promoted the canary" not in browser.get(response.headers["location"]).text  # shown once


def test_abort_canary_leaves_the_champion(api: TestClient, browser: TestClient, deployment: dict, canary: dict) -> None:
    log_in(browser, api.headers["Authorization"].split()[1])
    response = _post(browser, deployment, "abort", {"csrf": csrf_from(_page(browser, deployment))})
    assert response.status_code == 303
    state = _state(api, deployment)
    assert state["rollout"] is None and state["modelPackageId"] == deployment["modelPackageId"]
    text = browser.get(response.headers["location"]).text
    assert "Aborted the canary" in text and 'data-state="aborted"' in text
    assert api.get(f"/api/v1/deployments/{deployment['id']}/rollouts").json()[0]["state"] == "aborted"


def test_promote_challenger_and_roll_back_with_reason_and_note(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict
) -> None:
    log_in(browser, api.headers["Authorization"].split()[1])
    csrf = csrf_from(_page(browser, deployment))
    challenger = canary["challenger"]["id"]
    # While the canary runs the API refuses (409): the message says what to do.
    refused = _post(browser, deployment, f"challengers/{challenger}/promote", {"csrf": csrf})
    assert refused.status_code == 303
    text = browser.get(refused.headers["location"]).text
    assert 'id="flash" data-kind="error"' in text and "(409)" in text and "or abort it" in text
    assert _state(api, deployment)["modelPackageId"] == deployment["modelPackageId"]

    assert _post(browser, deployment, "abort", {"csrf": csrf}).status_code == 303
    page = _page(browser, deployment)  # the promote form asks for a reason and a note, as a rollback does
    form = page.split(f"challengers/{challenger}/promote")[1].split("</form>")[0]
    assert f'id="promote-challenger-{challenger}"' in form and 'name="reason"' in form and 'name="note"' in form
    promote = {"csrf": csrf, "reason": "accuracy", "note": "better on last week's actuals"}
    assert _post(browser, deployment, f"challengers/{challenger}/promote", promote).status_code == 303
    assert _state(api, deployment)["modelPackageId"] == challenger
    promoted = api.get(f"/api/v1/deployments/{deployment['id']}/revisions").json()[0]
    assert (promoted["reason"], promoted["note"]) == ("accuracy", "better on last week's actuals")
    assert api.get(f"/api/v1/deployments/{deployment['id']}/challengers").json() == []

    form = {"csrf": csrf, "revision": "1", "reason": "errors", "note": "the challenger <misbehaves>"}
    response = _post(browser, deployment, "rollback", form)
    assert response.status_code == 303
    current = api.get(f"/api/v1/deployments/{deployment['id']}/revisions").json()[0]
    assert (current["number"], current["modelPackageId"]) == (3, deployment["modelPackageId"])
    assert (current["reason"], current["note"], current["rollbackTo"]) == ("errors", "the challenger <misbehaves>", 1)
    text = browser.get(response.headers["location"]).text
    assert 'data-kind="ok"' in text and "revision 1" in text
    assert "the challenger &lt;misbehaves&gt;" in text


@pytest.mark.parametrize(
    ("form", "headers", "why"),
    [
        ({}, {}, "carried no CSRF token"),
        ({"csrf": "0" * 64}, {}, "does not belong to this session"),
        ("page", {"Origin": "https://evil.example"}, "posted from another site"),
        ("page", {"Referer": "https://evil.example/page"}, "posted from another site"),
        ("page", {"Origin": "null"}, "posted from another site"),
    ],
)
def test_a_post_without_our_token_or_origin_is_refused_and_changes_nothing(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict, form: object, headers: dict, why: str
) -> None:
    log_in(browser, api.headers["Authorization"].split()[1])
    data = {"csrf": csrf_from(_page(browser, deployment))} if form == "page" else form
    for action in ("promote", "abort", f"challengers/{canary['challenger']['id']}/promote"):
        response = _post(browser, deployment, action, data, **headers)  # type: ignore[arg-type]
        assert response.status_code == 403, action
        assert "Request refused" in response.text and why in response.text
    response = _post(browser, deployment, "rollback", {**data, "revision": "1"}, **headers)  # type: ignore[dict-item]
    assert response.status_code == 403
    state = _state(api, deployment)
    assert state["rollout"] is not None and state["modelPackageId"] == deployment["modelPackageId"]


def test_a_token_from_an_earlier_login_no_longer_works(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict
) -> None:
    admin = api.headers["Authorization"].split()[1]
    log_in(browser, admin)
    old = csrf_from(_page(browser, deployment))
    log_in(browser, admin)  # a new login gets a new nonce
    assert _post(browser, deployment, "promote", {"csrf": old}).status_code == 403
    assert _post(browser, deployment, "promote", {"csrf": csrf_from(_page(browser, deployment))}).status_code == 303


def test_read_only_posts_get_the_apis_403_as_the_message(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict, reader_token: str
) -> None:
    log_in(browser, reader_token)
    _page(browser, deployment)  # sets nothing new: login gave the nonce
    # A token made the way the page would (a read-only page has no forms to copy it from).
    csrf = form_token(browser.cookies[CSRF_COOKIE], browser.cookies[COOKIE_NAME])
    response = _post(browser, deployment, "promote", {"csrf": csrf})
    assert response.status_code == 303
    text = browser.get(response.headers["location"]).text
    assert 'data-kind="error"' in text and "(403)" in text and "needs admin" in text
    assert _state(api, deployment)["rollout"] is not None


def test_logged_out_posts_go_to_login_and_back_to_the_page(browser: TestClient, deployment: dict) -> None:
    response = _post(browser, deployment, "promote", {"csrf": "x"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login?reason=required&next=%2Fui%2Fdeployments%2F")


def test_login_sets_a_strict_httponly_csrf_cookie_and_logout_clears_it(
    api: TestClient, browser: TestClient, reader_token: str
) -> None:
    response = browser.post("/ui/login", data={"token": reader_token, "next": "/ui/deployments"})
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{CSRF_COOKIE}=")]
    assert len(cookies) == 1
    lowered = cookies[0].lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
    assert "max-age" not in lowered and "expires" not in lowered
    logout = browser.post("/ui/logout", data={"csrf": csrf_from(browser.get("/ui/deployments").text)})
    cleared = [c.lower() for c in logout.headers.get_list("set-cookie") if c.startswith(f"{CSRF_COOKIE}=")]
    assert len(cleared) == 1 and "max-age=0" in cleared[0]


def test_a_session_without_a_nonce_gets_one_with_its_next_page(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict
) -> None:
    browser.cookies.set(COOKIE_NAME, api.headers["Authorization"].split()[1], path="/ui")  # logged in before CSRF
    response = browser.get(f"/ui/deployments/{deployment['id']}")
    assert any(c.startswith(f"{CSRF_COOKIE}=") for c in response.headers.get_list("set-cookie"))
    assert _post(browser, deployment, "abort", {"csrf": csrf_from(response.text)}).status_code == 303
    assert _state(api, deployment)["rollout"] is None


def test_gates_show_their_limits_and_that_they_wait(
    api: TestClient, browser: TestClient, deployment: dict, candidates: tuple[dict, dict], reader_token: str
) -> None:
    gates = {"maxErrorRate": 0.02, "maxP99Ms": 250, "minRequests": 20}
    body = {"modelPackageId": candidates[0]["id"], "canary": {"percent": 10, "step": 30, "gates": gates}}
    assert api.post(f"/api/v1/deployments/{deployment['id']}/replace-model", json=body).status_code == 200
    log_in(browser, reader_token)
    live = browser.get(f"/ui/deployments/{deployment['id']}/live").text
    assert 'data-label="champion" data-value="90"' in live and 'data-label="canary" data-value="10"' in live
    assert "+30 % every 5 min" in live
    for gate, limit in (("maxErrorRate", "2.0%"), ("maxP99Ms", "250 ms"), ("minRequests", "20")):
        row = live[live.index(f'data-gate="{gate}"') :].split("</tr>")[0]
        assert f"<td>{limit}</td>" in row and 'data-verdict="not judged yet"' in row, row


def test_the_copy_share_form_sets_it_and_a_bad_value_gets_the_apis_message(
    api: TestClient, browser: TestClient, deployment: dict, canary: dict, reader_token: str
) -> None:
    log_in(browser, reader_token)
    text = _page(browser, deployment)
    assert 'id="copy-percent" data-value="100.0"' in text and 'id="set-copy-share"' not in text  # shown, no form

    browser.cookies.clear()
    log_in(browser, api.headers["Authorization"].split()[1])
    page = _page(browser, deployment)
    form = page.split("/actions/challenger-copies")[1].split("</form>")[0]
    assert 'name="percent"' in form and 'id="set-copy-share"' in form
    csrf = csrf_from(page)
    assert _post(browser, deployment, "challenger-copies", {"percent": "25"}).status_code == 403  # no CSRF token
    assert _state(api, deployment)["challengerCopyPercent"] == 100.0

    response = _post(browser, deployment, "challenger-copies", {"csrf": csrf, "percent": "25"})
    assert response.status_code == 303
    text = browser.get(response.headers["location"]).text
    assert 'data-kind="ok"' in text and "copies of 25 % of requests now" in text
    assert 'id="copy-percent" data-value="25.0"' in text and _state(api, deployment)["challengerCopyPercent"] == 25.0

    for bad, words in (("0", "greater than 0"), ("lots", "valid number"), ("inf", "finite number")):
        response = _post(browser, deployment, "challenger-copies", {"csrf": csrf, "percent": bad})
        text = browser.get(response.headers["location"]).text
        assert 'data-kind="error"' in text and "(422)" in text and "challengerCopyPercent" in text and words in text
    assert _state(api, deployment)["challengerCopyPercent"] == 25.0
