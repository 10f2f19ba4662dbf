"""Base models and the enumerations the API accepts (each defined once, here)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

Role = Literal["admin", "agent", "read-only"]
ROLES: tuple[str, ...] = ("admin", "agent", "read-only")
Result = Literal["passing", "warning", "failing", "unknown"]
EnvironmentHealth = Literal["passing", "warning", "failing", "unknown"]
DeploymentState = Literal["ready", "launching", "stopped", "errored", "replacingModel", "shuttingDown", "unknown"]
EventKind = Literal["api", "agent"]
# deckhand.server.replace_reasons.REPLACE_REASONS, as pydantic needs it.
ReplaceReason = Literal["accuracy", "data_drift", "errors", "scheduled_refresh", "scoring_speed", "other"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"
NAME_HELP = "letters, digits, '.', '_', '-' and spaces, starting with a letter or digit"

Name = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, description=f"Name: {NAME_HELP}.")
JsonObject = dict[str, Any]

# A date and a time, as `format: date-time` says: pydantic alone would also read a number
# ("0.77", "1733300000") as Unix seconds, and a bare date as midnight.
_DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_and_time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_AND_TIME.match(value.strip()):
        raise ValueError(f"{value!r} is not an ISO 8601 date and time; write e.g. 2026-12-04T08:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_date_and_time)]


class ApiModel(BaseModel):
    """Response model: camelCase aliases."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    @classmethod
    def from_row(cls, row: object, prefix: str = "", **given: Any) -> Self:
        """This model from a database row: each field is the row's attribute of the same name
        (after `prefix`), but for the fields `given` here."""
        return cls.model_validate(
            {name: given[name] if name in given else getattr(row, prefix + name) for name in cls.model_fields}
        )


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
