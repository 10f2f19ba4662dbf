"""Deciding and delivering: `evaluate` turns the conditions that hold into deliveries, at
most one per policy, subject and `min_interval_seconds`; `dispatch` sends the deliveries that
are due, retrying a failure with backoff up to MAX_ATTEMPTS, and records each outcome.

Both run in the control plane's background loops (`runner`), never in a request that
ingests data, so a slow or dead receiver delays nothing but its own messages. Both are safe
with several control-plane replicas: a firing is claimed by a conditional update, a delivery
by moving its `next_attempt_at` past a lease before it is sent.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from deckhand.server.db.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationFiring,
    NotificationPolicy,
    utcnow,
)
from deckhand.server.db.session import Database
from deckhand.server.services.monitoring.storage import insert_of
from deckhand.server.services.notifications import conditions, senders

log = logging.getLogger("deckhand.server.notifications")

MAX_ATTEMPTS = 6
BACKOFF_SECONDS = (5, 15, 60, 300, 900)  # before attempts 2..6
LEASE_SECONDS = 120  # a claimed delivery is not claimed again for this long (a replica died mid-send)
DISPATCH_BATCH = 50
PENDING, SENT, FAILED = "pending", "sent", "failed"


def _claim_firing(session: Session, policy: NotificationPolicy, subject: str, value: float | None) -> bool:
    """Whether this policy may notify about `subject` now: never before, or at least its
    minimum interval ago. The claim is one conditional statement, so two replicas evaluating
    at once notify once."""
    now = utcnow()
    inserted = session.scalars(
        insert_of(session)(NotificationFiring)
        .values(policy_id=policy.id, subject=subject, last_fired_at=now, last_value=value)
        .on_conflict_do_nothing(index_elements=["policy_id", "subject"])
        .returning(NotificationFiring.subject)
    ).first()
    if inserted is not None:
        return True
    result = session.execute(
        update(NotificationFiring)
        .where(
            NotificationFiring.policy_id == policy.id,
            NotificationFiring.subject == subject,
            NotificationFiring.last_fired_at <= now - timedelta(seconds=policy.min_interval_seconds),
        )
        .values(last_fired_at=now, last_value=value)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def message(
    policy: NotificationPolicy | None, observation: conditions.Observation | None, title: str
) -> dict[str, Any]:
    return {
        "title": title,
        "text": observation.text if observation else "a test message: this channel works",
        "policy": policy.name if policy else None,
        "policyId": policy.id if policy else None,
        "kind": policy.kind if policy else "test",
        "subject": observation.subject if observation else None,
        "deploymentId": observation.deployment_id if observation else None,
        "environmentId": observation.environment_id if observation else None,
        "value": observation.value if observation else None,
        "threshold": policy.settings.get("threshold") if policy else None,
        "at": utcnow().isoformat(),
    }


def evaluate(db: Database, now: float | None = None) -> int:
    """One round over every enabled policy; returns how many deliveries it queued. A policy
    whose evaluation fails is logged and skipped: the others still run."""
    queued = 0
    with db.reading() as session:
        policy_ids = list(session.scalars(select(NotificationPolicy.id).where(NotificationPolicy.enabled)))
    for policy_id in policy_ids:
        try:
            with db.writing() as session:
                policy = session.get(NotificationPolicy, policy_id)
                if policy is None or not policy.enabled:
                    continue
                for observation in conditions.observe(session, policy, now):
                    if not _claim_firing(session, policy, observation.subject, observation.value):
                        continue
                    title = f"{policy.name}: {policy.kind.replace('_', ' ')}"
                    payload = message(policy, observation, title)
                    for channel_id in policy.channel_ids:
                        session.add(
                            NotificationDelivery(
                                channel_id=channel_id, policy_id=policy.id, subject=observation.subject,
                                title=title, payload=payload, state=PENDING, attempts=0,
                                created_at=utcnow(), next_attempt_at=utcnow(),
                            )
                        )  # fmt: skip
                        queued += 1
                    log.info("event=notification_fired policy=%s subject=%s", policy.name, observation.subject)
        except Exception:
            log.exception("event=notification_policy_failed policy=%s", policy_id)
    return queued


def queue_test(session: Session, channel: NotificationChannel) -> NotificationDelivery:
    delivery = NotificationDelivery(
        channel_id=channel.id, title=f"test message to {channel.name}", payload=message(None, None, "test message"),
        state=PENDING, attempts=0, created_at=utcnow(), next_attempt_at=utcnow(),
    )  # fmt: skip
    session.add(delivery)
    session.flush()
    return delivery


def _claim(db: Database, delivery_id: int | None = None) -> list[tuple[int, str, dict, dict, dict]]:
    """Deliveries due now (or the one given), each moved past a lease: (id, kind, config,
    secrets, payload)."""
    now = utcnow()
    claimed = []
    with db.writing() as session:
        query = select(NotificationDelivery.id).where(
            NotificationDelivery.state == PENDING, NotificationDelivery.next_attempt_at <= now
        )
        if delivery_id is not None:
            query = query.where(NotificationDelivery.id == delivery_id)
        for found_id in session.scalars(query.order_by(NotificationDelivery.id).limit(DISPATCH_BATCH)):
            taken = session.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.id == found_id, NotificationDelivery.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS))
                .execution_options(synchronize_session=False)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                continue
            delivery = session.get(NotificationDelivery, found_id)
            channel = session.get(NotificationChannel, delivery.channel_id) if delivery else None
            if delivery is None or channel is None:
                continue
            claimed.append(
                (found_id, channel.kind, dict(channel.config), dict(channel.secrets), dict(delivery.payload))
            )
    return claimed


def _record(db: Database, delivery_id: int, error: str | None) -> str:
    with db.writing() as session:
        delivery = session.get(NotificationDelivery, delivery_id)
        if delivery is None:
            return FAILED
        delivery.attempts += 1
        if error is None:
            delivery.state, delivery.sent_at, delivery.last_error = SENT, utcnow(), None
        else:
            delivery.last_error = error[:2000]
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.state = FAILED
            else:
                wait = BACKOFF_SECONDS[min(delivery.attempts - 1, len(BACKOFF_SECONDS) - 1)]
                delivery.next_attempt_at = utcnow() + timedelta(seconds=wait)
        return delivery.state


def send_now(db: Database, delivery_id: int) -> None:
    """Send a delivery just queued (a test message) in this thread, and return once it was
    tried. The dispatch loop may have claimed it between the queuing and this call: then
    wait (bounded) for that attempt's outcome rather than answer before it is known."""
    if dispatch(db, delivery_id):
        return
    deadline = time.monotonic() + 2 * senders.TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with db.reading() as session:
            delivery = session.get(NotificationDelivery, delivery_id)
            if delivery is None or delivery.attempts:
                return
        time.sleep(0.05)


def dispatch(db: Database, delivery_id: int | None = None) -> int:
    """Send what is due (or the one delivery given, if due); returns how many were tried.
    The sending happens outside any transaction: no lock is held while a receiver is slow."""
    tried = 0
    for found_id, kind, config, secrets, payload in _claim(db, delivery_id):
        started = time.perf_counter()
        try:
            senders.send(kind, config, secrets, payload)
            error = None
        except senders.DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a bug or an odd config: recorded, not raised into the loop
            error = f"{type(exc).__name__}: {exc}"
        state = _record(db, found_id, error)
        tried += 1
        log.info(
            "event=notification_delivery id=%d kind=%s state=%s ms=%.0f%s",
            found_id, kind, state, (time.perf_counter() - started) * 1000, f" error={error}" if error else "",
        )  # fmt: skip
    return tried
