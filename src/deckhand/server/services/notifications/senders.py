"""Sending one message on one channel: a webhook signed with HMAC-SHA256, a Slack-compatible
incoming webhook, or e-mail over SMTP with STARTTLS. Each raises `DeliveryError` with a
reason fit for the delivery record: never a secret in it.

A webhook body is the message as JSON. Its signature covers the timestamp and the body, so
that a receiver can refuse replays:

    X-Deckhand-Timestamp: 1764840000
    X-Deckhand-Signature: sha256=hex(HMAC-SHA256(secret, "1764840000." + body))
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

import httpx

WEBHOOK = "webhook"
SLACK = "slack"
EMAIL = "email"
KINDS = (WEBHOOK, SLACK, EMAIL)
TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-Deckhand-Signature"
TIMESTAMP_HEADER = "X-Deckhand-Timestamp"


class DeliveryError(Exception):
    """The channel did not take the message; the text says why (no secrets)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def text_of(message: dict[str, Any]) -> str:
    """The message as one line of text (Slack, the e-mail body's first line)."""
    return f"[deckhand] {message['title']}: {message['text']}"


def _post(url: str, body: bytes, headers: dict[str, str], what: str) -> None:
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 300:
        raise DeliveryError(f"{what}: HTTP {response.status_code} {response.text[:200]!r}")


def send(kind: str, config: dict[str, Any], secrets: dict[str, Any], message: dict[str, Any]) -> None:
    """Deliver `message` ({"title", "text", ...}) on a channel of `kind`."""
    if kind == WEBHOOK:
        body = json.dumps(message, sort_keys=True).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if secrets.get("secret"):
            headers[SIGNATURE_HEADER] = signature(secrets["secret"], timestamp, body)
        _post(config["url"], body, headers, "webhook")
    elif kind == SLACK:
        body = json.dumps({"text": text_of(message)}).encode("utf-8")
        _post(secrets["url"], body, {"Content-Type": "application/json"}, "slack webhook")
    elif kind == EMAIL:
        _send_email(config, secrets, message)
    else:
        raise DeliveryError(f"unknown channel kind {kind!r}")


def _send_email(config: dict[str, Any], secrets: dict[str, Any], message: dict[str, Any]) -> None:
    email = EmailMessage()
    email["Subject"] = f"[deckhand] {message['title']}"
    email["From"] = config["sender"]
    email["To"] = ", ".join(config["recipients"])
    email.set_content(text_of(message) + "\n\n" + json.dumps(message, indent=2, sort_keys=True))
    where = f"smtp {config['host']}:{config['port']}"
    try:
        with smtplib.SMTP(config["host"], int(config["port"]), timeout=TIMEOUT_SECONDS) as smtp:
            if config.get("starttls", True):
                context = ssl.create_default_context(cafile=config.get("caFile") or None)
                smtp.starttls(context=context)
            if config.get("username"):
                smtp.login(config["username"], secrets.get("password") or "")
            smtp.send_message(email)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from None
