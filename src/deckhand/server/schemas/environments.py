"""Prediction environment resources."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool, model_validator

from deckhand.plugin.platforms import Platform
from deckhand.server.schemas.common import (
    NAME_PATTERN,
    ApiModel,
    EnvironmentHealth,
    JsonObject,
    RequestModel,
)

EnvName = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Description = Annotated[str, Field(max_length=10_000)]
PluginName = Annotated[str, Field(min_length=1, max_length=200)]


class EnvironmentCreate(RequestModel):
    name: EnvName
    description: Description = ""
    platform: Platform
    plugin: PluginName | None = Field(default=None, description="Defaults from the platform; required for `custom`.")
    plugin_config: JsonObject = Field(default_factory=dict)
    key_value_config: JsonObject = Field(default_factory=dict)
    monitoring_enabled: StrictBool | None = Field(
        default=None, description="Report prediction statistics; default: on for `local`, off elsewhere."
    )

    @model_validator(mode="after")
    def _custom_needs_command(self) -> EnvironmentCreate:
        if self.platform == "custom" and not self.plugin_config.get("command"):
            raise ValueError(
                "pluginConfig.command: required for platform 'custom'; give the command "
                'that runs the plugin, e.g. {"command": "bosun-plugin-runner --plugin my.py"}'
            )
        return self


class EnvironmentUpdate(RequestModel):
    name: EnvName | None = None
    description: Description | None = None
    plugin: PluginName | None = None
    plugin_config: JsonObject | None = None
    key_value_config: JsonObject | None = None
    monitoring_enabled: StrictBool | None = None


class EnvironmentStatusOut(ApiModel):
    status: EnvironmentHealth
    message: str | None
    updated_at: datetime | None


class EnvironmentFields(ApiModel):
    """What readers and the environment's agent both see of an environment."""

    id: str
    name: str
    description: str
    platform: str
    plugin: str
    plugin_config: JsonObject
    key_value_config: JsonObject
    monitoring_enabled: bool


class EnvironmentOut(EnvironmentFields):
    revision: int
    created_at: datetime
    created_by: str | None
    status: EnvironmentStatusOut | None
