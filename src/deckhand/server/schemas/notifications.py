"""Notifications: channels (secrets write-only), policies (settings checked per kind),
deliveries (docs/notifications.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from deckhand.server.schemas.common import NAME_PATTERN, ApiModel, RequestModel

ChannelKind = Literal["webhook", "slack", "email"]
PolicyKind = Literal["service_health", "drift", "accuracy", "agent", "deployment_action"]
Url = Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^https?://")]
ChannelName = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]


class ChannelFields(RequestModel):
    url: Url | None = Field(None, description="webhook: where to POST. slack: the incoming webhook URL (secret).")
    secret: Annotated[str, Field(min_length=16, max_length=500)] | None = Field(
        None, description="webhook: the HMAC-SHA256 key (write-only)."
    )
    host: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(None, description="email: SMTP server.")
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(None, description="email: SMTP port (587).")
    sender: Annotated[str, Field(min_length=3, max_length=320)] | None = Field(None, description="email: From.")
    recipients: Annotated[list[Annotated[str, Field(min_length=3, max_length=320)]], Field(max_length=50)] | None = None
    username: Annotated[str, Field(max_length=320)] | None = None
    password: Annotated[str, Field(max_length=500)] | None = Field(
        None, description="email: SMTP password (write-only)."
    )
    starttls: StrictBool | None = Field(None, description="email: upgrade with STARTTLS (default true).")
    ca_file: Annotated[str, Field(max_length=1000)] | None = Field(
        None, description="email: a CA bundle on the control plane's host, for a private SMTP certificate."
    )


class ChannelCreate(ChannelFields):
    name: ChannelName
    kind: ChannelKind

    @model_validator(mode="after")
    def _complete(self) -> ChannelCreate:
        required = {"webhook": ("url",), "slack": ("url",), "email": ("host", "sender", "recipients")}[self.kind]
        for name in required:
            if getattr(self, name) in (None, []):
                raise ValueError(f"{to_camel(name)}: required for a {self.kind} channel")
        return self


class ChannelUpdate(ChannelFields):
    pass


class ChannelOut(ApiModel):
    id: str
    name: str
    kind: str
    config: dict[str, Any] = Field(description="What the channel sends to; secrets are never shown.")
    secrets_set: list[str] = Field(description="Which write-only secrets are set.")
    created_at: datetime


# -- policy settings, one model per kind ---------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ServiceHealthSettings(_Settings):
    metric: Literal["errorRate", "p99Ms"] = "errorRate"
    threshold: Annotated[float, Field(gt=0)]
    window_minutes: Annotated[int, Field(ge=1, le=1440)] = 5
    min_requests: Annotated[int, Field(ge=0)] = 10


class DriftSettings(_Settings):
    threshold: Annotated[float, Field(gt=0)] = 0.2
    features: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    window_minutes: Annotated[int, Field(ge=1, le=10080)] = 60


class AccuracySettings(_Settings):
    metric: Literal["rmse", "mae", "r2", "accuracy", "auc", "logLoss", "precision", "recall"] = "accuracy"
    threshold: float
    window_minutes: Annotated[int, Field(ge=1, le=43200)] = 1440
    min_matched: Annotated[int, Field(ge=1)] = 10


class AgentSettings(_Settings):
    silent_minutes: Annotated[float, Field(gt=0, le=10080)] = 10
    environment_id: Annotated[str, Field(max_length=24)] | None = None


class DeploymentActionSettings(_Settings):
    pass


SETTINGS = {
    "service_health": ServiceHealthSettings,
    "drift": DriftSettings,
    "accuracy": AccuracySettings,
    "agent": AgentSettings,
    "deployment_action": DeploymentActionSettings,
}


def checked_settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings of a policy of `kind`, defaults filled in (camelCase); a ValueError
    naming the field (`settings.threshold: ...`) otherwise."""
    try:
        return SETTINGS[kind].model_validate(settings).model_dump(by_alias=True, exclude_none=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"settings.{where}: {error['msg']} (a {kind} policy)") from None


class PolicyCreate(RequestModel):
    name: ChannelName
    kind: PolicyKind
    deployment_id: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="One deployment (id or name); none: every deployment."
    )
    settings: dict[str, Any] = Field(default_factory=dict, description="The condition (docs/notifications.md).")
    channel_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=1, max_length=20)
    ]
    min_interval_seconds: Annotated[int, Field(ge=1, le=30 * 86400)] = 3600
    enabled: StrictBool = True


class PolicyUpdate(RequestModel):
    settings: dict[str, Any] | None = None
    channel_ids: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=1, max_length=20)] | None
    ) = None
    min_interval_seconds: Annotated[int, Field(ge=1, le=30 * 86400)] | None = None
    enabled: StrictBool | None = None


class PolicyOut(ApiModel):
    id: str
    name: str
    kind: str
    deployment_id: str | None
    settings: dict[str, Any]
    channel_ids: list[str]
    min_interval_seconds: int
    enabled: bool
    created_at: datetime


class DeliveryOut(ApiModel):
    id: int
    channel_id: str
    policy_id: str | None
    subject: str | None
    title: str
    state: str = Field(description="pending (due again at nextAttemptAt), sent or failed")
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
