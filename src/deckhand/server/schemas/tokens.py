"""API token resources."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, model_validator

from deckhand.server.schemas.common import NAME_PATTERN, ApiModel, RequestModel, Role


class TokenCreate(RequestModel):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
    role: Role
    environment_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, description="Environments (ids or names) an agent token may use."
    )

    @model_validator(mode="after")
    def _scope_fits_role(self) -> TokenCreate:
        if self.role == "agent" and not self.environment_ids:
            raise ValueError("environmentIds: an agent token needs at least one environment id or name")
        if self.role != "agent" and self.environment_ids:
            raise ValueError(f"environmentIds: only agent tokens are scoped to environments, not {self.role!r}")
        return self


class TokenOut(ApiModel):
    id: str
    name: str
    role: str
    environment_ids: list[str]
    prefix: str = Field(description="The first characters of the token, for recognising it.")
    created_at: datetime
    created_by: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown once, store it now.")


class TokenSelf(ApiModel):
    """The token a request was made with: who the caller is (`GET /tokens/me`)."""

    id: str
    name: str
    role: str
    environment_ids: list[str]
