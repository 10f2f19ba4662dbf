"""Base models and the enumerations the API accepts (each defined once, here)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Role = Literal["admin", "agent", "read-only"]
ROLES: tuple[str, ...] = ("admin", "agent", "read-only")
Result = Literal["passing", "warning", "failing", "unknown"]
EnvironmentHealth = Literal["passing", "warning", "failing", "unknown"]
DeploymentState = Literal["ready", "launching", "stopped", "errored", "replacingModel", "shuttingDown", "unknown"]
EventKind = Literal["api", "agent"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"
NAME_HELP = "letters, digits, '.', '_', '-' and spaces, starting with a letter or digit"

Name = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, description=f"Name: {NAME_HELP}.")
JsonObject = dict[str, Any]


class ApiModel(BaseModel):
    """Response model: camelCase aliases."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class RequestModel(BaseModel):
    """Request model: camelCase aliases, unknown fields refused (a typo is an error).

    Boolean fields are `StrictBool`: pydantic's lax mode would read "yes", "off", 1 or "0"
    as booleans, which the OpenAPI document (`type: boolean`) does not allow. (A strict
    config for the whole model would also refuse ISO 8601 strings for datetimes.)
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )


class ErrorResponse(BaseModel):
    """Every error: `detail` says what is wrong and what to do; `errors` lists fields (422)."""

    detail: str
    errors: list[dict[str, Any]] | None = None
