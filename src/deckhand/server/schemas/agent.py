"""What the management agent fetches (desired state) and posts (status, events)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, StrictBool, field_validator

from deckhand.server.schemas.common import (
    ApiModel,
    DeploymentState,
    EnvironmentHealth,
    JsonObject,
    RequestModel,
    Result,
)
from deckhand.server.schemas.environments import EnvironmentFields

Text = Annotated[str, Field(max_length=100_000)]

# Event times outside these are a sender's bug (a unit mix-up, an unset clock), not history.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)
_RANGE = f"between {EARLIEST_EVENT:%Y-%m-%d} and {LATEST_EVENT:%Y-%m-%d}"


class DesiredEnvironment(EnvironmentFields):
    created_at: datetime
    created_by: str | None


class TrafficMember(ApiModel):
    model_id: str
    model_sha256: str
    model_format: str
    model_size: int


class CanaryMember(TrafficMember):
    percent: int


class DesiredTraffic(ApiModel):
    canary: CanaryMember | None
    challengers: list[TrafficMember]
    sticky: dict[str, str] | None = Field(description='{"header": name} (lower-case) or {"field": name}.')
    association_id: dict[str, Any] | None = Field(
        None, description='{"column": name or null, "generate": bool}: how rows get association ids.'
    )
    challenger_copy_percent: float | None = Field(
        None, description="The percent of requests copied to the challengers; absent: every one."
    )


class DesiredDeployment(ApiModel):
    id: str
    name: str
    description: str
    active: bool
    model_package_id: str
    model_id: str
    model_format: str
    model_sha256: str
    model_size: int
    key_value_config: JsonObject
    revision: int
    served_model_id: str = Field(description="The champion's id, or the id of its mix (docs/rollouts.md).")
    traffic: DesiredTraffic | None = Field(description="None when the champion serves alone.")


class DesiredState(ApiModel):
    revision: int
    environment: DesiredEnvironment
    deployments: list[DesiredDeployment]


class EnvironmentStatusIn(RequestModel):
    status: EnvironmentHealth
    message: Text | None = None


class DeploymentStatusIn(RequestModel):
    id: Annotated[str, Field(min_length=1, max_length=100)]
    state: DeploymentState
    model_id: Annotated[str, Field(max_length=100)] | None = None
    prediction_url: Annotated[str, Field(max_length=2000)] | None = None
    message: Text | None = None
    old_model_in_use: StrictBool | None = None


class StatusReport(RequestModel):
    environment: EnvironmentStatusIn | None = None
    deployments: list[DeploymentStatusIn] = Field(default_factory=list, max_length=100_000)


class AgentEventIn(RequestModel):
    deployment_id: Annotated[str, Field(max_length=100)] | None = None
    action: Annotated[str, Field(min_length=1, max_length=100)]
    result: Result
    duration_seconds: Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)] | None = None
    message: Text | None = None
    timestamp: datetime | float | None = Field(
        default=None,
        description=f"ISO 8601 time or Unix time (seconds or milliseconds), {_RANGE}; default: when received.",
    )

    @field_validator("timestamp")
    @classmethod
    def _event_time(cls, value: datetime | float | None) -> datetime | None:
        """Unix seconds or milliseconds (the plugin protocol's unit) or ISO 8601, as UTC."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
            seconds = value / 1000.0 if abs(value) > 1e11 else value
            if not EARLIEST_EVENT.timestamp() <= seconds < LATEST_EVENT.timestamp():
                raise ValueError(f"{value:g} is not a Unix time (seconds or milliseconds) {_RANGE}")
            return datetime.fromtimestamp(seconds, UTC)
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not EARLIEST_EVENT <= moment < LATEST_EVENT:
            raise ValueError(f"{value.isoformat()} is not {_RANGE}")
        return moment


class AgentEvents(RequestModel):
    events: list[AgentEventIn] = Field(max_length=10_000)
