"""What the management agent fetches (desired state) and posts (status, events)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from deckhand.server.schemas.common import (
    ApiModel,
    DeploymentState,
    EnvironmentHealth,
    JsonObject,
    RequestModel,
    Result,
)

Text = Annotated[str, Field(max_length=100_000)]


class DesiredEnvironment(ApiModel):
    id: str
    name: str
    description: str
    platform: str
    plugin: str
    plugin_config: JsonObject
    key_value_config: JsonObject
    monitoring_enabled: bool
    created_at: datetime
    created_by: str | None


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
    old_model_in_use: bool | None = None


class StatusReport(RequestModel):
    environment: EnvironmentStatusIn | None = None
    deployments: list[DeploymentStatusIn] = Field(default_factory=list, max_length=100_000)


class AgentEventIn(RequestModel):
    deployment_id: Annotated[str, Field(max_length=100)] | None = None
    action: Annotated[str, Field(min_length=1, max_length=100)]
    result: Result
    duration_seconds: Annotated[float, Field(ge=0)] | None = None
    message: Text | None = None
    timestamp: datetime | float | None = Field(
        default=None, description="ISO 8601 time or Unix time (seconds or milliseconds)."
    )


class AgentEvents(RequestModel):
    events: list[AgentEventIn] = Field(max_length=10_000)
