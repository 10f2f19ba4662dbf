"""ORM models of the control plane (SQLAlchemy 2 declarative, typed).

Every schema change goes through an Alembic migration in `migrations/versions`.
Times are stored in UTC and always returned timezone-aware.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    """A 24-hex-digit identifier (the shape of the documented system's ids)."""
    return secrets.token_hex(12)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime stored as UTC and read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    environment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class ModelPackage(Base):
    __tablename__ = "model_packages"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str] = mapped_column(String(40))
    class_labels: Mapped[list[str] | None] = mapped_column(JSON)
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class Environment(Base):
    __tablename__ = "environments"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    platform: Mapped[str] = mapped_column(String(40))
    plugin: Mapped[str] = mapped_column(String(200))
    plugin_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    key_value_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    monitoring_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str | None] = mapped_column(String(20))
    status_message: Mapped[str | None] = mapped_column(Text)
    status_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="environment", cascade="all, delete-orphan", passive_deletes=True
    )


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_environment_deleted", "environment_id", "deleted_at"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    environment_id: Mapped[str] = mapped_column(String(24), ForeignKey("environments.id", ondelete="CASCADE"))
    model_package_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("model_packages.id", ondelete="RESTRICT"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    key_value_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    observed_state: Mapped[str | None] = mapped_column(String(20))
    observed_model_id: Mapped[str | None] = mapped_column(String(100))
    observed_prediction_url: Mapped[str | None] = mapped_column(Text)
    observed_message: Mapped[str | None] = mapped_column(Text)
    observed_old_model_in_use: Mapped[bool | None] = mapped_column(Boolean)
    observed_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {"column": name or None, "generate": bool}: how rows get their association ids
    association_id: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the percent of the champion's requests copied to the challengers; None: every one
    challenger_copy_percent: Mapped[float | None] = mapped_column(Float)

    environment: Mapped[Environment] = relationship(back_populates="deployments")
    model_package: Mapped[ModelPackage] = relationship()


class DeploymentRevision(Base):
    """One model a deployment has run: revision 1 is the model it was created with, and each
    replacement or rollback adds the next number. The newest revision is the current one.

    `model_package_id` is not a foreign key: history outlives a deleted package (a rollback to
    it is then refused, naming the missing package). Rows go with their deployment's row.
    """

    __tablename__ = "deployment_revisions"

    deployment_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_package_id: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(20))  # None for revision 1 (nothing replaced)
    note: Mapped[str] = mapped_column(Text, default="")
    rollback_to: Mapped[int | None] = mapped_column(Integer)  # the revision a rollback returned to


class DeploymentRollout(Base):
    """A canary: `model_package_id` takes `percent` of the deployment's traffic next to the
    champion (`from_package_id`), steps up by `step` every `interval_seconds` while the gates
    hold, and ends promoted (a new revision), rolled back (a gate failed) or aborted (by hand).

    At most one rollout of a deployment is `running` (the rollouts service checks it under the
    deployment's row lock). Ended rollouts stay as history."""

    __tablename__ = "deployment_rollouts"
    __table_args__ = (Index("ix_deployment_rollouts_deployment", "deployment_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(String(24), ForeignKey("deployments.id", ondelete="CASCADE"))
    model_package_id: Mapped[str] = mapped_column(String(24))  # the candidate
    from_package_id: Mapped[str] = mapped_column(String(24))  # the champion when it started
    state: Mapped[str] = mapped_column(String(20))  # running | promoted | rolled_back | aborted
    percent: Mapped[int] = mapped_column(Integer)  # the candidate's current share, 0-100
    step: Mapped[int] = mapped_column(Integer)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    gates: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # maxErrorRate, maxP99Ms, maxPsi, minRequests
    sticky: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"header": name} or {"field": name}
    reason: Mapped[str] = mapped_column(String(20))  # the replacement reason of the revision it ends in
    note: Mapped[str] = mapped_column(Text, default="")
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    last_gates: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the last evaluation: values and verdicts
    outcome: Mapped[str] = mapped_column(Text, default="")  # why it ended (or why it holds)
    created_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeploymentChallenger(Base):
    """A shadow model of a deployment: it scores a copy of live requests; its answers are
    recorded, never returned."""

    __tablename__ = "deployment_challengers"

    deployment_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    model_package_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_by: Mapped[str | None] = mapped_column(String(100))


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_environment", "environment_id", "id"),
        Index("ix_events_deployment", "deployment_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    environment_id: Mapped[str | None] = mapped_column(String(24))
    deployment_id: Mapped[str | None] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(100))
    result: Mapped[str] = mapped_column(String(20))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str | None] = mapped_column(String(100))


# --- monitoring: pre-aggregated per deployment and minute -------------------------


class MonitoringSource(Base):
    """One channel source (spool file, AMQP message) already counted: makes ingest idempotent."""

    __tablename__ = "monitoring_sources"
    __table_args__ = (Index("ix_monitoring_sources_received", "received_at"),)

    source_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MonitoringServiceBucket(Base):
    """Service health of one deployment in one minute (`minute`: epoch seconds)."""

    __tablename__ = "monitoring_service_buckets"

    deployment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    model_id: Mapped[str | None] = mapped_column(String(200))
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    user_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    system_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    latency: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class MonitoringDistribution(Base):
    """A feature's (role 'feature') or the predictions' (role 'prediction') values in one minute."""

    __tablename__ = "monitoring_distributions"

    deployment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MonitoringModelBucket(Base):
    """Service health of one model of a deployment in one minute: the champion, a canary, or
    a challenger (`shadow`: its answers were recorded, not returned, and are not counted in
    the deployment's own buckets). `compared`/`agreed` count the rows whose answer was
    compared with the champion's, and agreed with it; `abs_diff_sum` sums the absolute
    differences of compared regression values."""

    __tablename__ = "monitoring_model_buckets"

    deployment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    user_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    system_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    latency: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    compared: Mapped[int] = mapped_column(BigInteger, default=0)
    agreed: Mapped[int] = mapped_column(BigInteger, default=0)
    abs_diff_sum: Mapped[float] = mapped_column(Float, default=0.0)


class MonitoringModelPredictions(Base):
    """The prediction distribution of one model of a deployment in one minute (the PSI gate
    compares a canary's with the champion's over the same minutes)."""

    __tablename__ = "monitoring_model_predictions"

    deployment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- accuracy: predictions by association id, actuals, per-minute sums ---------------------


class ScoredRow(Base):
    """One model's prediction for one association id, kept until its actual arrives (and
    after: a corrected actual is matched again). `minute` is when it was predicted: the
    bucket its accuracy counts in. A regression value is `prediction`; a classifier's
    answer is `label` and, when it gave them, `probabilities` in `class_names` order."""

    __tablename__ = "scored_rows"

    deployment_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    association_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger)
    prediction: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(200))
    probabilities: Mapped[list[float] | None] = mapped_column(JSON)
    class_names: Mapped[list[str] | None] = mapped_column(JSON)


class Actual(Base):
    """The true value for one association id of a deployment (the latest one sent): a number
    (regression) or a class label, in the column of its type."""

    __tablename__ = "actuals"

    deployment_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    association_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    number: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(200))
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccuracyBucket(Base):
    """The sums of the matched pairs of one model of a deployment predicted in one minute
    (`deckhand.server.services.accuracy.metrics`)."""

    __tablename__ = "accuracy_buckets"

    deployment_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(12))
    sums: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- notifications: channels, policies, what fired, what was sent ---------------------------


class NotificationChannel(Base):
    """Where notifications go: a webhook (HMAC-signed), a Slack-compatible incoming webhook,
    or e-mail over SMTP. `config` is shown by the API; `secrets` (the HMAC key, the Slack
    URL, the SMTP password) never are."""

    __tablename__ = "notification_channels"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class NotificationPolicy(Base):
    """When to notify: a condition (`kind` and `settings`) on one deployment, or on every
    deployment (or environment) when `deployment_id` is null, sent to `channel_ids` at most
    once per `min_interval_seconds` per subject."""

    __tablename__ = "notification_policies"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    deployment_id: Mapped[str | None] = mapped_column(String(24))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channel_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # the last event a deployment-action policy has looked at
    event_cursor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


class NotificationFiring(Base):
    """When a policy last notified about one subject (a deployment or an environment)."""

    __tablename__ = "notification_firings"

    policy_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("notification_policies.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_value: Mapped[float | None] = mapped_column(Float)


class NotificationDelivery(Base):
    """One message to one channel: pending until sent, or failed after its last attempt,
    with the reason."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(24), ForeignKey("notification_channels.id", ondelete="CASCADE"))
    policy_id: Mapped[str | None] = mapped_column(String(24))
    subject: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
