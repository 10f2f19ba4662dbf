"""Each channel kind against a real receiver on loopback: the webhook's HMAC checks out, the
Slack body is Slack's, the e-mail goes over STARTTLS with a login; failures are reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from deckhand.server.services.notifications.senders import DeliveryError, send

from .receivers import SmtpReceiver, WebhookReceiver

MESSAGE = {"title": "drift on iris", "text": "PSI 0.41 > 0.2 on sepal_length", "value": 0.41}
SECRET = "a-webhook-secret-0123456789"


def test_a_webhook_is_signed_with_hmac_sha256() -> None:
    with WebhookReceiver(secret=SECRET) as receiver:
        send("webhook", {"url": receiver.url}, {"secret": SECRET}, MESSAGE)
        send("webhook", {"url": receiver.url}, {"secret": "another-secret-0123456789"}, MESSAGE)
    good, forged = receiver.received
    assert good.body == MESSAGE and good.signed is True
    assert forged.signed is False  # the receiver can tell a message signed with another key


def test_a_slack_webhook_gets_text() -> None:
    with WebhookReceiver() as receiver:
        send("slack", {}, {"url": receiver.url}, MESSAGE)
    assert receiver.received[0].body == {"text": "[deckhand] drift on iris: PSI 0.41 > 0.2 on sepal_length"}


def test_a_refusing_receiver_is_a_delivery_error_with_the_status() -> None:
    with WebhookReceiver(fail_first=1) as receiver, pytest.raises(DeliveryError, match="HTTP 503"):
        send("webhook", {"url": receiver.url}, {}, MESSAGE)


def test_email_over_starttls_with_a_login(tmp_path: Path) -> None:
    with SmtpReceiver(tmp_path) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "sender": "deckhand@example.org",
                  "recipients": ["oncall@example.org"], "username": smtp.user, "starttls": True,
                  "caFile": str(smtp.cert)}  # fmt: skip
        send("email", config, {"password": smtp.password}, MESSAGE)
        (mail,) = smtp.wait_for(1)
        assert smtp.tls_used == [True]
    assert mail["Subject"] == "[deckhand] drift on iris" and mail["To"] == "oncall@example.org"
    assert "PSI 0.41" in mail.get_payload()
    assert smtp.password not in str(mail)


def test_an_smtp_certificate_nobody_vouches_for_is_refused(tmp_path: Path) -> None:
    with SmtpReceiver(tmp_path) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "sender": "deckhand@example.org",
                  "recipients": ["oncall@example.org"], "username": smtp.user}  # fmt: skip
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED") as failure:
            send("email", config, {"password": smtp.password}, MESSAGE)
    assert smtp.password not in str(failure.value) and not smtp.messages
