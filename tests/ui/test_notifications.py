"""The Notifications page (`/ui/notifications`) and its "Send test message" buttons through
the real app: channels without their secrets, policies, the newest deliveries; who sees the
buttons, what refuses a post (CSRF token, Origin, role), and a test message that reaches a
real webhook receiver signed. The rows on their own: `notification_panels.py`."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from tests.notifications.receivers import WebhookReceiver
from tests.ui.helpers import ADMIN_TOKEN, csrf_from, log_in, make_token

from deckhand.server.db.models import NotificationDelivery, utcnow
from deckhand.server.ui.csrf import CSRF_COOKIE, form_token
from deckhand.server.ui.notification_panels import (
    DELIVERIES_SHOWN,
    EVERY_DEPLOYMENT,
    channel_row,
    delivery_row,
    outcome_message,
    policy_row,
)
from deckhand.server.ui.router import COOKIE_NAME

PAGE = "/ui/notifications"
HOOK_SECRET = "hook-secret-0123456789abcdef"
NEW_HOOK_SECRET = "rotated-hook-secret-0123456789"
SLACK_URL = "http://127.0.0.1:9/services/T000/B000/SLACKSECRETPART"
SMTP_PASSWORD = "smtp-password-0123456789"
SECRETS = (HOOK_SECRET, NEW_HOOK_SECRET, SLACK_URL, "SLACKSECRETPART", SMTP_PASSWORD)
DEAD_URL = "http://127.0.0.1:9/hook"  # nothing listens: connection refused at once


def _channel(api: TestClient, **body: object) -> dict:
    response = api.post("/api/v1/notification-channels", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _policy(api: TestClient, **body: object) -> dict:
    response = api.post("/api/v1/notification-policies", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _row(html: str, table: str, item_id: object) -> str:
    body = html[html.index(f'<table id="{table}">') :]
    return body[body.index(f'data-id="{item_id}"') :].split("</tr>")[0]


def _test(browser: TestClient, channel: dict, data: dict, **headers: str):  # type: ignore[no-untyped-def]
    return browser.post(f"{PAGE}/channels/{channel['id']}/actions/test", data=data, headers=headers)


def _deliveries(api: TestClient) -> list[dict]:
    response = api.get("/api/v1/notification-deliveries")
    assert response.status_code == 200, response.text
    return list(response.json())


def _flash(html: str) -> tuple[str, str]:
    found = re.search(r'id="flash" data-kind="(ok|error)" role="status">([^<]*)<', html)
    assert found, "no message on the page"
    return found.group(1), found.group(2)


@pytest.fixture
def channels(api: TestClient) -> dict[str, dict]:
    """One channel of each kind, each with its secret (the webhook's changed once)."""
    hook = _channel(api, name="hook", kind="webhook", url=DEAD_URL, secret=HOOK_SECRET)
    assert api.patch(f"/api/v1/notification-channels/{hook['id']}", json={"secret": NEW_HOOK_SECRET}).status_code == 200
    slack = _channel(api, name="team-slack", kind="slack", url=SLACK_URL)
    mail = _channel(api, name="oncall-mail", kind="email", host="smtp.example.org", port=2525, sender="d@example.org",
                    recipients=["a@example.org", "b@example.org"], username="deckhand",
                    password=SMTP_PASSWORD)  # fmt: skip
    return {"hook": hook, "slack": slack, "mail": mail}


# -- the rows, without a server ------------------------------------------------------------


def test_channel_rows_say_where_they_send_and_which_secrets_are_set() -> None:
    hook = channel_row({"id": "c1", "name": "h", "kind": "webhook", "config": {"url": DEAD_URL}, "secretsSet": []})
    assert (hook.target, hook.detail) == (DEAD_URL, "unsigned (no key set)")
    signed = channel_row({"id": "c1", "name": "h", "kind": "webhook", "config": {"url": DEAD_URL},
                          "secretsSet": ["secret"]})  # fmt: skip
    assert signed.detail == "signed (HMAC-SHA256 key set)"
    # A Slack channel's URL is its secret: even one found in its config is not shown.
    slack = channel_row({"id": "c2", "name": "s", "kind": "slack", "config": {"url": SLACK_URL}, "secretsSet": ["url"]})
    assert (slack.target, slack.detail) == ("Slack webhook (URL set)", "")
    mail = channel_row({
        "id": "c3", "name": "m", "kind": "email", "secretsSet": ["password"],
        "config": {"host": "smtp.example.org", "port": 587, "sender": "d@example.org", "recipients": ["a@x.org"],
                   "username": "deckhand", "starttls": True},
    })  # fmt: skip
    assert mail.target == "SMTP smtp.example.org:587 to a@x.org"
    assert mail.detail == "from d@example.org, STARTTLS, login deckhand (password set)"
    odd = channel_row({"id": "c4", "name": "o", "kind": "pager", "config": {"token": "x"}, "secretsSet": []})
    assert (odd.target, odd.detail) == ("—", "")


def test_policy_delivery_rows_and_the_test_message_outcome() -> None:
    base = {"id": "p1", "name": "errors", "channelIds": ["c1", "gone"], "minIntervalSeconds": 900, "enabled": True}
    one = policy_row({**base, "kind": "service_health", "deploymentId": "d1", "settings": {"threshold": 0.1}},
                     {"d1": "iris"}, {}, {"c1": "hook"})  # fmt: skip
    assert (one.scope, one.settings, one.channels) == ("iris", "threshold=0.1", "hook, gone")
    assert one.min_interval == "15 min"
    every = policy_row({**base, "kind": "drift", "deploymentId": None, "enabled": False,
                        "settings": {"threshold": 0.2, "features": ["a", "b"]}}, {}, {}, {})  # fmt: skip
    assert (every.scope, every.settings, every.enabled) == (EVERY_DEPLOYMENT, "threshold=0.2, features=[a, b]", False)
    agent = policy_row({**base, "kind": "agent", "deploymentId": None,
                        "settings": {"silentMinutes": 10, "environmentId": "e1"}}, {}, {"e1": "prod"}, {})  # fmt: skip
    assert (agent.scope, agent.settings) == ("environment prod", "silentMinutes=10")
    delivery = delivery_row({"id": 7, "channelId": "c1", "title": "t", "state": "sent", "attempts": 1}, {"c1": "hook"})
    assert (delivery.channel, delivery.state, delivery.attempts, delivery.last_error) == ("hook", "sent", 1, None)

    assert outcome_message("hook", {"state": "sent"}) == (True, "sent a test message to hook")
    pending = {"state": "pending", "lastError": "webhook: HTTP 503 ''"}
    assert outcome_message("hook", pending) == (False, "not delivered: webhook: HTTP 503 '' (retried later)")


# -- the page ------------------------------------------------------------------------------


def test_the_page_lists_channels_policies_and_deliveries_and_never_a_secret(
    api: TestClient, browser: TestClient, channels: dict[str, dict], deployment: dict, reader_token: str
) -> None:
    errors = _policy(api, name="iris-errors", kind="service_health", deploymentId=deployment["id"],
                     settings={"threshold": 0.05}, channelIds=["hook", "oncall-mail"],
                     minIntervalSeconds=600)  # fmt: skip
    failed_actions = _policy(api, name="failed-actions", kind="deployment_action", channelIds=["team-slack"],
                             enabled=False)  # fmt: skip
    # A delivery that failed on the Slack channel: its error must not carry the secret URL either.
    slack_test = api.post(f"/api/v1/notification-channels/{channels['slack']['id']}/test").json()
    assert slack_test["state"] == "pending" and "slack webhook" in slack_test["lastError"]

    for token in (ADMIN_TOKEN, reader_token):
        browser.cookies.clear()
        log_in(browser, token, PAGE)
        page = browser.get(PAGE)
        assert page.status_code == 200, page.text
        text = page.text
        for secret in SECRETS:
            assert secret not in text, secret
        assert 'id="nav-notifications" aria-current="page"' in text

        hook = _row(text, "channels", channels["hook"]["id"])
        assert ">hook<" in hook and "<td>webhook</td>" in hook and DEAD_URL in hook and "signed" in hook
        slack = _row(text, "channels", channels["slack"]["id"])
        assert "Slack webhook (URL set)" in slack and "127.0.0.1:9" not in slack
        mail = _row(text, "channels", channels["mail"]["id"])
        assert "SMTP smtp.example.org:2525 to a@example.org, b@example.org" in mail
        assert "login deckhand (password set)" in mail

        row = _row(text, "policies", errors["id"])
        assert "service health" in row and f"<td>{deployment['name']}</td>" in row
        assert "threshold=0.05" in row and "hook, oncall-mail" in row and "10 min" in row
        assert 'data-enabled="true"' in row
        row = _row(text, "policies", failed_actions["id"])
        assert f"<td>{EVERY_DEPLOYMENT}</td>" in row and 'data-enabled="false"' in row and "team-slack" in row

        row = _row(text, "deliveries", slack_test["id"])
        assert 'data-state="pending"' in row and "test message to team-slack" in row and "<td>1</td>" in row
        assert "Connection refused" in row and "UTC" in row


def test_the_page_shows_the_newest_deliveries_only(api: TestClient, browser: TestClient, reader_token: str) -> None:
    hook = _channel(api, name="hook", kind="webhook", url=DEAD_URL)
    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    with db.writing() as session:  # sent already: nothing for the dispatch loop to do
        for i in range(DELIVERIES_SHOWN + 5):
            session.add(NotificationDelivery(
                channel_id=hook["id"], title=f"message {i}", payload={}, state="sent", attempts=1,
                created_at=utcnow(), next_attempt_at=utcnow(), sent_at=utcnow(),
            ))  # fmt: skip
    log_in(browser, reader_token, PAGE)
    text = browser.get(PAGE).text
    table = text[text.index('<table id="deliveries">') : text.index("</table>", text.index('id="deliveries"'))]
    assert table.count('data-state="sent"') == DELIVERIES_SHOWN
    assert f"message {DELIVERIES_SHOWN + 4}<" in table and "message 4<" not in table  # the newest first


def test_an_empty_page_says_how_to_add_channels_and_policies(browser: TestClient, reader_token: str) -> None:
    log_in(browser, reader_token, PAGE)
    text = browser.get(PAGE).text
    assert "deckhand notifications channel-add" in text and "deckhand notifications policy-add" in text
    assert "Nothing sent yet." in text


def test_agent_tokens_get_a_403_page(api: TestClient, browser: TestClient, environment: dict) -> None:
    agent = make_token(api, "agent-1", "agent", [environment["id"]])
    browser.cookies.set(COOKIE_NAME, agent, path="/ui")  # the login form refuses agents; a planted cookie
    response = browser.get(PAGE)
    assert response.status_code == 403 and "Not allowed" in response.text


# -- the button ----------------------------------------------------------------------------


def test_admins_see_the_test_buttons_and_read_only_users_do_not(
    browser: TestClient, channels: dict[str, dict], reader_token: str
) -> None:
    log_in(browser, reader_token, PAGE)
    text = browser.get(PAGE).text
    assert '<form class="action"' not in text and "Send test message" not in text
    browser.cookies.clear()
    log_in(browser, ADMIN_TOKEN, PAGE)
    text = browser.get(PAGE).text
    for channel in channels.values():
        form = text.split(f'action="{PAGE}/channels/{channel["id"]}/actions/test"')[1].split("</form>")[0]
        assert f'id="test-{channel["id"]}">Send test message<' in form and 'name="csrf"' in form


def test_a_test_message_reaches_the_receiver_signed_and_says_so(api: TestClient, browser: TestClient) -> None:
    secret = "receiver-secret-0123456789"
    with WebhookReceiver(secret=secret) as receiver:
        hook = _channel(api, name="hook", kind="webhook", url=receiver.url, secret=secret)
        log_in(browser, ADMIN_TOKEN, PAGE)
        response = _test(browser, hook, {"csrf": csrf_from(browser.get(PAGE).text)})
    assert response.status_code == 303 and response.headers["location"] == PAGE
    (received,) = receiver.received
    assert received.signed is True and received.body["kind"] == "test"
    text = browser.get(PAGE).text
    assert _flash(text) == ("ok", "sent a test message to hook")
    (delivery,) = _deliveries(api)
    assert (delivery["state"], delivery["attempts"]) == ("sent", 1)
    row = _row(text, "deliveries", delivery["id"])
    assert 'data-state="sent"' in row and "test message to hook" in row and "sent 2" in row
    assert 'id="flash"' not in browser.get(PAGE).text  # shown once


def test_a_test_message_that_fails_says_why_and_is_retried(api: TestClient, browser: TestClient) -> None:
    with WebhookReceiver(fail_first=100) as receiver:
        hook = _channel(api, name="flaky", kind="webhook", url=receiver.url)
        log_in(browser, ADMIN_TOKEN, PAGE)
        response = _test(browser, hook, {"csrf": csrf_from(browser.get(PAGE).text)})
        assert response.status_code == 303
    kind, text = _flash(browser.get(PAGE).text)
    assert kind == "error"
    assert text.startswith("not delivered: webhook: HTTP 503") and text.endswith("(retried later)")
    (delivery,) = _deliveries(api)
    assert delivery["state"] == "pending" and delivery["nextAttemptAt"] > delivery["createdAt"]


def test_an_unknown_channel_comes_back_as_the_apis_404(browser: TestClient) -> None:
    log_in(browser, ADMIN_TOKEN, PAGE)
    csrf = csrf_from(browser.get(PAGE).text)  # the logout form's: the same session token
    response = _test(browser, {"id": "no-such-channel"}, {"csrf": csrf})
    assert response.status_code == 303
    kind, text = _flash(browser.get(PAGE).text)
    assert kind == "error" and "(404)" in text and "no-such-channel" in text


@pytest.mark.parametrize(
    ("form", "headers", "why"),
    [
        ({}, {}, "carried no CSRF token"),
        ({"csrf": "0" * 64}, {}, "does not belong to this session"),
        ("page", {"Origin": "https://evil.example"}, "posted from another site"),
        ("page", {"Referer": "https://evil.example/page"}, "posted from another site"),
    ],
)
def test_a_post_without_our_token_or_origin_is_refused_and_sends_nothing(
    api: TestClient, browser: TestClient, form: object, headers: dict, why: str
) -> None:
    hook = _channel(api, name="hook", kind="webhook", url=DEAD_URL)
    log_in(browser, ADMIN_TOKEN, PAGE)
    data = {"csrf": csrf_from(browser.get(PAGE).text)} if form == "page" else form
    response = _test(browser, hook, data, **headers)  # type: ignore[arg-type]
    assert response.status_code == 403
    assert "Request refused" in response.text and why in response.text
    assert _deliveries(api) == []


def test_a_read_only_post_is_a_403_and_sends_nothing(
    api: TestClient, browser: TestClient, channels: dict[str, dict], reader_token: str
) -> None:
    log_in(browser, reader_token, PAGE)
    # A token made the way the page would (a read-only page has no button to copy it from).
    csrf = form_token(browser.cookies[CSRF_COOKIE], browser.cookies[COOKIE_NAME])
    response = _test(browser, channels["hook"], {"csrf": csrf})
    assert response.status_code == 403
    assert "Send test message: refused (403)" in response.text and "needs admin" in response.text
    assert _deliveries(api) == []


def test_logged_out_posts_go_to_login_and_back_to_the_page(browser: TestClient, channels: dict[str, dict]) -> None:
    response = _test(browser, channels["hook"], {"csrf": "x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?reason=required&next=%2Fui%2Fnotifications"
