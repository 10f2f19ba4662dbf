"""`/api/v1/notification-channels`, `/api/v1/notification-policies`,
`/api/v1/notification-deliveries` (docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from deckhand.server.auth import AdminUser, UserReader
from deckhand.server.db.models import NotificationChannel, NotificationDelivery, NotificationPolicy
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.notifications import (
    ChannelCreate,
    ChannelOut,
    ChannelUpdate,
    DeliveryOut,
    PolicyCreate,
    PolicyOut,
    PolicyUpdate,
)
from deckhand.server.services.notifications import engine
from deckhand.server.services.notifications import setup as svc
from deckhand.server.state import CP

router = APIRouter(prefix=API_PREFIX, tags=["notifications"])
CHANNELS, POLICIES = "/notification-channels", "/notification-policies"


@router.post(CHANNELS, status_code=201, response_model=ChannelOut, responses=errors(400, 403, 409))
def create_channel(body: ChannelCreate, principal: AdminUser, cp: CP) -> ChannelOut:
    """A channel; its secrets (webhook key, Slack URL, SMTP password) are stored, never shown."""
    with cp.db.writing() as session:
        return svc.channel_out(svc.create_channel(session, principal, body))


@router.get(CHANNELS, response_model=list[ChannelOut], responses=errors(403))
def list_channels(_p: UserReader, cp: CP) -> list[ChannelOut]:
    with cp.db.reading() as session:
        return [
            svc.channel_out(c) for c in session.scalars(select(NotificationChannel).order_by(NotificationChannel.name))
        ]


@router.get(CHANNELS + "/{ref}", response_model=ChannelOut, responses=errors(403, 404))
def get_channel(ref: str, _p: UserReader, cp: CP) -> ChannelOut:
    with cp.db.reading() as session:
        return svc.channel_out(svc.find_channel(session, ref))


@router.patch(CHANNELS + "/{ref}", response_model=ChannelOut, responses=errors(400, 403, 404))
def update_channel(ref: str, body: ChannelUpdate, principal: AdminUser, cp: CP) -> ChannelOut:
    with cp.db.writing() as session:
        return svc.channel_out(svc.update_channel(session, principal, ref, body))


@router.delete(CHANNELS + "/{ref}", status_code=204, responses=errors(403, 404, 409))
def delete_channel(ref: str, principal: AdminUser, cp: CP) -> Response:
    with cp.db.writing() as session:
        svc.delete_channel(session, principal, ref)
    return Response(status_code=204)


@router.post(CHANNELS + "/{ref}/test", response_model=DeliveryOut, responses=errors(403, 404))
async def test_channel(ref: str, principal: AdminUser, cp: CP) -> DeliveryOut:
    """Send a test message now and answer with its delivery: sent, or pending with the
    reason it failed (it is retried like any other)."""
    with cp.db.writing() as session:
        delivery_id = engine.queue_test(session, svc.find_channel(session, ref)).id
    await run_in_threadpool(engine.send_now, cp.db, delivery_id)
    with cp.db.reading() as session:
        return DeliveryOut.from_row(session.get(NotificationDelivery, delivery_id))


@router.post(POLICIES, status_code=201, response_model=PolicyOut, responses=errors(400, 403, 404, 409))
def create_policy(body: PolicyCreate, principal: AdminUser, cp: CP) -> PolicyOut:
    with cp.db.writing() as session:
        return svc.policy_out(svc.create_policy(session, principal, body))


@router.get(POLICIES, response_model=list[PolicyOut], responses=errors(403))
def list_policies(_p: UserReader, cp: CP) -> list[PolicyOut]:
    with cp.db.reading() as session:
        return [
            svc.policy_out(p) for p in session.scalars(select(NotificationPolicy).order_by(NotificationPolicy.name))
        ]


@router.get(POLICIES + "/{ref}", response_model=PolicyOut, responses=errors(403, 404))
def get_policy(ref: str, _p: UserReader, cp: CP) -> PolicyOut:
    with cp.db.reading() as session:
        return svc.policy_out(svc.find_policy(session, ref))


@router.patch(POLICIES + "/{ref}", response_model=PolicyOut, responses=errors(400, 403, 404))
def update_policy(ref: str, body: PolicyUpdate, principal: AdminUser, cp: CP) -> PolicyOut:
    with cp.db.writing() as session:
        return svc.policy_out(svc.update_policy(session, principal, ref, body))


@router.delete(POLICIES + "/{ref}", status_code=204, responses=errors(403, 404))
def delete_policy(ref: str, principal: AdminUser, cp: CP) -> Response:
    with cp.db.writing() as session:
        svc.delete_policy(session, principal, ref)
    return Response(status_code=204)


@router.get("/notification-deliveries", response_model=list[DeliveryOut], responses=errors(403, 404))
def list_deliveries(
    _p: UserReader,
    cp: CP,
    channel: Annotated[str | None, Query(description="A channel's id or name.")] = None,
    policy: Annotated[str | None, Query(description="A policy's id or name.")] = None,
    state: Annotated[Literal["pending", "sent", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """The newest deliveries first: what was sent, what failed and why."""
    with cp.db.reading() as session:
        return svc.deliveries(session, channel, policy, state, limit)
