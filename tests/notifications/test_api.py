"""Channels and policies through the API: secrets are write-only, bad settings name their
field, a test message is sent (or its failure recorded and retried with backoff)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from deckhand.server.db.models import NotificationChannel, NotificationDelivery, utcnow
from deckhand.server.services.notifications import engine, senders

from .receivers import WebhookReceiver

SECRET = "a-webhook-secret-0123456789"
SLACK_URL = "http://127.0.0.1:9/services/T000/B000/XXXXXXXXSECRETPART"


def _channel(api: TestClient, **body: object) -> dict:
    response = api.post("/api/v1/notification-channels", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_secrets_are_write_only(api: TestClient) -> None:
    hook = _channel(api, name="hook", kind="webhook", url="http://127.0.0.1:9/hook", secret=SECRET)
    slack = _channel(api, name="slack", kind="slack", url=SLACK_URL)
    mail = _channel(api, name="mail", kind="email", host="127.0.0.1", sender="d@example.org",
                    recipients=["o@example.org"], username="deckhand", password="smtp-pass-123")  # fmt: skip
    assert hook["config"] == {"url": "http://127.0.0.1:9/hook"} and hook["secretsSet"] == ["secret"]
    assert slack["config"] == {} and slack["secretsSet"] == ["url"]
    assert mail["config"]["port"] == 587 and mail["config"]["starttls"] is True and mail["secretsSet"] == ["password"]
    changed = api.patch(f"/api/v1/notification-channels/{hook['id']}", json={"secret": "another-secret-0123456789"})
    assert changed.status_code == 200
    seen = " ".join(
        api.get(path).text
        for path in ("/api/v1/notification-channels", f"/api/v1/notification-channels/{hook['id']}", "/api/v1/events")
    )
    for secret in (SECRET, "another-secret", "SECRETPART", "smtp-pass-123"):
        assert secret not in seen


def test_bad_channels_and_policies_name_the_field(api: TestClient, deployment: dict) -> None:
    missing = api.post("/api/v1/notification-channels", json={"name": "m", "kind": "email", "sender": "a@b.org"})
    assert missing.status_code == 422 and "host" in missing.text
    stray = api.post("/api/v1/notification-channels", json={"name": "s", "kind": "webhook", "url": "http://x.org/h",
                                                             "host": "smtp.example.org"})  # fmt: skip
    assert stray.status_code == 422 and "host: not used by a webhook channel" in stray.text
    hook = _channel(api, name="hook", kind="webhook", url="http://127.0.0.1:9/hook")
    policy = {"name": "errors", "kind": "service_health", "deploymentId": deployment["id"], "channelIds": [hook["id"]]}
    no_threshold = api.post("/api/v1/notification-policies", json=policy)
    assert no_threshold.status_code == 422 and "settings.threshold" in no_threshold.text
    accuracy = {**policy, "kind": "accuracy", "settings": {"metric": "f1", "threshold": 1}}
    bad_metric = api.post("/api/v1/notification-policies", json=accuracy)
    assert bad_metric.status_code == 422 and "settings.metric" in bad_metric.text
    unknown = api.post("/api/v1/notification-policies", json={**policy, "settings": {"threshold": 0.1},
                                                               "channelIds": ["nope"]})  # fmt: skip
    assert unknown.status_code == 404 and "channelIds[0]" in unknown.text
    created = api.post("/api/v1/notification-policies", json={**policy, "settings": {"threshold": 0.1}})
    assert created.status_code == 201, created.text
    assert created.json()["settings"] == {
        "metric": "errorRate",
        "threshold": 0.1,
        "windowMinutes": 5,
        "minRequests": 10,
    }
    in_use = api.delete(f"/api/v1/notification-channels/{hook['id']}")
    assert in_use.status_code == 409 and "errors" in in_use.text


def test_a_test_message_is_sent_signed(api: TestClient) -> None:
    with WebhookReceiver(secret=SECRET) as receiver:
        hook = _channel(api, name="hook", kind="webhook", url=receiver.url, secret=SECRET)
        answer = api.post(f"/api/v1/notification-channels/{hook['name']}/test")
        assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "sent" and answer.json()["attempts"] == 1
    (received,) = receiver.received
    assert received.signed and received.body["kind"] == "test"


def test_a_test_message_the_dispatch_loop_took_first_is_waited_for(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop may claim a test message between its queuing and the route's own send: the
    answer then waits for that attempt instead of saying "pending" with no reason."""
    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    sending, send = threading.Event(), senders.send

    def slow_send(*args: object) -> None:
        sending.set()
        time.sleep(0.3)
        send(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(senders, "send", slow_send)
    with WebhookReceiver(secret=SECRET) as receiver:
        hook = _channel(api, name="hook", kind="webhook", url=receiver.url, secret=SECRET)
        with db.writing() as session:
            delivery_id = engine.queue_test(session, session.get(NotificationChannel, hook["id"])).id
        loop_round = threading.Thread(target=engine.dispatch, args=(db,))  # a round of the dispatch loop
        loop_round.start()
        assert sending.wait(10)
        engine.send_now(db, delivery_id)  # finds it claimed: waits for the loop's attempt
        with db.reading() as session:
            delivery = session.get(NotificationDelivery, delivery_id)
            assert (delivery.state, delivery.attempts) == ("sent", 1)
        loop_round.join(10)
    assert len(receiver.received) == 1 and receiver.received[0].signed


def test_a_failing_receiver_is_retried_with_backoff_then_recorded_failed(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = api.app.state.control_plane.db  # type: ignore[attr-defined]
    with WebhookReceiver(fail_first=engine.MAX_ATTEMPTS + 10) as receiver:
        hook = _channel(api, name="hook", kind="webhook", url=receiver.url)
        first = api.post(f"/api/v1/notification-channels/{hook['id']}/test").json()
        assert first["state"] == "pending" and first["attempts"] == 1 and "HTTP 503" in first["lastError"]
        assert first["nextAttemptAt"] > first["createdAt"]  # backed off, not hammered
        assert engine.dispatch(db, first["id"]) == 0  # not due yet
        monkeypatch.setattr(engine, "BACKOFF_SECONDS", (0,))
        for _ in range(10 * engine.MAX_ATTEMPTS):  # each round: due now, tried (here or by the app's loop)
            with db.writing() as session:
                delivery = session.get(NotificationDelivery, first["id"])
                if delivery.state != "pending":
                    break
                delivery.next_attempt_at = utcnow()
            engine.dispatch(db, first["id"])
    (last,) = api.get("/api/v1/notification-deliveries", params={"channel": "hook"}).json()
    assert last["state"] == "failed" and last["attempts"] == engine.MAX_ATTEMPTS and "HTTP 503" in last["lastError"]
    assert receiver.refused == engine.MAX_ATTEMPTS
