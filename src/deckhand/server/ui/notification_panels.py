"""Turn the notification API's JSON into the Notifications page's rows: where each channel
sends, what each policy watches, and the newest deliveries.

Channels' secrets (a webhook's HMAC key, a Slack webhook URL, an SMTP password) never reach
this code: the API keeps them back and names only which are set (`secretsSet`). A Slack
channel's only destination is its secret URL, so its row says just that one is set.

Pure functions over the documented response shapes (`GET /api/v1/notification-...`), so
they are tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deckhand.server.ui.rollout_panels import duration

# The newest deliveries the page lists.
DELIVERIES_SHOWN = 50
EVERY_DEPLOYMENT = "every deployment"
EVERY_ENVIRONMENT = "every environment"
AGENT_KIND = "agent"


@dataclass(frozen=True)
class ChannelRow:
    id: str
    name: str
    kind: str
    target: str  # where it sends: a webhook's URL, an SMTP server and its recipients
    detail: str  # how: signed or not, sender, TLS, login (which secrets are set, never their values)


@dataclass(frozen=True)
class PolicyRow:
    id: str
    name: str
    kind: str  # as the API names it: service_health, drift, ...
    scope: str  # a deployment's name, or "every deployment"
    settings: str  # key=value, ... ("" for a kind without settings)
    channels: str
    min_interval: str
    enabled: bool


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    created_at: str | None
    sent_at: str | None
    next_attempt_at: str | None
    channel: str
    title: str
    state: str
    attempts: int
    last_error: str | None


def channel_row(channel: dict[str, Any]) -> ChannelRow:
    kind = str(channel.get("kind", ""))
    config = channel.get("config") or {}
    secrets_set = set(channel.get("secretsSet") or ())
    if kind == "webhook":
        target = str(config.get("url") or "—")
        detail = "signed (HMAC-SHA256 key set)" if "secret" in secrets_set else "unsigned (no key set)"
    elif kind == "slack":  # its URL is the secret: say only whether one is set
        target = "Slack webhook (URL set)" if "url" in secrets_set else "Slack webhook (no URL set)"
        detail = ""
    elif kind == "email":
        recipients = ", ".join(str(r) for r in config.get("recipients") or ()) or "—"
        target = f"SMTP {config.get('host', '—')}:{config.get('port', '—')} to {recipients}"
        parts = [f"from {config.get('sender', '—')}", "STARTTLS" if config.get("starttls", True) else "no TLS"]
        if config.get("username"):
            password = "password set" if "password" in secrets_set else "no password set"
            parts.append(f"login {config['username']} ({password})")
        detail = ", ".join(parts)
    else:  # a kind this page does not know: nothing of its config, which might hold anything
        target, detail = "—", ""
    return ChannelRow(str(channel["id"]), str(channel["name"]), kind, target, detail)


def _setting(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def policy_row(
    policy: dict[str, Any], deployments: dict[str, str], environments: dict[str, str], channels: dict[str, str]
) -> PolicyRow:
    """`deployments`, `environments`, `channels`: names by id (an id not there is shown as is)."""
    settings = dict(policy.get("settings") or {})
    if policy.get("kind") == AGENT_KIND:  # agent policies watch environments, not deployments
        env_id = settings.pop("environmentId", None)
        scope = f"environment {environments.get(env_id, env_id)}" if env_id else EVERY_ENVIRONMENT
    else:
        dep_id = policy.get("deploymentId")
        scope = deployments.get(dep_id, dep_id) if dep_id else EVERY_DEPLOYMENT
    return PolicyRow(
        id=str(policy["id"]),
        name=str(policy["name"]),
        kind=str(policy.get("kind", "")),
        scope=str(scope),
        settings=", ".join(f"{key}={_setting(value)}" for key, value in settings.items()),
        channels=", ".join(channels.get(c, c) for c in policy.get("channelIds") or ()) or "—",
        min_interval=duration(int(policy.get("minIntervalSeconds") or 0)),
        enabled=bool(policy.get("enabled")),
    )


def delivery_row(delivery: dict[str, Any], channels: dict[str, str]) -> DeliveryRow:
    channel_id = str(delivery.get("channelId", ""))
    return DeliveryRow(
        id=int(delivery["id"]),
        created_at=delivery.get("createdAt"),
        sent_at=delivery.get("sentAt"),
        next_attempt_at=delivery.get("nextAttemptAt"),
        channel=channels.get(channel_id, channel_id),
        title=str(delivery.get("title", "")),
        state=str(delivery.get("state", "")),
        attempts=int(delivery.get("attempts") or 0),
        last_error=delivery.get("lastError"),
    )


def outcome_message(channel_name: str, delivery: dict[str, Any]) -> tuple[bool, str]:
    """What a test message's delivery (the API's answer) means for the page's message:
    (sent, text)."""
    if delivery.get("state") == "sent":
        return True, f"sent a test message to {channel_name}"
    reason = delivery.get("lastError") or "no answer yet"
    later = "retried later" if delivery.get("state") == "pending" else "given up"
    return False, f"not delivered: {reason} ({later})"
