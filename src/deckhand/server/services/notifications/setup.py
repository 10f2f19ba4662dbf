"""Channels and policies: create, change, list, delete, with their secrets kept out of
every answer, event and log line."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from deckhand.server.auth import Principal
from deckhand.server.db.models import NotificationChannel, NotificationDelivery, NotificationPolicy, utcnow
from deckhand.server.errors import Conflict, InvalidField, NotFound
from deckhand.server.schemas.notifications import (
    ChannelCreate,
    ChannelFields,
    ChannelOut,
    DeliveryOut,
    PolicyCreate,
    PolicyOut,
    PolicyUpdate,
    checked_settings,
)
from deckhand.server.services.events import record_api_event
from deckhand.server.services.lookup import find_deployment

SECRET_FIELDS = {"webhook": ("secret",), "slack": ("url",), "email": ("password",)}
PUBLIC_FIELDS = {
    "webhook": ("url",),
    "slack": (),
    "email": ("host", "port", "sender", "recipients", "username", "starttls", "ca_file"),
}
CONFIG_KEYS = {"ca_file": "caFile"}


def _split(kind: str, body: ChannelFields) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields set in `body` as (config, secrets) for a channel of `kind`; a field the
    kind does not use is a 422 naming it."""
    given = body.model_dump(exclude_unset=True, exclude={"name", "kind"})
    allowed = set(PUBLIC_FIELDS[kind]) | set(SECRET_FIELDS[kind])
    for name in given:
        if name not in allowed:
            raise InvalidField(CONFIG_KEYS.get(name, name), f"not used by a {kind} channel")
    config = {CONFIG_KEYS.get(k, k): v for k, v in given.items() if k in PUBLIC_FIELDS[kind]}
    secrets = {k: v for k, v in given.items() if k in SECRET_FIELDS[kind]}
    return config, secrets


def channel_out(channel: NotificationChannel) -> ChannelOut:
    return ChannelOut(
        id=channel.id, name=channel.name, kind=channel.kind, config=dict(channel.config),
        secrets_set=sorted(k for k, v in (channel.secrets or {}).items() if v), created_at=channel.created_at,
    )  # fmt: skip


def _by_id_or_name(session: Session, table: Any, ref: str, field: str, what: str, listing: str) -> Any:
    found = session.scalars(select(table).where(or_(table.id == ref, table.name == ref))).first()
    if found is None:
        raise NotFound(f"{field}: no notification {what} {ref!r}; list them with `deckhand notifications {listing}`")
    return found


def find_channel(session: Session, ref: str, field: str = "channel") -> NotificationChannel:
    return _by_id_or_name(session, NotificationChannel, ref, field, "channel", "channels")  # type: ignore[no-any-return]


def create_channel(session: Session, principal: Principal, body: ChannelCreate) -> NotificationChannel:
    if session.scalars(select(NotificationChannel.id).where(NotificationChannel.name == body.name)).first():
        raise Conflict(f"name: a notification channel named {body.name!r} exists; pick another name")
    config, secrets = _split(body.kind, body)
    if body.kind == "email":
        config.setdefault("port", 587)
        config.setdefault("starttls", True)
    channel = NotificationChannel(
        name=body.name, kind=body.kind, config=config, secrets=secrets, created_at=utcnow(), created_by=principal.name
    )
    session.add(channel)
    session.flush()
    record_api_event(session, principal, "notification.channel.create", f"created {body.kind} channel {body.name!r}")
    return channel


def update_channel(session: Session, principal: Principal, ref: str, body: ChannelFields) -> NotificationChannel:
    channel = find_channel(session, ref)
    config, secrets = _split(channel.kind, body)
    channel.config = {**channel.config, **config}
    channel.secrets = {**channel.secrets, **secrets}
    changed = sorted([*config, *secrets])
    record_api_event(
        session, principal, "notification.channel.update", f"changed {', '.join(changed)} of channel {channel.name!r}"
    )
    return channel


def delete_channel(session: Session, principal: Principal, ref: str) -> None:
    channel = find_channel(session, ref)
    users = [p.name for p in session.scalars(select(NotificationPolicy)) if channel.id in p.channel_ids]
    if users:
        raise Conflict(f"channel: {channel.name!r} is used by the policies {users}; change or delete them first")
    session.delete(channel)
    record_api_event(session, principal, "notification.channel.delete", f"deleted channel {channel.name!r}")


def find_policy(session: Session, ref: str) -> NotificationPolicy:
    return _by_id_or_name(session, NotificationPolicy, ref, "policy", "policy", "policies")  # type: ignore[no-any-return]


def _channel_ids(session: Session, refs: list[str]) -> list[str]:
    return [find_channel(session, ref, f"channelIds[{i}]").id for i, ref in enumerate(refs)]


def _settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    try:
        return checked_settings(kind, settings)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise InvalidField(field, message) from None


def create_policy(session: Session, principal: Principal, body: PolicyCreate) -> NotificationPolicy:
    if session.scalars(select(NotificationPolicy.id).where(NotificationPolicy.name == body.name)).first():
        raise Conflict(f"name: a notification policy named {body.name!r} exists; pick another name")
    deployment_id = find_deployment(session, body.deployment_id).id if body.deployment_id else None
    policy = NotificationPolicy(
        name=body.name, kind=body.kind, deployment_id=deployment_id, settings=_settings(body.kind, body.settings),
        channel_ids=_channel_ids(session, body.channel_ids), min_interval_seconds=body.min_interval_seconds,
        enabled=body.enabled, created_at=utcnow(), created_by=principal.name,
    )  # fmt: skip
    session.add(policy)
    session.flush()
    record_api_event(
        session, principal, "notification.policy.create", f"created {body.kind} policy {body.name!r}",
        deployment_id=deployment_id,
    )  # fmt: skip
    return policy


def update_policy(session: Session, principal: Principal, ref: str, body: PolicyUpdate) -> NotificationPolicy:
    policy = find_policy(session, ref)
    if body.settings is not None:
        policy.settings = _settings(policy.kind, body.settings)
    if body.channel_ids is not None:
        policy.channel_ids = _channel_ids(session, body.channel_ids)
    if body.min_interval_seconds is not None:
        policy.min_interval_seconds = body.min_interval_seconds
    if body.enabled is not None:
        policy.enabled = body.enabled
    changed = sorted(body.model_dump(exclude_unset=True))
    record_api_event(session, principal, "notification.policy.update", f"changed {changed} of policy {policy.name!r}")
    return policy


def delete_policy(session: Session, principal: Principal, ref: str) -> None:
    policy = find_policy(session, ref)
    session.delete(policy)
    record_api_event(session, principal, "notification.policy.delete", f"deleted policy {policy.name!r}")


def policy_out(policy: NotificationPolicy) -> PolicyOut:
    return PolicyOut.from_row(policy)


def deliveries(
    session: Session, channel: str | None, policy: str | None, state: str | None, limit: int
) -> list[DeliveryOut]:
    query = select(NotificationDelivery).order_by(NotificationDelivery.id.desc()).limit(limit)
    if channel:
        query = query.where(NotificationDelivery.channel_id == find_channel(session, channel).id)
    if policy:
        query = query.where(NotificationDelivery.policy_id == find_policy(session, policy).id)
    if state:
        query = query.where(NotificationDelivery.state == state)
    return [DeliveryOut.from_row(d) for d in session.scalars(query)]
